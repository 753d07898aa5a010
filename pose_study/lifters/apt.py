"""APTPose-style sequence lifter (Yang et al.): hierarchical masked encoders, a temporal transformer.

Per frame, four spatial encoders (one per mask level of ``masks.MASK_LEVELS``) embed the K joints
(``Linear(2 → C)``, the level's learnable mask token where the joint is masked or invalid, plus a
learned joint embedding) and mix them with a small MLP over all K joints into one feature. The four
features are fused by element-wise multiplication (``fusion="add"``: summed, the ablation), a
temporal transformer runs over the T frames, and a linear decoder gives [B, T, K, 3] root-relative
metres. :func:`reproject_2d` maps such a 3D pose back to crop pixels, so 2D-only data can
supervise pre-training.
"""

from __future__ import annotations

import torch
from torch import nn

from pose_study.lifters import inputs
from pose_study.lifters.masks import MASK_LEVELS
from pose_study.skeletons import ROOT

OUT_INIT_STD = 0.01  # decoder weights: first predictions ≈ 0 m instead of ≈ 1 m off
MIN_DEPTH_MM = 100.0  # reprojected joints are kept this far in front of the camera


class _SpatialEncoder(nn.Module):
    """One mask level's encoder: [B, T, K, 2] joints + hidden [B, T, K] → [B, T, C] frame features."""

    def __init__(self, num_joints: int, width: int, dropout: float) -> None:
        super().__init__()
        self.embed = nn.Linear(2, width)
        self.mask_token = nn.Parameter(torch.zeros(width))
        self.joint_embed = nn.Parameter(torch.randn(num_joints, width) * 0.02)
        self.norm = nn.LayerNorm(width)
        self.mix = nn.Sequential(nn.Linear(num_joints * width, width), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(width, width))
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        tokens = torch.where(hidden[..., None], self.mask_token, self.embed(x)) + self.joint_embed
        return self.mix(self.norm(tokens).flatten(-2))


class AptLifter(nn.Module):
    """Masked-pose-modeling sequence lifter.

    ``forward(x [B, T, K, 2], valid [B, T, K]) -> [B, K, 3]`` is the centre frame of
    :meth:`forward_sequence`; ``x`` is ``inputs.normalise_2d`` of crop-pixel joints, T =
    ``preset.frames``. Output rows are root-relative (the root row is exactly 0).
    """

    def __init__(self, preset, num_joints: int) -> None:
        super().__init__()
        width, self.num_joints, self.num_frames = preset.width, num_joints, preset.frames
        self.fusion = preset.fusion
        self.encoders = nn.ModuleDict({level: _SpatialEncoder(num_joints, width, preset.dropout)
                                       for level in MASK_LEVELS})
        self.fuse_norm = nn.LayerNorm(width)
        self.time_embed = nn.Parameter(torch.randn(preset.frames, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, preset.heads, dim_feedforward=2 * width, dropout=preset.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.temporal = nn.TransformerEncoder(layer, preset.blocks, enable_nested_tensor=False)
        self.out_norm = nn.LayerNorm(width)
        self.decoder = nn.Linear(width, num_joints * 3)
        nn.init.normal_(self.decoder.weight, std=OUT_INIT_STD)  # start near the mean pose (all zeros)
        nn.init.zeros_(self.decoder.bias)

    def _check(self, x: torch.Tensor, masks: dict[str, torch.Tensor] | None) -> None:
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.num_frames, self.num_joints, 2):
            raise ValueError(f"apt lifter expects x [B, {self.num_frames}, {self.num_joints}, 2], got "
                             f"{tuple(x.shape)}")
        unknown = sorted(set(masks or {}) - set(MASK_LEVELS))
        if unknown:
            raise ValueError(f"unknown mask level(s) {unknown}; choices: {MASK_LEVELS}")

    def _fuse(self, features: list[torch.Tensor]) -> torch.Tensor:
        fused = features[0]
        for feature in features[1:]:
            fused = fused * feature if self.fusion == "multiply" else fused + feature
        return self.fuse_norm(fused)

    def forward_sequence(self, x: torch.Tensor, valid: torch.Tensor,
                         masks: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """3D joints of every frame.

        Args:
            x: [B, T, K, 2] normalised 2D joints.
            valid: [B, T, K] bool; invalid joints get each level's mask token.
            masks: Level → [B, T, K] bool (True = masked) for the levels to mask; levels left out
                (or ``masks=None``) hide only the invalid joints.

        Returns:
            [B, T, K, 3] root-relative metres.
        """
        self._check(x, masks)
        missing = ~valid.bool()
        features = [self.encoders[level](x, missing | masks[level] if masks and level in masks else missing)
                    for level in MASK_LEVELS]
        frames = self.temporal(self._fuse(features) + self.time_embed)
        pose = self.decoder(self.out_norm(frames)).unflatten(-1, (self.num_joints, 3))
        return pose - pose[..., ROOT : ROOT + 1, :]

    def forward(self, x: torch.Tensor, valid: torch.Tensor, masks: dict[str, torch.Tensor] | None = None,
                sequence: bool = False) -> torch.Tensor:
        """Centre frame [B, K, 3] (``sequence=True``: every frame [B, T, K, 3], as :meth:`forward_sequence`).

        ``masks`` and ``sequence`` let pre-training go through ``forward`` (so DDP wrappers see it).
        """
        poses = self.forward_sequence(x, valid, masks)
        return poses if sequence else poses[:, self.num_frames // 2]

    @staticmethod
    def reproject_2d(pred_rel_m: torch.Tensor, joints_2d_px: torch.Tensor, valid: torch.Tensor,
                     root_mm: torch.Tensor | None = None, intrinsics: torch.Tensor | None = None) -> torch.Tensor:
        """See :func:`reproject_2d`."""
        return reproject_2d(pred_rel_m, joints_2d_px, valid, root_mm, intrinsics)


def reproject_2d(pred_rel_m: torch.Tensor, joints_2d_px: torch.Tensor, valid: torch.Tensor,
                 root_mm: torch.Tensor | None = None, intrinsics: torch.Tensor | None = None) -> torch.Tensor:
    """The reprojection module: a root-relative 3D pose back to crop pixels.

    With a camera (``root_mm`` and ``intrinsics``) the pose is placed at the root and projected
    exactly (``inputs.reproject``; depths are kept ≥ ``MIN_DEPTH_MM`` in front of the camera so a
    wild prediction cannot divide by ~0). Without one, the closed-form weak-perspective fit to the
    observed 2D joints is used (``inputs.fit_weak_perspective``), which is what 2D-only data allow.

    Args:
        pred_rel_m: [..., K, 3] root-relative metres.
        joints_2d_px: [..., K, 2] observed joints (used by the weak-perspective fit only).
        valid: [..., K] bool, the joints the fit uses.
        root_mm: [..., 3] root joint in the camera frame, mm, or None.
        intrinsics: [..., 3, 3] crop-pixel pinhole matrix, or None.

    Returns:
        [..., K, 2] crop pixels.
    """
    if (root_mm is None) != (intrinsics is None):
        raise ValueError("reproject_2d needs both root_mm and intrinsics (a camera) or neither")
    if root_mm is None:
        return inputs.fit_weak_perspective(pred_rel_m, joints_2d_px, valid)
    min_z = (MIN_DEPTH_MM - root_mm[..., None, 2:].float()) / inputs.MM_PER_M
    pred = torch.cat([pred_rel_m[..., :2], torch.maximum(pred_rel_m[..., 2:].float(), min_z)], dim=-1)
    return inputs.reproject(pred, root_mm, intrinsics)
