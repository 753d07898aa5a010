"""Model presets in one table, the factory, and compute accounting (parameters, forward FLOPs).

Every model maps ``[B, 3, H, W]`` float images to::

    dict(heatmaps=[B, K, H/4, W/4], depth=[B, K, H/4, W/4], stacks=[(heatmaps, depth), ...])

``stacks`` lists every stack's outputs, first to last (one entry for ResNet), for intermediate
supervision; ``heatmaps`` / ``depth`` are the last stack's. Depth maps are read at the joint
(``pose_study.data.codecs.sample_maps``). The presets are data in ``pose_study.presets``:

* ``hg1`` … ``hg8``: Newell's stacked hourglass (256 features, 1 residual module, depth 4).
* ``hg*_tiny``: narrow hourglasses that train on 2 CPU cores at 64×64 input (the CPU size axis).
* ``resnet18`` … ``resnet152``: the seed's ResNet + 3 deconvolutions; ``resnet_tiny`` for tests.
"""

from __future__ import annotations

import os

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from pose_study.models.hourglass import StackedHourglass
from pose_study.models.resnet import BLOCKS, PoseResNet, load_backbone_weights
from pose_study.presets import MODELS, ModelPreset, RESNET_BLOCKS

assert set(BLOCKS) == set(RESNET_BLOCKS)
__all__ = ["MODELS", "ModelPreset", "build_model", "build_from_preset", "count_parameters", "forward_flops",
           "meta_flops"]


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
            the backbone (read from disk here; the workflow downloads catalog files).

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
