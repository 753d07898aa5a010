"""Martinez et al. (2017), "A simple yet effective baseline for 3d human pose estimation".

The T frames' normalised 2D joints and validity flags, flattened, pass through a linear stem and
``blocks`` residual blocks of two (Linear, BatchNorm, ReLU, Dropout) layers, then a linear layer
regresses the centre frame's K × 3 joints. The paper's max-norm weight constraint is left out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from pose_study.skeletons import ROOT

if TYPE_CHECKING:
    from pose_study.presets import LifterPreset


def _layer(width: int, dropout: float, in_features: int | None = None) -> nn.Sequential:
    """Linear → BatchNorm → ReLU → Dropout."""
    return nn.Sequential(nn.Linear(in_features or width, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
                         nn.Dropout(dropout))


class ResidualBlock(nn.Module):
    """Two fully connected layers with an identity shortcut."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.Sequential(_layer(width, dropout), _layer(width, dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


class MlpLifter(nn.Module):
    """Fully connected residual lifter.

    Args:
        preset: A ``LifterPreset`` of kind ``mlp`` (``width``, ``blocks``, ``frames``, ``dropout``).
        num_joints: K.
    """

    def __init__(self, preset: LifterPreset, num_joints: int) -> None:
        super().__init__()
        self.num_joints = num_joints
        in_features = preset.frames * num_joints * 3  # (x, y, valid) per joint and frame
        self.stem = _layer(preset.width, preset.dropout, in_features)
        blocks = [ResidualBlock(preset.width, preset.dropout) for _ in range(preset.blocks)]
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(preset.width, num_joints * 3)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """[B, T, K, 2] normalised 2D, [B, T, K] bool → [B, K, 3] root-relative metres."""
        mask = valid.to(x.dtype)
        features = torch.cat([x * mask[..., None], mask[..., None]], -1).flatten(1)
        out = self.head(self.blocks(self.stem(features))).unflatten(1, (self.num_joints, 3))
        return out - out[:, ROOT : ROOT + 1]
