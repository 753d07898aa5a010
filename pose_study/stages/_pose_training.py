"""Plumbing shared by the two pose-only training stages (``train_lifter``, ``pretrain_pose``).

Their loop defaults (``pose_loop``), set-up (threads, device, seed), batch sampling, FLOPs per
sample, spec options, and the hand-over to the training stages' common ``_training.train_and_write``
(``model.pt`` by ``lifters.save_lifter``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pose_study import lifters
from pose_study.data.batches import random_indices
from pose_study.data.poses import PoseBatch, PoseData
from pose_study.stages import _training
from pose_study.train import distributed
from pose_study.train.lifting import PoseTask
from pose_study.train.loop import LoopSpec, Phase, fingerprint, resolve_device


def pose_loop() -> LoopSpec:
    """The pose-only stages' loop defaults (the schema's ``$defs/pose_loop_defaults``)."""
    return LoopSpec(batch_size=256, grad_clip=1.0, amp=False, channels_last=False,
                    eval_every=200, eval_samples=512, log_every=100, checkpoint_every=500)


def freeze_options(options: Any, owner: str) -> tuple[tuple[str, Any], ...]:
    """Lifter ablation options as sorted (key, value) pairs without None values (hashable, JSON-able).

    Accepts a mapping or a sequence of pairs (what ``spec.json`` holds after a round trip).
    """
    try:
        pairs = dict(options or {})
    except (TypeError, ValueError) as err:
        raise ValueError(f"{owner}.options must be a mapping of lifter options, got {options!r}") from err
    return tuple(sorted((str(k), v) for k, v in pairs.items() if v is not None))


def setup(loop: LoopSpec) -> torch.device:
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


def train_and_write(stage: str, spec: Any, model: nn.Module, task: PoseTask, identity: dict, out:
                    _training.TrainOutputs, prior: dict | None, extra: dict) -> dict:
    """Train ``model`` on ``task`` for ``spec.steps`` and write the stage's outputs; returns the metrics.

    Args:
        stage: Stage name. spec: The stage's spec (``lifter``, ``steps``, ``lr``, ``lr_steps``, ``loop``).
        model: The lifter on its device. task: What it is trained on.
        identity: What identifies the run's inputs (splits, prior) in its fingerprint.
        out: Where to write. prior: ``compute_total`` of the run this one starts from, or None.
        extra: More ``metrics.json`` entries.
    """
    phase = Phase(stage, spec.steps, task, spec.loop.schedule(spec.lr, spec.lr_steps))
    return _training.train_and_write(stage, spec, model, spec.lifter, [phase], out, task.val,
                                     flops_per_sample(model, task.val.crop_size), fingerprint(spec, identity),
                                     prior, {"lifter": spec.lifter, **extra}, lifters.save_lifter)
