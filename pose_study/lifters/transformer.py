"""A transformer lifter with one token per joint (in the spirit of PoseFormer's spatial encoder).

Each joint's normalised 2D coordinates are embedded linearly (``2 → width``), or replaced by a
learned mask token where the joint is invalid; with T > 1 frames the per-frame embeddings are
concatenated and mapped back to ``width``. A learned joint embedding is added, ``blocks`` pre-norm
transformer encoder layers mix the K tokens, and a linear head reads 3 coordinates per joint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from pose_study.skeletons import ROOT

if TYPE_CHECKING:
    from pose_study.presets import LifterPreset

FEEDFORWARD = 2  # feed-forward width as a multiple of the token width
INIT_STD = 0.02  # std of the joint embedding and mask token at initialisation


class TransformerLifter(nn.Module):
    """Joints-as-tokens transformer lifter.

    Args:
        preset: A ``LifterPreset`` of kind ``transformer`` (``width``, ``blocks``, ``heads``,
            ``frames``, ``dropout``); ``width`` must be divisible by ``heads``.
        num_joints: K.
    """

    def __init__(self, preset: LifterPreset, num_joints: int) -> None:
        super().__init__()
        width = preset.width
        if width % preset.heads:
            raise ValueError(f"transformer width {width} is not divisible by heads={preset.heads}")
        self.embed = nn.Linear(2, width)
        self.mask_token = nn.Parameter(torch.randn(width) * INIT_STD)
        self.frame_mix = nn.Linear(preset.frames * width, width) if preset.frames > 1 else nn.Identity()
        self.joint_embed = nn.Parameter(torch.randn(num_joints, width) * INIT_STD)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(width, preset.heads, dim_feedforward=FEEDFORWARD * width,
                                       dropout=preset.dropout, activation="gelu", batch_first=True,
                                       norm_first=True)
            for _ in range(preset.blocks))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 3)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """[B, T, K, 2] normalised 2D, [B, T, K] bool → [B, K, 3] root-relative metres."""
        per_frame = torch.where(valid[..., None], self.embed(x), self.mask_token)  # [B, T, K, W]
        tokens = self.frame_mix(per_frame.permute(0, 2, 1, 3).flatten(2)) + self.joint_embed  # [B, K, W]
        for layer in self.layers:
            tokens = layer(tokens)
        out = self.head(self.norm(tokens))
        return out - out[:, ROOT : ROOT + 1]
