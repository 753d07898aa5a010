"""Stage ``train_lifter``: a 2D→3D lifter trained on ground-truth 2D of a 3D training split.

Input: the 2D joints (+ Gaussian noise, random left/right flips) of the 3D training split; target:
the root-relative 3D joints in metres. Single-frame lifters minimise the MSE of the centre frame;
sequence lifters (``apt``) the pose + bone-vector L2 of the whole window and of the centre frame
(``lifters.pretraining.sequence_pose_loss``). Validation: MPJPE (mm, root-relative) from ground-truth
2D on the validation split. ``init = "pretrain_pose"`` starts from a ``pretrain-pose`` model.pt and
carries its compute (``--init-metrics``) into ``compute_total``.

Outputs: ``model.pt`` (``lifters.save_lifter``), ``metrics.json`` (the keys of the detector stages
plus ``lifter``, ``init``, ``dataset_3d``), ``curve.csv`` and ``spec.json``. Resume state goes to
``--checkpoint-dir``.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pose_study import lifters
from pose_study._spec import load_spec_arg
from pose_study.data.formats import check_split
from pose_study.data.poses import PoseData
from pose_study.data.poses import PoseBatch
from pose_study.lifters.inputs import relative_3d
from pose_study.stages import _training
from pose_study.stages._pose_training import freeze_options, pose_loop, sampler, setup, train_and_write
from pose_study.train import checkpoint
from pose_study.train.lifting import PoseTask, centre_mse_loss, lifter_inputs
from pose_study.train.loop import LoopSpec

log = logging.getLogger(__name__)
INITS = ("scratch", "pretrain_pose")


@dataclass(frozen=True)
class TrainLifterSpec:
    """Resolved settings of one lifter training run.

    Attributes:
        lifter: Preset name (``pose_study.lifters.LIFTERS``).
        init: ``scratch`` or ``pretrain_pose`` (start from ``--init-weights``).
        steps: Optimiser steps.
        lr: Initial Adam learning rate.
        lr_steps: Fractions of ``steps`` after which the LR drops ×``loop.lr_decay``.
        noise_px: Gaussian noise added to the 2D input (crop px).
        options: Lifter ablation options (``lifters.OPTIONS``, e.g. ``{"fusion": "add"}``); stored as
            sorted (key, value) pairs, None values dropped.
        loop: Loop settings (``loop.batch_size``: samples, sequences for sequence lifters, per step).
    """

    lifter: str
    init: str = "scratch"
    steps: int = 2000
    lr: float = 1e-3
    lr_steps: tuple[float, ...] = (0.75,)
    noise_px: float = 1.0
    options: tuple[tuple[str, Any], ...] = ()
    loop: LoopSpec = field(default_factory=pose_loop)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", freeze_options(self.options, "TrainLifterSpec"))
        lifters.resolve_preset(self.lifter, dict(self.options))  # names a bad lifter or option
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.steps < 1:
            raise ValueError(f"steps must be ≥ 1, got {self.steps}")
        if self.noise_px < 0:
            raise ValueError(f"noise_px must be ≥ 0, got {self.noise_px}")


def sequence_loss(model: nn.Module, batch: PoseBatch,
                  generator: torch.Generator) -> dict[str, torch.Tensor]:  # noqa: ARG001
    """Sequence lifters: pose + bone-vector L2 on the decoded window and the aggregated centre frame (APTPose)."""
    from pose_study.lifters.pretraining import sequence_pose_loss

    x, valid = lifter_inputs(model, batch)
    target = relative_3d(batch.joints_3d, batch.valid_3d)
    out = model(x, valid, sequence=True)  # the decoded window and the aggregator's centre frame
    return sequence_pose_loss(out["sequence"], target, batch.valid_3d, centre=out["centre"])


def initial_lifter(spec: TrainLifterSpec, init_weights: Path | None) -> nn.Module:
    """A fresh lifter (``scratch``) or the pre-trained one in ``init_weights`` (``pretrain_pose``)."""
    if spec.init == "scratch":
        if init_weights is not None:
            raise ValueError("init 'scratch' takes no --init-weights")
        return lifters.build_lifter(spec.lifter, options=dict(spec.options))
    if init_weights is None:
        raise ValueError("init 'pretrain_pose' needs --init-weights (a pretrain-pose model.pt)")
    model = lifters.load_lifter(init_weights)
    options = tuple(sorted(model.options.items()))
    if model.preset_name != spec.lifter or options != spec.options:
        raise ValueError(f"{init_weights}: holds lifter {model.preset_name!r} with options {dict(options)}, but "
                         f"the spec trains {spec.lifter!r} with options {dict(spec.options)}")
    return model


def run(spec: TrainLifterSpec, train_3d: Path, val_3d: Path, out: _training.TrainOutputs,
        init_weights: Path | None = None, init_metrics: Path | None = None) -> dict:
    """Train ``spec.lifter`` on ``train_3d``; returns the metrics written to ``out.metrics``."""
    check_split(train_3d, "--train-3d", needs_3d=True)
    check_split(val_3d, "--val-3d", needs_3d=True)
    checkpoint.claim_folder(out.checkpoint_dir)
    device = setup(spec.loop)
    model = initial_lifter(spec, init_weights).to(device)
    train = PoseData.load(train_3d, device, model.frames)
    val = PoseData.load(val_3d, device, model.frames)
    if not train.has_3d or not val.has_3d:
        raise ValueError(f"train_lifter needs 3D labels in both splits: {train_3d} and {val_3d}")
    prior = _training.read_prior(init_metrics)
    loss = (sequence_loss if hasattr(model, "forward_sequence")
            else partial(centre_mse_loss, heatmap_sigma=spec.loop.heatmap_sigma))
    task = PoseTask(loss, sampler(train, model.frames), val, spec.loop, spec.noise_px)
    identity = {"inputs": _training.input_identity(train, val), "prior": prior}
    return train_and_write("train_lifter", spec, model, task, identity, out, prior,
                           {"init": spec.init, "dataset_3d": train.info.dataset})


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", required=True, help="TrainLifterSpec as inline JSON or a spec.json path")
    parser.add_argument("--train-3d", type=Path, required=True, help="3D training split (.h5)")
    parser.add_argument("--val-3d", type=Path, required=True, help="3D validation split (.h5)")
    parser.add_argument("--init-weights", type=Path, default=None,
                        help="pretrain-pose model.pt (init pretrain_pose)")
    parser.add_argument("--init-metrics", type=Path, default=None,
                        help="its metrics.json: the pre-training compute, added to compute_total")
    _training.add_output_arguments(parser)


def main(args: argparse.Namespace) -> None:
    run(load_spec_arg(TrainLifterSpec, args.spec), args.train_3d, args.val_3d, _training.outputs_from_args(args),
        args.init_weights, args.init_metrics)
