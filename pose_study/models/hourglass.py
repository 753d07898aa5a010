"""Stacked hourglass network (Newell et al., ECCV'16) with per-stack heatmap and depth heads.

Follows Newell's ``hg.lua`` and the seed's upstream ``2D`` branch (reference/seed_system.md §1.2):
pre-activation residual modules with biased convolutions, a recursive hourglass of ``depth``
levels, intermediate supervision after every stack, and the ``ll_`` / ``tmpOut_`` re-injection
``x = x + 1×1(ll) + 1×1(heatmaps)`` *between* stacks. Output stride is 4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pose_study.models.heads import JointHeads, pack_outputs


class Residual(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-1×1(C/2)-BN-ReLU-3×3(C/2)-BN-ReLU-1×1(C), plus skip.

    The skip is a 1×1 convolution when ``in_channels != out_channels``, else the identity.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = out_channels // 2
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, mid, kernel_size=1),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, kernel_size=3, padding=1),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, kernel_size=1),
        )
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


def residuals(channels: int, count: int) -> nn.Sequential:
    """``count`` Residual(channels → channels) modules in sequence."""
    return nn.Sequential(*(Residual(channels, channels) for _ in range(count)))


class Hourglass(nn.Module):
    """One hourglass: ``depth`` levels of (2×2 max-pool down, nearest ×2 up) with skip branches.

    Args:
        depth: Recursion levels (Newell: 4); the input side must be ≥ 2**depth pixels.
        features: Channels throughout.
        modules: Residual modules per branch (Newell: 1; the seed's ``2D`` branch: 2).
    """

    def __init__(self, depth: int, features: int, modules: int) -> None:
        super().__init__()
        self.up = residuals(features, modules)
        self.low1 = residuals(features, modules)
        self.low2 = Hourglass(depth - 1, features, modules) if depth > 1 else residuals(features, modules)
        self.low3 = residuals(features, modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = self.up(x)
        low = self.low3(self.low2(self.low1(F.max_pool2d(x, 2))))
        # size= rather than scale_factor=2 so odd feature sides still line up.
        return up + F.interpolate(low, size=up.shape[-2:], mode="nearest")


def stem(stem_channels: tuple[int, int], features: int) -> nn.Sequential:
    """Stride-4 stem: 7×7/2 conv + BN + ReLU, Residual(c0→c1), 2×2 max-pool, Residual(c1→c1),
    Residual(c1→features). Newell: ``stem_channels = (64, 128)``."""
    c0, c1 = stem_channels
    return nn.Sequential(
        nn.Conv2d(3, c0, kernel_size=7, stride=2, padding=3),
        nn.BatchNorm2d(c0), nn.ReLU(inplace=True),
        Residual(c0, c1),
        nn.MaxPool2d(2),
        Residual(c1, c1),
        Residual(c1, features),
    )


def linear_layer(features: int) -> nn.Sequential:
    """Newell's ``lin``: 1×1 conv + BN + ReLU."""
    return nn.Sequential(nn.Conv2d(features, features, 1), nn.BatchNorm2d(features), nn.ReLU(inplace=True))


class StackedHourglass(nn.Module):
    """Stacked hourglass with K heatmaps and K depth maps per stack.

    Args:
        num_joints: K.
        stacks: Number of hourglasses.
        modules: Residual modules per hourglass branch and after each hourglass.
        features: Channels inside the hourglasses.
        depth: Hourglass recursion levels.
        stem_channels: Channels of the stem's first conv and of its residuals.
    """

    def __init__(self, num_joints: int, stacks: int, modules: int = 1, features: int = 256,
                 depth: int = 4, stem_channels: tuple[int, int] = (64, 128)) -> None:
        super().__init__()
        self.stem = stem(stem_channels, features)
        self.hourglasses = nn.ModuleList(Hourglass(depth, features, modules) for _ in range(stacks))
        self.features = nn.ModuleList(residuals(features, modules) for _ in range(stacks))
        self.lin = nn.ModuleList(linear_layer(features) for _ in range(stacks))
        self.heads = nn.ModuleList(JointHeads(features, num_joints) for _ in range(stacks))
        # Re-injection (Newell's ll_ and tmpOut_), only between stacks.
        self.remap_features = nn.ModuleList(nn.Conv2d(features, features, 1) for _ in range(stacks - 1))
        self.remap_heatmaps = nn.ModuleList(nn.Conv2d(num_joints, features, 1) for _ in range(stacks - 1))

    def forward(self, images: torch.Tensor) -> dict:
        """[B, 3, H, W] images → the forward contract of ``pose_study.models`` (maps at H/4 × W/4)."""
        x = self.stem(images)
        stacks = []
        for i, hourglass in enumerate(self.hourglasses):
            y = self.lin[i](self.features[i](hourglass(x)))
            heatmaps, depth = self.heads[i](y)
            stacks.append((heatmaps, depth))
            if i < len(self.remap_features):
                x = x + self.remap_features[i](y) + self.remap_heatmaps[i](heatmaps)
        return pack_outputs(stacks)
