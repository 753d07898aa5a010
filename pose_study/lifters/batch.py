"""Pose-only batches: what lifters train on (2D joints, 3D joints, cameras; no images)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


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
