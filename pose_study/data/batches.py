"""Batches from canonical HDF5 splits: whole splits held as uint8 tensors, gathered per batch.

This is the fast data path: one HDF5 read per split, then per step one indexed gather of uint8
crops, one transfer and normalisation on the device. No per-sample Python, no decode, no worker
processes. Sampling uses a ``torch.Generator`` so a resumed run draws exactly the batches the
uninterrupted run would have drawn.

* **JPEG splits** (``image_encoding = "jpeg"``) are decoded **once, at load** (``read_split``),
  into the same uint8 array a raw split gives; no step ever decodes. Memory: N × S² × 3 bytes
  (30 k crops of 256² are 5.9 GB).
* **Where the split lives on CUDA** (``resident``): ``"device"`` keeps the whole split in GPU memory
  (a batch is an on-device ``index_select``: no host work, no transfer); ``"host"`` keeps it in
  pinned host memory and gathers each batch into a pinned buffer, then copies it non-blocking;
  ``"auto"`` (the default) takes ``"device"`` when the split needs at most ``DEVICE_SHARE`` of
  the free GPU memory. On the CPU there is one choice.
"""

from __future__ import annotations

import functools
import logging
import os
import time

import h5py
import numpy as np
import torch

from pose_study.data.formats import PoseSplit, read_split
from pose_study.data.transforms import IMAGENET_MEAN, IMAGENET_STD, Batch

log = logging.getLogger(__name__)
RESIDENCES = ("auto", "device", "host")
DEVICE_SHARE = 0.2  # "auto" keeps a split on the GPU when it needs at most this share of free memory
_FIELDS = ("images", "joints_2d", "valid_2d", "joints_3d", "valid_3d", "intrinsics", "is_3d")


class SplitTensors:
    """One split's arrays as tensors on the host (pinned when the device is CUDA).

    Args:
        split: The split (images must be loaded as uint8 crops; ``read_split`` decodes JPEG ones).
        device: Where batches go.
        resident: ``"auto"``, ``"device"`` or ``"host"``: where the split is kept on CUDA (module
            docstring).
    """

    def __init__(self, split: PoseSplit, device: torch.device, resident: str = "auto") -> None:
        self.info = split.info
        self.device = device
        n = len(split)
        arrays = {"images": split.images, "joints_2d": split.joints_2d.astype(np.float32),
                  "valid_2d": split.joints_2d_valid}
        if split.has_3d:
            arrays.update(joints_3d=split.joints_3d.astype(np.float32), valid_3d=split.joints_3d_valid,
                          intrinsics=split.intrinsics.astype(np.float32))
        else:
            k = split.joints_2d.shape[1]
            arrays.update(joints_3d=np.zeros((n, k, 3), np.float32), valid_3d=np.zeros((n, k), bool),
                          intrinsics=np.broadcast_to(np.eye(3, dtype=np.float32), (n, 3, 3)))
        arrays["is_3d"] = np.full(n, split.has_3d)
        self._has_3d = split.has_3d and n > 0  # a host bool: asking never syncs with the device
        self.on_device = _on_device(device, resident, sum(a.nbytes for a in arrays.values()))
        place = device if self.on_device else None
        for name in _FIELDS:
            setattr(self, name, _tensor(arrays[name], pin=device.type == "cuda", device=place))

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device, resident: str = "auto") -> SplitTensors:
        """Read ``path`` (decoding JPEG crops once, here) and hold it for ``device``."""
        t0 = time.perf_counter()
        split = read_split(path)
        if not isinstance(split.images, np.ndarray) or split.images.dtype != np.uint8:
            raise ValueError(f"{path}: images could not be loaded as uint8 crops")
        out = cls(split, device, resident)
        log.info("loaded %s: %d samples, %s, crop %d px, %s images, in %.1f s, kept on %s", path, len(split),
                 split.info.dataset, split.images.shape[1], image_encoding(path),
                 time.perf_counter() - t0, "the device" if out.on_device else "the host")
        return out

    def __len__(self) -> int:
        return len(self.joints_2d)

    @property
    def has_3d(self) -> bool:
        return self._has_3d

    @property
    def crop_size(self) -> int:
        return int(self.images.shape[1])

    def gather(self, index: torch.Tensor) -> Batch:
        """The samples at ``index`` ([B] int64, host) as a normalised ``Batch`` on the device.

        No host sync: on-device splits gather on the device; host splits on CUDA gather into a
        pinned buffer (the caching host allocator keeps it until its copy is done) and copy it
        non-blocking.
        """
        if self.on_device:
            index = index.to(self.device, non_blocking=True)
            moved = [getattr(self, name).index_select(0, index) for name in _FIELDS]
        elif self.device.type == "cuda":
            moved = [_pinned_gather(getattr(self, name), index).to(self.device, non_blocking=True)
                     for name in _FIELDS]
        else:
            moved = [getattr(self, name).index_select(0, index) for name in _FIELDS]
        return Batch(to_float_images(moved[0]), *moved[1:])


def to_float_images(images_u8: torch.Tensor) -> torch.Tensor:
    """``normalise_images`` (same values within float rounding) in one conversion and two in-place ops."""
    x = images_u8.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format)
    scale, shift = _normalising_constants(x.device)
    return x.mul_(scale).sub_(shift)


@functools.lru_cache(maxsize=None)
def _normalising_constants(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """1 / (255 std) and mean / std as [1, 3, 1, 1] tensors, made once per device (a copy to a GPU
    from a Python list would sync with it at every step)."""
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    return (1.0 / (255.0 * std)).to(device), (mean / std).to(device)


def image_encoding(path: str | os.PathLike) -> str:
    """The ``image_encoding`` attribute of a canonical split (``raw`` when absent)."""
    with h5py.File(path, "r") as h5:
        return str(h5.attrs.get("image_encoding", "raw"))


def _on_device(device: torch.device, resident: str, nbytes: int) -> bool:
    if resident not in RESIDENCES:
        raise ValueError(f"resident must be one of {RESIDENCES}, got {resident!r}")
    if device.type != "cuda" or resident == "host":
        return False
    if resident == "device":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_SHARE * free


def _tensor(array: np.ndarray, pin: bool, device: torch.device | None = None) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(array))
    if device is not None:
        return t.to(device)
    return t.pin_memory() if pin else t


def _pinned_gather(source: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    out = torch.empty((len(index), *source.shape[1:]), dtype=source.dtype, pin_memory=True)
    return torch.index_select(source, 0, index, out=out)


def concat_batches(parts: list[Batch]) -> Batch:
    """Concatenate batches along the sample axis (e.g. the 3D and 2D parts of a fusion batch)."""
    if len(parts) == 1:
        return parts[0]
    return Batch(*(torch.cat([getattr(p, n) for p in parts]) for n in _FIELDS))


def random_indices(n: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` indices drawn uniformly from ``range(n)`` with replacement.

    Every step draws afresh from the whole split, so the 3D subset of a fusion run is different
    every epoch (the seed drew the same first-N subset each time).
    """
    return torch.randint(n, (count,), generator=generator)


def sequential_batches(n: int, batch_size: int):
    """Index tensors covering ``range(n)`` in order, for evaluation."""
    for start in range(0, n, batch_size):
        yield torch.arange(start, min(start + batch_size, n))
