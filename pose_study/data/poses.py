"""Pose-only data: a split's labels as tensors (no images), and the batches lifters train on.

``PoseData.load`` reads a canonical split with ``read_split(path, images=False)`` and keeps its 2D
joints, 3D joints, cameras and, for sequence lifters, the frame windows of every sample
(``sequence_windows``: T frames of the same clip centred on the sample,
edge-replicated at clip ends). ``gather`` turns sample indices into a ``PoseBatch`` of T frames.
2D-only splits get zero 3D joints, ``valid_3d`` all False and identity intrinsics. Pose-only
splits (``formats``: no images, no 2D, no camera) get zero 2D joints, ``valid_2d`` all False,
identity intrinsics and ``crop_size`` 0; their 3D joints are world-frame (y down), so a consumer
projects them through its own (virtual) cameras.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import h5py
import numpy as np
import torch

from pose_study.data.formats import SplitInfo, read_split
from pose_study.skeletons import CANONICAL


@dataclass
class PoseBatch:
    """B samples of T frames (T = 1 for single-frame lifters), K joints.

    Attributes:
        joints_2d: [B, T, K, 2] crop pixels.
        valid_2d: [B, T, K] bool.
        joints_3d: [B, T, K, 3] camera frame, mm (zeros where there is no 3D label).
        valid_3d: [B, T, K] bool (all False for 2D-only samples).
        intrinsics: [B, T, 3, 3] crop-pixel intrinsics (identity for 2D-only samples).
        is_3d: [B] bool, the sample carries 3D labels.
        crop_size: Side of the crops the 2D joints live in (pixels).
    """

    joints_2d: torch.Tensor
    valid_2d: torch.Tensor
    joints_3d: torch.Tensor
    valid_3d: torch.Tensor
    intrinsics: torch.Tensor
    is_3d: torch.Tensor
    crop_size: int

    @property
    def frames(self) -> int:
        return self.joints_2d.shape[1]

    def centre(self) -> PoseBatch:
        """The centre frame only (T = 1)."""
        t = self.frames // 2
        pick = slice(t, t + 1)
        return PoseBatch(self.joints_2d[:, pick], self.valid_2d[:, pick], self.joints_3d[:, pick],
                         self.valid_3d[:, pick], self.intrinsics[:, pick], self.is_3d, self.crop_size)


def sequence_windows(clip: Sequence[str] | np.ndarray, frame: Sequence[int] | np.ndarray,
                     length: int) -> np.ndarray:
    """Indices of the frames around each sample, within its clip.

    Samples of one clip are ordered by ``frame``; the window of a sample holds its ``length // 2``
    predecessors, itself and as many successors in that order, repeating the clip's first/last
    sample where the window runs past either end. Works for any sample order (and for clips
    subsampled in time: neighbours are the adjacent stored frames).

    Args:
        clip: [N] clip id of each sample.
        frame: [N] frame number of each sample within its clip.
        length: Window length T, odd and ≥ 1.

    Returns:
        [N, T] int64 row indices into the same N samples; column T // 2 is the sample itself
        (for distinct (clip, frame) pairs).

    Raises:
        ValueError: ``length`` is not odd and positive, or ``clip`` and ``frame`` differ in length.
    """
    if length < 1 or length % 2 == 0:
        raise ValueError(f"window length must be odd and ≥ 1, got {length}")
    clip, frame = np.asarray(clip), np.asarray(frame)
    if clip.shape != frame.shape or clip.ndim != 1:
        raise ValueError(f"clip and frame must be 1-D of one length, got shapes {clip.shape} and "
                         f"{frame.shape}")
    _, clip_id = np.unique(clip, return_inverse=True)
    order = np.lexsort((frame, clip_id))  # by clip, then frame
    sorted_id = clip_id[order]
    first = np.searchsorted(sorted_id, sorted_id, side="left")
    last = np.searchsorted(sorted_id, sorted_id, side="right") - 1
    offsets = np.arange(length) - length // 2
    position = np.clip(np.arange(len(order))[:, None] + offsets, first[:, None], last[:, None])
    windows = np.empty((len(order), length), dtype=np.int64)
    windows[order] = order[position]
    return windows


@dataclass
class PoseData:
    """N samples of K joints on one device.

    Attributes:
        info: The split's file attributes (dataset, split, source, ...).
        joints_2d: [N, K, 2] crop pixels.
        valid_2d: [N, K] bool.
        joints_3d: [N, K, 3] camera frame, mm (zeros for 2D-only splits).
        valid_3d: [N, K] bool.
        intrinsics: [N, 3, 3] crop-pixel intrinsics (identity for 2D-only splits).
        is_3d: [N] bool.
        crop_size: Crop side in pixels.
        windows: [N, T] int64 row indices of each sample's T frames (same device), or None (T = 1).
    """

    info: SplitInfo
    joints_2d: torch.Tensor
    valid_2d: torch.Tensor
    joints_3d: torch.Tensor
    valid_3d: torch.Tensor
    intrinsics: torch.Tensor
    is_3d: torch.Tensor
    crop_size: int
    windows: torch.Tensor | None = None

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "cpu", frames: int = 1) -> PoseData:
        """Read the labels of ``path`` onto ``device``, with ``frames``-long windows when ``frames`` > 1."""
        if frames < 1 or frames % 2 == 0:
            raise ValueError(f"frames must be odd and ≥ 1, got {frames}")
        split = read_split(path, images=False)
        n, k = len(split), CANONICAL.num_joints
        if split.pose_only:
            split.joints_2d, split.joints_2d_valid = np.zeros((n, k, 2), np.float32), np.zeros((n, k), bool)
            split.intrinsics = np.broadcast_to(np.eye(3, dtype=np.float32), (n, 3, 3))
        if split.has_3d:
            joints_3d, valid_3d, intrinsics = split.joints_3d, split.joints_3d_valid, split.intrinsics
        else:
            joints_3d, valid_3d = np.zeros((n, k, 3), np.float32), np.zeros((n, k), bool)
            intrinsics = np.broadcast_to(np.eye(3, dtype=np.float32), (n, 3, 3))
        windows = sequence_windows(split.clip, split.frame, frames) if frames > 1 else None

        def tensor(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(a)).to(device=device, dtype=dtype)

        return cls(split.info, tensor(split.joints_2d, torch.float32), tensor(split.joints_2d_valid, torch.bool),
                   tensor(joints_3d, torch.float32), tensor(valid_3d, torch.bool),
                   tensor(intrinsics, torch.float32), torch.full((n,), split.has_3d, dtype=torch.bool, device=device),
                   _crop_size(path), None if windows is None else tensor(windows, torch.int64))

    def __len__(self) -> int:
        return len(self.joints_2d)

    @property
    def device(self) -> torch.device:
        return self.joints_2d.device

    @property
    def frames(self) -> int:
        """Window length T this split was loaded with (1 without windows)."""
        return 1 if self.windows is None else int(self.windows.shape[1])

    @property
    def has_3d(self) -> bool:
        return bool(self.is_3d.any())

    def gather(self, index: torch.Tensor, frames: int | None = None) -> PoseBatch:
        """The samples at ``index`` ([B] int64) with ``frames`` frames each (default: the loaded T).

        ``frames`` may be any odd number up to the loaded T: the centre of each window (a shorter
        edge-replicated window of the same clip).
        """
        frames = self.frames if frames is None else frames
        if frames < 1 or frames % 2 == 0 or frames > self.frames:
            raise ValueError(f"frames must be odd and between 1 and the loaded {self.frames}, got {frames}")
        index = index.to(self.device)
        if self.windows is None:
            rows = index[:, None]
        else:
            start = (self.frames - frames) // 2
            rows = self.windows[index, start:start + frames]
        return PoseBatch(self.joints_2d[rows], self.valid_2d[rows], self.joints_3d[rows], self.valid_3d[rows],
                         self.intrinsics[rows], self.is_3d[index], self.crop_size)


def _crop_size(path: str | os.PathLike) -> int:
    with h5py.File(path, "r") as h5:
        return int(h5.attrs["crop_size"])
