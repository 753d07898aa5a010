"""Model presets in one table, the factory, and compute accounting (parameters, forward FLOPs).

Every model maps ``[B, 3, H, W]`` float images to::

    dict(heatmaps=[B, K, H/4, W/4], depth=[B, K, H/4, W/4], stacks=[(heatmaps, depth), ...])

``stacks`` lists every stack's outputs, first to last (one entry for ResNet), for intermediate
supervision; ``heatmaps`` / ``depth`` are the last stack's. Depth maps are read at the joint
(``pose_study.data.codecs.sample_maps``). Presets:

* ``hg1`` … ``hg8``: Newell's stacked hourglass (256 features, 1 residual module, depth 4).
* ``hg*_tiny``: narrow hourglasses that train on 2 CPU cores at 64×64 input (the CPU size axis).
* ``resnet18`` … ``resnet152``: the seed's ResNet + 3 deconvolutions; ``resnet_tiny`` for tests.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from pose_study.models.hourglass import StackedHourglass
from pose_study.models.resnet import BLOCKS, PoseResNet, load_backbone_weights

ARCHS = ("hourglass", "resnet")


@dataclass(frozen=True)
class ModelPreset:
    """One model size.

    Attributes:
        arch: ``"hourglass"`` or ``"resnet"``.
        stacks: Hourglass stacks (hourglass only).
        modules: Residual modules per hourglass branch (hourglass only).
        features: Channels inside the hourglasses (hourglass only).
        depth: Hourglass recursion levels (hourglass only).
        stem: Channels of the hourglass stem's conv and residuals (hourglass only).
        block: ``"basic"`` or ``"bottleneck"`` (resnet only).
        layers: Blocks per ResNet stage (resnet only).
        widths: Planes per ResNet stage (resnet only).
        deconv_channels: Channels of the 3 deconvolutions (resnet only).
    """

    arch: str
    stacks: int = 1
    modules: int = 1
    features: int = 256
    depth: int = 4
    stem: tuple[int, int] = (64, 128)
    block: str = "basic"
    layers: tuple[int, ...] = (2, 2, 2, 2)
    widths: tuple[int, ...] = (64, 128, 256, 512)
    deconv_channels: int = 256

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; choices: {ARCHS}")
        if self.block not in BLOCKS:
            raise ValueError(f"unknown ResNet block {self.block!r}; choices: {sorted(BLOCKS)}")
        if len(self.layers) != len(self.widths):
            raise ValueError(f"layers {self.layers} and widths {self.widths} differ in length")


_TINY_HG = dict(arch="hourglass", features=32, depth=3, stem=(16, 32))

MODELS: dict[str, ModelPreset] = {
    # Newell et al. 2016: 256 features, 1 module, depth 4.
    "hg1": ModelPreset("hourglass", stacks=1),
    "hg2": ModelPreset("hourglass", stacks=2),
    "hg4": ModelPreset("hourglass", stacks=4),
    "hg8": ModelPreset("hourglass", stacks=8),
    # CPU size axis: 32 features, depth 3 (64×64 input → 16×16 maps, 2×2 at the bottom).
    "hg1_tiny": ModelPreset(**_TINY_HG, stacks=1),
    "hg2_tiny": ModelPreset(**_TINY_HG, stacks=2),
    "hg4_tiny": ModelPreset(**_TINY_HG, stacks=4),
    # Simple Baselines, the seed's model (reference/seed_system.md §1.1).
    "resnet18": ModelPreset("resnet", block="basic", layers=(2, 2, 2, 2)),
    "resnet34": ModelPreset("resnet", block="basic", layers=(3, 4, 6, 3)),
    "resnet50": ModelPreset("resnet", block="bottleneck", layers=(3, 4, 6, 3)),
    "resnet101": ModelPreset("resnet", block="bottleneck", layers=(3, 4, 23, 3)),
    "resnet152": ModelPreset("resnet", block="bottleneck", layers=(3, 8, 36, 3)),
    "resnet_tiny": ModelPreset("resnet", block="basic", layers=(1, 1, 1, 1), widths=(16, 32, 64, 128),
                               deconv_channels=64),
}
assert all(re.fullmatch(r"[a-z0-9_]+", name) for name in MODELS)


def build_from_preset(preset: ModelPreset, num_joints: int = 17,
                      pretrained: str | os.PathLike | None = None) -> nn.Module:
    """Build a model from a preset (see ``build_model``)."""
    if preset.arch == "resnet":
        model = PoseResNet(num_joints, preset.block, preset.layers, preset.widths, preset.deconv_channels)
        if pretrained is not None:
            load_backbone_weights(model.backbone, pretrained)
        return model
    if pretrained is not None:
        raise ValueError(f"pretrained={str(pretrained)!r}: ImageNet weights exist only for arch 'resnet'")
    return StackedHourglass(num_joints, preset.stacks, preset.modules, preset.features, preset.depth,
                            preset.stem)


def build_model(name: str, num_joints: int = 17, pretrained: str | os.PathLike | None = None) -> nn.Module:
    """Build the model ``name`` from ``MODELS``.

    Args:
        name: A key of ``MODELS``.
        num_joints: K, the number of heatmap and depth channels.
        pretrained: None (random init) or a local torchvision/timm ResNet ImageNet checkpoint for
            the backbone; never downloaded.

    Raises:
        ValueError: Unknown ``name``, a checkpoint whose keys do not fit, or ``pretrained`` for
            an hourglass.
        FileNotFoundError: ``pretrained`` does not exist.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choices: {sorted(MODELS)}")
    return build_from_preset(MODELS[name], num_joints, pretrained)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def forward_flops(model: nn.Module, input_size: int) -> int:
    """Forward FLOPs per image at ``input_size``² input, from ``torch.utils.flop_counter``.

    Counts 2 FLOPs per multiply-add of convolutions (transposed ones per *input* pixel, i.e. true
    MACs) and matmuls; BatchNorm, activations and additions are not counted. The forward runs on
    meta tensors in eval mode, so it costs no compute and leaves ``model`` unchanged.
    """
    return meta_flops(model, torch.empty(1, 3, input_size, input_size, device="meta"))


def meta_flops(module: nn.Module, *inputs: torch.Tensor) -> int:
    """Forward FLOPs of ``module(*inputs)`` by ``torch.utils.flop_counter`` on meta tensors.

    ``inputs`` are meta tensors; the forward runs in eval mode with meta copies of the weights, so it
    costs no compute and leaves ``module`` unchanged.
    """
    tensors = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    meta = {k: torch.empty_like(v, device="meta") for k, v in tensors.items()}
    was_training = module.training
    module.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            functional_call(module, meta, inputs)
    finally:
        module.train(was_training)
    return counter.get_total_flops()
