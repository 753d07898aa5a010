"""Model and lifter size presets as data: the tables the config, the plan and the builders share.

Torch-free on purpose: Snakemake parses the workflow (once per local run, twice per SLURM job) and
imports this module, not the networks. ``pose_study.models`` and ``pose_study.lifters`` build the
networks from these entries.

* ``MODELS``: ``hg1`` … ``hg8`` (Newell's stacked hourglass: 256 features, 1 residual module,
  depth 4), ``hg*_tiny`` (narrow hourglasses for 2 CPU cores at 64×64 input), ``resnet18`` …
  ``resnet152`` (the seed's ResNet + 3 deconvolutions) and ``resnet_tiny`` (tests).
* ``LIFTERS``: 2D→3D lifters ``mlp``, ``graph``, ``transformer``, ``apt``, ``mpt`` and their
  ``*_tiny`` CPU sizes, with the ablation ``OPTIONS`` a study may switch.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

# --- detectors ------------------------------------------------------------------------------------

ARCHS = ("hourglass", "resnet")
RESNET_BLOCKS = ("basic", "bottleneck")


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
        if self.block not in RESNET_BLOCKS:
            raise ValueError(f"unknown ResNet block {self.block!r}; choices: {RESNET_BLOCKS}")
        if len(self.layers) != len(self.widths):
            raise ValueError(f"layers {self.layers} and widths {self.widths} differ in length")


def relative_cost(preset: ModelPreset) -> float:
    """A torch-free proxy of a preset's compute per image, for ordering jobs (not FLOPs: ``cost`` counts those).

    Hourglass: stacks × modules × depth × features². ResNet: Σ blocks × convs per block × width² over the
    stages, each at a quarter of the previous stage's area.
    """
    if preset.arch == "hourglass":
        return float(preset.stacks * preset.modules * preset.depth * preset.features**2)
    convs = 2 if preset.block == "basic" else 3
    return float(sum(n * convs * w**2 / 4**i for i, (n, w) in enumerate(zip(preset.layers, preset.widths))))


_TINY_HG = dict(arch="hourglass", features=32, depth=3, stem=(16, 32))
_SMALL_HG = dict(arch="hourglass", features=64, depth=3, stem=(32, 64))

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
    "hg1_small": ModelPreset(**_SMALL_HG, stacks=1),
    "hg2_small": ModelPreset(**_SMALL_HG, stacks=2),
    "hg3_small": ModelPreset(**_SMALL_HG, stacks=3),
    "hg4_small": ModelPreset(**_SMALL_HG, stacks=4),
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


# --- lifters ---------------------------------------------------------------------------------------

LIFTER_KINDS = ("mlp", "graph", "transformer", "apt", "mpt")
INPUTS = ("coords", "heatmaps")
FUSIONS = ("multiply", "add")
REPROJECTIONS = ("learned", "analytic")  # APTPose's reprojection: the paper's learned module, or the camera
OPTIONS = ("input", "fusion", "reprojection")  # the ablation switches a study config may override


@dataclass(frozen=True)
class LifterPreset:
    """One lifter.

    Attributes:
        kind: One of ``LIFTER_KINDS``.
        width: Hidden width (mlp: linear width; others: token/feature channels).
        blocks: Residual blocks (mlp), graph layers (graph) or transformer layers.
        frames: Input frames T (odd); the centre frame is predicted.
        heads: Attention heads (transformer, apt, mpt).
        dropout: Dropout probability.
        patch: Heatmap patch side in heatmap pixels (mpt).
        input: ``coords`` or ``heatmaps`` (mpt's ablation switch; the others take coords).
        fusion: How APTPose fuses its four mask-level encoders: ``multiply`` or ``add``.
        reprojection: APTPose's 2D reprojection in pre-training: ``learned`` (the paper's MLP with
            residual blocks) or ``analytic`` (camera projection / weak-perspective fit, the ablation).
    """

    kind: str
    width: int = 256
    blocks: int = 2
    frames: int = 1
    heads: int = 4
    dropout: float = 0.1
    patch: int = 4
    input: str = "coords"
    fusion: str = "multiply"
    reprojection: str = "learned"

    def __post_init__(self) -> None:
        if self.kind not in LIFTER_KINDS:
            raise ValueError(f"unknown lifter kind {self.kind!r}; choices: {LIFTER_KINDS}")
        if self.input not in INPUTS:
            raise ValueError(f"lifter input must be one of {INPUTS}, got {self.input!r}")
        if self.input == "heatmaps" and self.kind != "mpt":
            raise ValueError(f"only mpt lifters take heatmaps; {self.kind} takes coords")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.reprojection not in REPROJECTIONS:
            raise ValueError(f"reprojection must be one of {REPROJECTIONS}, got {self.reprojection!r}")
        if self.frames < 1 or self.frames % 2 == 0:
            raise ValueError(f"frames must be odd and ≥ 1 (the centre frame is predicted), got {self.frames}")
        if self.kind == "apt" and 3 ** round(math.log(self.frames, 3)) != self.frames:
            raise ValueError(f"apt lifters aggregate frames by 3 per stage: frames must be a power of 3, "
                             f"got {self.frames}")


LIFTERS: dict[str, LifterPreset] = {
    # Martinez et al. 2017: 1024 wide, 2 residual blocks, dropout 0.5.
    "mlp": LifterPreset("mlp", width=1024, blocks=2, dropout=0.5),
    "mlp_tiny": LifterPreset("mlp", width=256, blocks=2, dropout=0.25),
    # A graph network over the skeleton (SemGCN's size: 128 channels, 4 residual blocks).
    "graph": LifterPreset("graph", width=128, blocks=4),
    "graph_tiny": LifterPreset("graph", width=64, blocks=4),
    # Joints as tokens (a spatial transformer in the style of PoseFormer's spatial block).
    "transformer": LifterPreset("transformer", width=128, blocks=4, heads=8),
    "transformer_tiny": LifterPreset("transformer", width=64, blocks=2, heads=4),
    # APTPose's sequence lifter. The paper reads 243 consecutive frames; the study stores every 5th H36M frame
    # (config/paper.yaml), so 27 stored frames span 135 video frames. 9 keep CPU studies small.
    "apt": LifterPreset("apt", width=256, blocks=4, frames=27, heads=8),
    "apt_tiny": LifterPreset("apt", width=64, blocks=2, frames=9, heads=4),
    # MPT-style regression transformer over heatmap patches plus joint queries.
    "mpt": LifterPreset("mpt", width=256, blocks=6, heads=8, patch=8, input="heatmaps"),
    "mpt_tiny": LifterPreset("mpt", width=64, blocks=2, heads=4, patch=4, input="heatmaps"),
}
assert all(re.fullmatch(r"[a-z0-9_]+", name) for name in LIFTERS)


def resolve_preset(name: str, options: dict[str, Any] | None = None) -> LifterPreset:
    """``LIFTERS[name]`` with the ablation ``options`` (``input``, ``fusion``, ``reprojection``) applied."""
    if name not in LIFTERS:
        raise ValueError(f"unknown lifter {name!r}; choices: {sorted(LIFTERS)}")
    options = {k: v for k, v in (options or {}).items() if v is not None}
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"lifter {name!r}: unknown option(s) {unknown}; allowed: {list(OPTIONS)}")
    return replace(LIFTERS[name], **options)


def applicable_options(name: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """The study-wide ablation ``options`` that concern lifter ``name``.

    fusion and reprojection concern apt lifters, input mpt ones.
    """
    kind = LIFTERS[name].kind
    concerns = {"fusion": kind == "apt", "reprojection": kind == "apt", "input": kind == "mpt"}
    return {k: v for k, v in (options or {}).items() if concerns.get(k, True) and v is not None}
