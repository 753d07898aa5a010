"""ResNet backbone + 3 deconvolutions ("Simple Baselines", Xiao et al. ECCV'18), the seed's model.

The backbone is the torchvision / timm ResNet (v1.5: stride on the 3×3 conv of a Bottleneck) with
*exactly* their parameter names (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0``,
…), so a local torchvision or timm ImageNet checkpoint — or a timm ``features_only`` state dict —
loads strictly; only ``fc.*`` is ignored. It is implemented here rather than imported from timm so
the package runs where timm cannot be imported. Architecture: reference/seed_system.md §1.1.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from pose_study.models.heads import JointHeads, init_small, pack_outputs
from pose_study.weights import load_file

log = logging.getLogger(__name__)

IGNORED_PREFIXES = ("fc.",)  # ImageNet classifier: not part of the pose backbone


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1×1 → 3×3 (strided) → 1×1 ×4 (ResNet-50/101/152, v1.5 as torchvision and timm)."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv1x1(in_channels, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Module):
    """ResNet without pooling and classifier; returns the stride-32 feature map.

    Args:
        block: ``"basic"`` or ``"bottleneck"``.
        layers: Blocks per stage, e.g. (3, 4, 6, 3) for ResNet-50.
        widths: Planes per stage; the stem has ``widths[0]`` channels (torchvision: 64/128/256/512).
    """

    def __init__(self, block: str, layers: tuple[int, ...], widths: tuple[int, ...] = (64, 128, 256, 512)):
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"unknown ResNet block {block!r}; choices: {sorted(BLOCKS)}")
        self.block = BLOCKS[block]
        self.in_channels = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        for i, (count, planes) in enumerate(zip(layers, widths)):
            setattr(self, f"layer{i + 1}", self._make_layer(planes, count, stride=1 if i == 0 else 2))
        self.num_stages = len(layers)
        self.out_channels = self.in_channels
        self._init_weights()

    def _make_layer(self, planes: int, count: int, stride: int) -> nn.Sequential:
        out = planes * self.block.expansion
        downsample = None
        if stride != 1 or self.in_channels != out:
            downsample = nn.Sequential(conv1x1(self.in_channels, out, stride), nn.BatchNorm2d(out))
        blocks = [self.block(self.in_channels, planes, stride, downsample)]
        self.in_channels = out
        blocks += [self.block(out, planes) for _ in range(count - 1)]
        return nn.Sequential(*blocks)

    def _init_weights(self) -> None:
        """torchvision's init: Kaiming-normal (fan_out) convs, BN weight 1 and bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] → [B, out_channels, H/32, W/32]."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return x


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a local checkpoint: a plain state dict, or one under ``state_dict`` / ``model``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The file is not loadable with ``weights_only=True`` (e.g. a pickle that would
            run code) or holds no state dict; the message names it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained checkpoint not found: {path}")
    state = load_file(path)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors")
    return state


def load_backbone_weights(backbone: ResNet, path: str | os.PathLike) -> None:
    """Load a local torchvision / timm ResNet checkpoint into ``backbone``, strictly.

    ``fc.*`` is ignored. BatchNorm ``num_batches_tracked`` may be absent (old torchvision files).
    Every other key must match in name and shape.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: Missing, unexpected or mis-shaped keys, all listed.
    """
    state = {k: v for k, v in read_state_dict(path).items() if not k.startswith(IGNORED_PREFIXES)}
    own = backbone.state_dict()
    for key in own:
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = own[key]
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mis_shaped = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or mis_shaped:
        raise ValueError(f"checkpoint {path} does not fit the backbone: missing keys {missing}, "
                         f"unexpected keys {unexpected}, shape mismatches {mis_shaped}")
    backbone.load_state_dict(state, strict=True)
    log.info("loaded %d backbone tensors from %s", len(state), path)


def deconv_layers(in_channels: int, channels: int, count: int = 3) -> nn.Sequential:
    """``count`` × [ConvTranspose2d k4 s2 p1 (no bias) → BN → ReLU]; each doubles the side."""
    layers: list[nn.Module] = []
    for i in range(count):
        deconv = nn.ConvTranspose2d(in_channels if i == 0 else channels, channels, kernel_size=4,
                                    stride=2, padding=1, output_padding=0, bias=False)
        init_small(deconv)
        layers += [deconv, nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class PoseResNet(nn.Module):
    """ResNet backbone (stride 32) + 3 deconvolutions (stride 4) + heatmap and depth heads.

    Args:
        num_joints: K.
        block: ``"basic"`` or ``"bottleneck"``.
        layers: Blocks per stage.
        widths: Planes per stage.
        deconv_channels: Channels of the deconvolutions (seed: 256).
    """

    def __init__(self, num_joints: int, block: str, layers: tuple[int, ...],
                 widths: tuple[int, ...] = (64, 128, 256, 512), deconv_channels: int = 256) -> None:
        super().__init__()
        self.backbone = ResNet(block, layers, widths)
        self.deconv = deconv_layers(self.backbone.out_channels, deconv_channels)
        self.heads = JointHeads(deconv_channels, num_joints)

    def forward(self, images: torch.Tensor) -> dict:
        """[B, 3, H, W] images → the forward contract of ``pose_study.models`` (maps at H/4 × W/4)."""
        heatmaps, depth = self.heads(self.deconv(self.backbone(images)))
        return pack_outputs([(heatmaps, depth)])
