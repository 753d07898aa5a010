"""The seed-style data path: the baseline that ``python -m pose_study bench`` measures ours against.

The seed system (reference/seed_system.md §2) prepares every sample on its own, in DataLoader
worker processes: read one image, decode it, warp it with its own affine (``cv2.warpAffine``,
bilinear, constant border), normalise it, transform its joints, draw one Gaussian per joint in
numpy, then collate and ship the batch to the main process, which trains in fp32 without
channels_last. ``SeedStyleDataset`` does the same per-sample work from a canonical split: one HDF5
read and a PIL JPEG decode (or a raw crop) per sample, a PIL affine warp, numpy normalisation, a
per-joint numpy heatmap loop. Unlike the seed it reads pre-cropped samples, so it is a *generous*
baseline (the seed decoded full frames).

The augmentations are given, not drawn in the workers: ``PlannedBatches`` draws the indices and
the affine maps from one generator exactly as the fast path does (``loop.draw_batch``: indices
first, then ``transforms.sample_affines``). With the same seed both paths therefore produce the
same samples — same crops within interpolation rounding, same joints, same heatmaps — so a
speed-up between them is not bought with different work. The warp reproduces the fast path's
``grid_sample`` geometry (pixel centres at integers, ``align_corners=False``) and its padding
(the fast path pads the normalised image with 0, i.e. the ImageNet mean colour; here the crop is
framed with a 1-px border of that colour, which makes PIL's edge handling match ``cv2``'s
constant border and ``grid_sample``'s zero padding).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from pose_study.data.batches import random_indices
from pose_study.data.codecs import OUTSIDE_SIGMAS
from pose_study.data.formats import read_split
from pose_study.data.transforms import IMAGENET_MEAN, IMAGENET_STD, AugmentSpec, sample_affines
from pose_study.predict import STRIDE
from pose_study.skeletons import CANONICAL
from pose_study.train import losses

FILL = tuple(int(round(255 * m)) for m in IMAGENET_MEAN)  # the colour the fast path pads with
Key = tuple[int, tuple[float, float, float, float]]  # (sample index, row-major 2×2 normalised map)


class PlannedBatches:
    """Batches of ``(index, affine)`` keys, drawn as the fast path draws them (a ``batch_sampler``).

    Args:
        num_samples: Samples in the split.
        batch_size: Samples per batch.
        steps: Batches to yield.
        augment: Augmentation ranges.
        seed: Seed of the generator (the fast path's ``LoopSpec.seed`` on one device).
        is_3d: Whether the split has 3D labels (3D samples are not rotated).
    """

    def __init__(self, num_samples: int, batch_size: int, steps: int, augment: AugmentSpec, seed: int,
                 is_3d: bool = False) -> None:
        self.num_samples, self.batch_size, self.steps = num_samples, batch_size, steps
        self.augment, self.seed, self.is_3d = augment, seed, is_3d

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[list[Key]]:
        generator = torch.Generator().manual_seed(self.seed)
        flags = torch.full((self.batch_size,), self.is_3d)
        for _ in range(self.steps):
            index = random_indices(self.num_samples, self.batch_size, generator)
            linear = sample_affines(self.batch_size, flags, self.augment, generator)
            yield [(int(i), tuple(float(v) for v in m.flatten())) for i, m in zip(index, linear)]


class SeedStyleDataset(Dataset):
    """One canonical split read, decoded, warped and labelled per sample (module docstring).

    Items are keyed by ``(index, affine)`` (see ``PlannedBatches``) and are dicts of
    ``images`` [3, S, S] float32 (ImageNet-normalised RGB), ``heatmaps`` [K, S/4, S/4] float32,
    ``joints_2d`` [K, 2] float32 crop pixels and ``valid_2d`` [K] bool.

    Args:
        path: Canonical HDF5 split (raw or JPEG images).
        sigma: Heatmap Gaussian σ in heatmap pixels.
    """

    def __init__(self, path: str | os.PathLike, sigma: float = 2.0) -> None:
        labels = read_split(path, images=False)
        self.path, self.sigma = Path(path), sigma
        self.joints_2d = labels.joints_2d.astype(np.float64)
        self.valid_2d = labels.joints_2d_valid.astype(bool)
        self.has_3d = labels.has_3d
        with h5py.File(self.path, "r") as h5:
            self.jpeg = str(h5.attrs.get("image_encoding", "raw")) == "jpeg"
            self.crop_size = int(h5.attrs["crop_size"])
        self._h5: h5py.File | None = None
        self._pid = -1

    def __len__(self) -> int:
        return len(self.joints_2d)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_h5": None, "_pid": -1}  # an open HDF5 handle does not cross processes

    def __getitem__(self, key: Key) -> dict[str, torch.Tensor]:
        index, linear = key
        pixel = pixel_affine(np.asarray(linear, dtype=np.float64).reshape(2, 2), self.crop_size)
        image = warp_image(self._read_image(index), pixel)
        joints = self.joints_2d[index] @ pixel[:2, :2].T + pixel[:2, 2]
        valid = self.valid_2d[index]
        if np.linalg.det(pixel[:2, :2]) < 0:  # a flip: left and right swap slots
            perm = CANONICAL.flip_permutation()
            joints, valid = joints[perm], valid[perm]
        coords = (joints + 0.5) / STRIDE - 0.5  # crop → heatmap pixels (predict.crop_to_heatmap)
        heatmaps = render_heatmaps(coords, valid, self.crop_size // STRIDE, self.sigma)
        return {"images": torch.from_numpy(normalise(image)), "heatmaps": torch.from_numpy(heatmaps),
                "joints_2d": torch.from_numpy(joints.astype(np.float32)), "valid_2d": torch.from_numpy(valid)}

    def _read_image(self, index: int) -> np.ndarray:
        if self._pid != os.getpid():
            self._h5, self._pid = h5py.File(self.path, "r"), os.getpid()
        data = self._h5["images"][index]
        if not self.jpeg:
            return data
        with Image.open(io.BytesIO(data.tobytes())) as img:
            return np.asarray(img.convert("RGB"))


def pixel_affine(linear: np.ndarray, size: int) -> np.ndarray:
    """[3, 3] crop-pixel map (input → output) of a normalised 2×2 map about the crop centre.

    The numpy twin of ``transforms._pixel_affine`` (pixel centres at integers).
    """
    c = (size - 1) / 2.0
    out = np.eye(3)
    out[:2, :2] = linear
    out[:2, 2] = c - linear @ np.array([c, c])
    return out


def warp_image(image: np.ndarray, pixel: np.ndarray) -> np.ndarray:
    """Resample an [S, S, 3] uint8 crop with the input → output map ``pixel`` (bilinear, PIL).

    Outside the crop the fill is the ImageNet mean colour, blended at the edge as a constant
    border is (the crop is framed with a 1-px border of that colour first).
    """
    size = image.shape[0]
    framed = Image.new("RGB", (size + 2, size + 2), FILL)
    framed.paste(Image.fromarray(image), (1, 1))
    inverse = np.linalg.inv(pixel)
    m, t = inverse[:2, :2], inverse[:2, 2]
    # PIL maps output pixel *corners* (x + 0.5 at centres) to input ones; +1 for the frame.
    offset = t + 1.0 + 0.5 - m @ np.array([0.5, 0.5])
    coeffs = (m[0, 0], m[0, 1], offset[0], m[1, 0], m[1, 1], offset[1])
    warped = framed.transform((size, size), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR,
                              fillcolor=FILL)
    return np.asarray(warped)


def normalise(image: np.ndarray) -> np.ndarray:
    """[S, S, 3] uint8 RGB → [3, S, S] float32, ImageNet mean/std (as the fast path)."""
    x = image.astype(np.float32) / 255.0
    x = (x - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def render_heatmaps(coords: np.ndarray, valid: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """[K, size, size] Gaussians drawn joint by joint (the seed's loop; ``codecs.encode_heatmaps``'s values).

    Args:
        coords: [K, 2] (x, y) heatmap pixels.
        valid: [K] bool; invalid joints and joints more than 3σ outside the map get zeros.
        size: Map side.
        sigma: Gaussian σ in heatmap pixels.
    """
    maps = np.zeros((len(coords), size, size), np.float32)
    grid = np.arange(size, dtype=np.float32)
    margin = OUTSIDE_SIGMAS * sigma
    for j, ((x, y), ok) in enumerate(zip(coords.astype(np.float32), valid)):
        if not ok or not (-margin <= x <= size - 1 + margin and -margin <= y <= size - 1 + margin):
            continue
        gx = np.exp(-((grid - x) ** 2) / (2 * sigma**2))
        gy = np.exp(-((grid - y) ** 2) / (2 * sigma**2))
        maps[j] = np.outer(gy, gx)
    return maps


def seed_loader(dataset: SeedStyleDataset, batches: PlannedBatches, workers: int,
                device: torch.device) -> DataLoader:
    """The seed's loader: ``workers`` processes, default collation, pinned batches on CUDA."""
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    return DataLoader(dataset, batch_sampler=batches, num_workers=workers, pin_memory=device.type == "cuda",
                      prefetch_factor=2 if workers else None)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """A collated batch on ``device``."""
    return {name: value.to(device, non_blocking=True) for name, value in batch.items()}


def seed_train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    batch: dict[str, torch.Tensor]) -> float:
    """One fp32, NCHW step with the loader's heatmap targets; reads the loss back every step as
    the seed's meters do. The objective is the fast path's 2D one (masked heatmap MSE over stacks)."""
    model.train()
    outputs = model(batch["images"])
    loss = sum(losses.heatmap_loss(h, batch["heatmaps"], batch["valid_2d"]) for h, _ in outputs["stacks"])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.item())
