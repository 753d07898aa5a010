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
from dataclasses import asdict
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
from pose_study.presets import (FUSIONS, INPUTS, LIFTER_KINDS, LIFTERS, OPTIONS, REPROJECTIONS, LifterPreset,
                                applicable_options, resolve_preset)
from pose_study.weights import load_file, load_state_dict_strict, model_state, save_file, unwrap

KINDS = {"mlp": MlpLifter, "graph": GraphLifter, "transformer": TransformerLifter, "apt": AptLifter,
         "mpt": MptLifter}
assert set(KINDS) == set(LIFTER_KINDS)
__all__ = ["FUSIONS", "INPUTS", "KINDS", "LIFTERS", "OPTIONS", "REPROJECTIONS", "LifterPreset", "applicable_options",
           "build_lifter",
           "lifter_flops", "load_lifter", "resolve_preset", "save_lifter"]


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
