"""Output heads shared by every model: K heatmaps and K depth maps from one feature map.

The depth map follows the seed (reference/seed_system.md §1.1, §2.5): one channel per joint,
read at the joint's 2D location (``pose_study.data.codecs.sample_maps``).
"""

from __future__ import annotations

import torch
from torch import nn

HEAD_INIT_STD = 0.001  # seed `init_weights`: deconvs and heads ~ N(0, 0.001), bias 0


def init_small(module: nn.Module) -> None:
    """Seed initialisation for heads and deconvolutions: weights N(0, 0.001), bias 0."""
    nn.init.normal_(module.weight, std=HEAD_INIT_STD)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


class JointHeads(nn.Module):
    """Two 1×1 convolutions: ``hm`` (K heatmaps) and ``depth`` (K depth maps).

    Args:
        in_channels: Channels of the feature map.
        num_joints: K.
    """

    def __init__(self, in_channels: int, num_joints: int) -> None:
        super().__init__()
        self.hm = nn.Conv2d(in_channels, num_joints, kernel_size=1)
        self.depth = nn.Conv2d(in_channels, num_joints, kernel_size=1)
        init_small(self.hm)
        init_small(self.depth)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, C, h, w] features → ([B, K, h, w] heatmaps, [B, K, h, w] depth maps)."""
        return self.hm(x), self.depth(x)


def pack_outputs(stacks: list[tuple[torch.Tensor, torch.Tensor]]) -> dict:
    """The forward contract of every model.

    Args:
        stacks: (heatmaps, depth) per stack, first to last; each [B, K, h, w].

    Returns:
        ``dict(heatmaps=last heatmaps, depth=last depth maps, stacks=stacks)``.
    """
    assert stacks, "a model has at least one stack"
    heatmaps, depth = stacks[-1]
    return {"heatmaps": heatmaps, "depth": depth, "stacks": stacks}
