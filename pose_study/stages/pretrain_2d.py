"""Stage ``pretrain_2d``: train heatmaps on a 2D dataset (stage 1 of the seed system).

Inputs: a 2D training split and a validation split (canonical HDF5, format version 1).
Outputs: ``model.pt`` (weights), ``metrics.json`` (final 2D error, compute totals), ``curve.csv``
(learning curve) and ``spec.json`` (resolved spec + versions) beside ``model.pt``. Resume state
goes to ``--checkpoint-dir``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from pose_study._spec import load_spec_arg
from pose_study.data.formats import check_split
from pose_study.models import MODELS
from pose_study.stages import _training
from pose_study.train import checkpoint
from pose_study.train.detection import DetectorTask
from pose_study.train.loop import LoopSpec, Phase


@dataclass(frozen=True)
class Pretrain2DSpec:
    """Resolved settings of one 2D pre-training run.

    Attributes:
        model: Preset id (``pose_study.models.MODELS``).
        steps: Optimiser steps.
        lr: Initial learning rate (seed: Adam 1e-3).
        lr_steps: Fractions of ``steps`` after which the LR drops ×``loop.lr_decay`` (seed: 90/140, 120/140).
        pretrained_backbone: Local ImageNet weights for ResNet backbones (the plan downloads the catalog's
            file with ``imagenet``), or None.
        loop: Loop settings.
    """

    model: str
    steps: int
    lr: float = 1e-3
    lr_steps: tuple[float, ...] = (0.643, 0.857)
    pretrained_backbone: str | None = None
    loop: LoopSpec = field(default_factory=LoopSpec)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"unknown model preset {self.model!r}; choices: {sorted(MODELS)}")
        if self.steps < 1:
            raise ValueError(f"steps must be ≥ 1, got {self.steps}")


def run(spec: Pretrain2DSpec, train: Path, val: Path, out: _training.TrainOutputs) -> dict:
    """Pre-train ``spec.model`` on ``train``; returns the metrics written to ``out.metrics``."""
    check_split(train, "--train")
    check_split(val, "--val")
    checkpoint.claim_folder(out.checkpoint_dir)
    model, device = _training.build(spec.model, spec.loop, spec.pretrained_backbone)
    data = _training.load_data(val, device, train_2d=train)
    task = DetectorTask(data, spec.loop)
    phases = [Phase("pretrain_2d", spec.steps, task, spec.loop.schedule(spec.lr, spec.lr_steps))]
    return _training.run_training("pretrain_2d", spec, model, spec.model, phases, data, out,
                                  extra={"dataset_2d": data.train_2d.info.dataset})


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", required=True, help="Pretrain2DSpec as inline JSON or a spec.json path")
    parser.add_argument("--train", type=Path, required=True, help="2D training split (.h5)")
    parser.add_argument("--val", type=Path, required=True, help="validation split (.h5)")
    _training.add_output_arguments(parser)


def main(args: argparse.Namespace) -> None:
    run(load_spec_arg(Pretrain2DSpec, args.spec), args.train, args.val, _training.outputs_from_args(args))
