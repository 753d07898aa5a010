"""Batches from canonical HDF5 splits: whole splits held as uint8 tensors, gathered per batch.

This is the fast data path: one HDF5 read per split, then per step one indexed gather of uint8
crops, one (pinned, non-blocking) transfer and normalisation on the device. No per-sample
Python, no decode, no worker processes. Sampling uses a ``torch.Generator`` so a resumed run
draws exactly the batches the uninterrupted run would have drawn.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch

from pose_study.data.formats import PoseSplit, read_split
from pose_study.data.transforms import Batch, normalise_images

log = logging.getLogger(__name__)


class SplitTensors:
    """One split's arrays as tensors on the host (pinned when the device is CUDA).

    Args:
        split: The split (images must be loaded, raw uint8).
        device: Where batches go.
    """

    def __init__(self, split: PoseSplit, device: torch.device) -> None:
        self.info = split.info
        self.device = device
        pin = device.type == "cuda"
        n = len(split)
        self.images = _tensor(split.images, pin)
        self.joints_2d = _tensor(split.joints_2d.astype(np.float32), pin)
        self.valid_2d = _tensor(split.joints_2d_valid, pin)
        if split.has_3d:
            self.joints_3d = _tensor(split.joints_3d.astype(np.float32), pin)
            self.valid_3d = _tensor(split.joints_3d_valid, pin)
            self.intrinsics = _tensor(split.intrinsics.astype(np.float32), pin)
        else:
            self.joints_3d = torch.zeros(n, split.joints_2d.shape[1], 3)
            self.valid_3d = torch.zeros(n, split.joints_2d.shape[1], dtype=torch.bool)
            self.intrinsics = torch.eye(3).expand(n, 3, 3).contiguous()
        self.is_3d = torch.full((n,), split.has_3d, dtype=torch.bool)

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device) -> SplitTensors:
        split = read_split(path)
        if not isinstance(split.images, np.ndarray) or split.images.dtype != np.uint8:
            raise ValueError(f"{path}: images could not be loaded as uint8 crops")
        log.info("loaded %s: %d samples, %s, crop %d px", path, len(split), split.info.dataset,
                 split.images.shape[1])
        return cls(split, device)

    def __len__(self) -> int:
        return len(self.joints_2d)

    @property
    def has_3d(self) -> bool:
        return bool(self.is_3d[0]) if len(self) else False

    @property
    def crop_size(self) -> int:
        return int(self.images.shape[1])

    def gather(self, index: torch.Tensor) -> Batch:
        """The samples at ``index`` ([B] int64, host) as a normalised ``Batch`` on the device."""
        fields = (self.images, self.joints_2d, self.valid_2d, self.joints_3d, self.valid_3d,
                  self.intrinsics, self.is_3d)
        moved = [f.index_select(0, index).to(self.device, non_blocking=True) for f in fields]
        return Batch(normalise_images(moved[0]), *moved[1:])


def _tensor(array: np.ndarray, pin: bool) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(array))
    return t.pin_memory() if pin else t


def concat_batches(parts: list[Batch]) -> Batch:
    """Concatenate batches along the sample axis (e.g. the 3D and 2D parts of a fusion batch)."""
    if len(parts) == 1:
        return parts[0]
    names = ("images", "joints_2d", "valid_2d", "joints_3d", "valid_3d", "intrinsics", "is_3d")
    return Batch(*(torch.cat([getattr(p, n) for p in parts]) for n in names))


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
