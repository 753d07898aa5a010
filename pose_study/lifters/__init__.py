"""2D→3D lifter presets in one table, the factory, weight files and compute accounting.

A lifter maps 2D evidence of one person to its root-relative 3D joints in metres (camera axes):

* ``input_kind == "coords"``: ``forward(x [B, T, K, 2], valid [B, T, K]) -> [B, K, 3]`` for the
  centre frame of T = ``frames`` frames; ``x`` is ``inputs.normalise_2d`` of crop-pixel joints.
* ``input_kind == "heatmaps"``: ``forward(x [B, K, H, W], valid [B, K]) -> [B, K, 3]``.

Kinds: ``mlp`` (Martinez et al.'s fully connected residual baseline), ``graph`` (a graph
convolution network over the skeleton), ``transformer`` (joints as tokens), ``apt`` (APTPose's
hierarchical masked sequence lifter) and ``mpt`` (MPT's heatmap regression transformer).
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from pose_study._spec import provenance
from pose_study.lifters.apt import AptLifter
from pose_study.lifters.graph import GraphLifter
from pose_study.lifters.mlp import MlpLifter
from pose_study.lifters.mpt import MptLifter
from pose_study.lifters.transformer import TransformerLifter
from pose_study.models import meta_flops
from pose_study.weights import load_file, load_state_dict_strict, model_state, save_file, unwrap

KINDS = {"mlp": MlpLifter, "graph": GraphLifter, "transformer": TransformerLifter, "apt": AptLifter,
         "mpt": MptLifter}
INPUTS = ("coords", "heatmaps")
FUSIONS = ("multiply", "add")
OPTIONS = ("input", "fusion")  # the ablation switches a study config may override


@dataclass(frozen=True)
class LifterPreset:
    """One lifter.

    Attributes:
        kind: A key of ``KINDS``.
        width: Hidden width (mlp: linear width; others: token/feature channels).
        blocks: Residual blocks (mlp), graph layers (graph) or transformer layers.
        frames: Input frames T (odd); the centre frame is predicted.
        heads: Attention heads (transformer, apt, mpt).
        dropout: Dropout probability.
        patch: Heatmap patch side in heatmap pixels (mpt).
        input: ``coords`` or ``heatmaps`` (mpt's ablation switch; the others take coords).
        fusion: How APTPose fuses its four mask-level encoders: ``multiply`` or ``add``.
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

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown lifter kind {self.kind!r}; choices: {sorted(KINDS)}")
        if self.input not in INPUTS:
            raise ValueError(f"lifter input must be one of {INPUTS}, got {self.input!r}")
        if self.input == "heatmaps" and self.kind != "mpt":
            raise ValueError(f"only mpt lifters take heatmaps; {self.kind} takes coords")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.frames < 1 or self.frames % 2 == 0:
            raise ValueError(f"frames must be odd and ≥ 1 (the centre frame is predicted), got {self.frames}")


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
    # APTPose-style sequence lifter (the paper uses 243 frames; 9 keep CPU studies small).
    "apt": LifterPreset("apt", width=256, blocks=4, frames=27, heads=8),
    "apt_tiny": LifterPreset("apt", width=64, blocks=2, frames=9, heads=4),
    # MPT-style regression transformer over heatmap patches plus joint queries.
    "mpt": LifterPreset("mpt", width=256, blocks=6, heads=8, patch=8, input="heatmaps"),
    "mpt_tiny": LifterPreset("mpt", width=64, blocks=2, heads=4, patch=4, input="heatmaps"),
}
assert all(re.fullmatch(r"[a-z0-9_]+", name) for name in LIFTERS)


def resolve_preset(name: str, options: dict[str, Any] | None = None) -> LifterPreset:
    """``LIFTERS[name]`` with the ablation ``options`` (``input``, ``fusion``) applied."""
    if name not in LIFTERS:
        raise ValueError(f"unknown lifter {name!r}; choices: {sorted(LIFTERS)}")
    options = {k: v for k, v in (options or {}).items() if v is not None}
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"lifter {name!r}: unknown option(s) {unknown}; allowed: {list(OPTIONS)}")
    return replace(LIFTERS[name], **options)


def applicable_options(name: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """The study-wide ablation ``options`` that concern lifter ``name`` (fusion: apt; input: mpt)."""
    kind = LIFTERS[name].kind
    concerns = {"fusion": kind == "apt", "input": kind == "mpt"}
    return {k: v for k, v in (options or {}).items() if concerns.get(k, True) and v is not None}


def build_lifter(name: str, num_joints: int = 17, options: dict[str, Any] | None = None) -> nn.Module:
    """Build lifter ``name`` (a key of ``LIFTERS``) with the ablation ``options`` applied.

    The module carries ``preset_name``, ``options``, ``input_kind`` and ``frames``.
    """
    preset = resolve_preset(name, options)
    lifter = KINDS[preset.kind](preset, num_joints)
    lifter.preset_name = name
    lifter.options = {k: v for k, v in (options or {}).items() if v is not None}
    lifter.input_kind = preset.input
    lifter.frames = preset.frames
    return lifter


def lifter_record(lifter: nn.Module) -> dict[str, Any]:
    """What a weight file holds of a lifter: preset name, options and a CPU state dict."""
    plain = unwrap(lifter)
    return {"preset": plain.preset_name, "options": dict(plain.options), "state_dict": model_state(plain)}


def lifter_from_record(record: dict[str, Any], where: str, num_joints: int = 17) -> nn.Module:
    """Rebuild a lifter from ``lifter_record`` output (strict key check; errors name ``where``)."""
    try:
        lifter = build_lifter(record["preset"], num_joints, record.get("options"))
    except (KeyError, ValueError) as err:
        raise ValueError(f"{where}: not a lifter weight record ({err})") from err
    load_state_dict_strict(lifter, record["state_dict"], f"{where} (lifter {record['preset']!r})")
    return lifter


def save_lifter(path: str | os.PathLike, lifter: nn.Module) -> None:
    """Write a lifter weight file atomically (``model.pt`` of ``train_lifter``/``pretrain_pose``)."""
    save_file(path, {**lifter_record(lifter), "provenance": provenance()})


def load_lifter(path: str | os.PathLike, num_joints: int = 17) -> nn.Module:
    """A lifter from its weight file, or from the ``lifter`` entry of a detector's ``model.pt``."""
    state = load_file(path)
    record = state.get("lifter", state) if isinstance(state, dict) else None
    if not isinstance(record, dict) or "preset" not in record or record["preset"] not in LIFTERS:
        raise ValueError(f"{path}: holds no lifter (a train_lifter/pretrain_pose model.pt, or an "
                         "end-to-end finetune_3d model.pt, is expected)")
    return lifter_from_record(record, str(path), num_joints)


def example_input(lifter: nn.Module, batch: int = 1, num_joints: int = 17, map_size: tuple[int, int] = (16, 16),
                  device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """An input of the right shape for ``lifter`` (zeros; ``valid`` all True)."""
    if lifter.input_kind == "heatmaps":
        return (torch.zeros(batch, num_joints, *map_size, device=device),
                torch.ones(batch, num_joints, dtype=torch.bool, device=device))
    t = lifter.frames
    return (torch.zeros(batch, t, num_joints, 2, device=device),
            torch.ones(batch, t, num_joints, dtype=torch.bool, device=device))


def lifter_flops(lifter: nn.Module, num_joints: int = 17, map_size: tuple[int, int] = (16, 16)) -> int:
    """Forward FLOPs per sample (torch's counter on meta tensors; 2 per multiply-add)."""
    return meta_flops(lifter, *example_input(lifter, 1, num_joints, map_size, device="meta"))


def preset_record(name: str) -> dict[str, Any]:
    """A preset as plain data (for specs and the report)."""
    return asdict(LIFTERS[name])
