"""Plumbing shared by the two pose-only training stages (``train_lifter``, ``pretrain_pose``).

Set-up (threads, device, seed), batch sampling, FLOPs per sample, spec options, and writing
``model.pt`` (``lifters.save_lifter``), ``curve.csv``, ``metrics.json`` (the keys of the detector
stages, ``accounting.run_metrics``) and ``spec.json``.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from pose_study import lifters, models
from pose_study._io import write_json
from pose_study._spec import spec_record
from pose_study.data.batches import random_indices
from pose_study.data.poses import PoseData
from pose_study.data.poses import PoseBatch
from pose_study.stages._training import TrainOutputs
from pose_study.train import accounting, distributed
from pose_study.train.lifting import PoseLoopSpec, PoseTraining, Schedule, train_poses
from pose_study.train.loop import resolve_device

log = logging.getLogger(__name__)


def freeze_options(options: Any, owner: str) -> tuple[tuple[str, Any], ...]:
    """Lifter ablation options as sorted (key, value) pairs without None values (hashable, JSON-able).

    Accepts a mapping or a sequence of pairs (what ``spec.json`` holds after a round trip).
    """
    try:
        pairs = dict(options or {})
    except (TypeError, ValueError) as err:
        raise ValueError(f"{owner}.options must be a mapping of lifter options, got {options!r}") from err
    return tuple(sorted((str(k), v) for k, v in pairs.items() if v is not None))


def setup(loop: PoseLoopSpec) -> torch.device:
    """CPU threads by the project rule, the device, and the seed of the initial weights."""
    distributed.configure_threads()
    torch.manual_seed(loop.seed)
    return resolve_device(loop.device)


def sampler(data: PoseData, frames: int):
    """``(batch_size, generator) -> PoseBatch``: uniform draws with replacement from ``data``."""

    def sample(batch_size: int, generator: torch.Generator) -> PoseBatch:
        return data.gather(random_indices(len(data), batch_size, generator), frames)

    return sample


def flops_per_sample(model: nn.Module, crop_size: int) -> int:
    side = crop_size // 4
    return lifters.lifter_flops(model, map_size=(side, side))


def train_and_write(stage: str, spec: Any, run: PoseTraining, schedule: Schedule, val: PoseData,
                    out: TrainOutputs, prior: dict | None, extra: dict) -> dict:
    """Validate, train, and write model.pt, curve.csv, metrics.json and spec.json; returns the metrics."""
    write_json(out.spec_json, spec_record(spec))
    first = run.validate(run.model)
    progress = train_poses(run, schedule, spec.loop, out.checkpoint_dir)
    result = {**accounting.run_metrics(stage, spec.lifter, val, models.count_parameters(run.model),
                                       run.flops_per_sample, progress, first[1], prior),
              "lifter": spec.lifter, **extra}
    lifters.save_lifter(out.model, run.model)
    accounting.write_curve(out.curve, progress.curve)
    write_json(out.metrics, result)
    final = result["final"]
    log.info("%s %s done: %s = %.2f (from %.2f) in %.0f s", stage, spec.lifter, final["metric"], final["value"],
             final["initial_value"], result["compute"]["wall_seconds"])
    return result
