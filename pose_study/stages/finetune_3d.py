"""Stage ``finetune_3d``: 3D training, from 2D pre-trained weights or from scratch (one arm each).

Phases as the seed system (reference/seed_system.md §4.2): *fusion* — every batch mixes 3D and 2D
samples (``ratio_3d`` 3D samples per 2D sample), heatmap + ``weight_3d``·depth loss; then
*geometric* — the same plus ``weight_var``·bone-length-ratio loss on the 2D samples, at a lower LR.
The ``scratch`` arm runs the same phases from random initialisation, so the only difference
between arms is the initialisation.

Inputs: 3D training + validation splits, a 2D training split, and for ``init: pretrained_2d`` the
pre-training run's ``model.pt`` and ``metrics.json`` (its compute is added to this run's totals).
Outputs: ``model.pt``, ``metrics.json``, ``curve.csv``, ``spec.json``; resume state in
``--checkpoint-dir``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from pose_study._spec import load_spec_arg
from pose_study.models import MODELS
from pose_study.stages import _training
from pose_study.train.checkpoint import load_weights
from pose_study.train.loop import LoopSpec, Phase
from pose_study.train.objective import LossWeights

INITS = ("pretrained_2d", "scratch")


@dataclass(frozen=True)
class Finetune3DSpec:
    """Resolved settings of one 3D fine-tuning run.

    Attributes:
        model: Preset id.
        init: ``pretrained_2d`` (load stage-1 weights) or ``scratch`` (the 3D-only arm).
        fusion_steps: Steps of the fusion phase (seed stage 2).
        geometric_steps: Steps with the bone-ratio loss added (seed stage 3); 0 skips it.
        lr: Fusion LR (seed 1e-3); ``lr_steps`` as fractions of ``fusion_steps`` (seed 45/60).
        geometric_lr: LR of the geometric phase (seed 1e-4).
        ratio_3d: 3D samples per 2D sample in every batch (seed 1 = half and half).
        weight_3d: Depth-loss weight (seed 0.1). weight_var: bone-ratio-loss weight (seed 0.01).
        pretrained_backbone: Local ImageNet weights for a scratch-arm ResNet backbone, or None.
        loop: Loop settings.
    """

    model: str
    init: str
    fusion_steps: int
    geometric_steps: int = 0
    lr: float = 1e-3
    lr_steps: tuple[float, ...] = (0.75,)
    geometric_lr: float = 1e-4
    ratio_3d: float = 1.0
    weight_3d: float = 0.1
    weight_var: float = 0.01
    pretrained_backbone: str | None = None
    loop: LoopSpec = field(default_factory=LoopSpec)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"unknown model preset {self.model!r}; choices: {sorted(MODELS)}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.ratio_3d <= 0:
            raise ValueError(f"ratio_3d must be > 0 (3D samples per 2D sample), got {self.ratio_3d}")

    def phases(self) -> list[Phase]:
        fraction_3d = self.ratio_3d / (1.0 + self.ratio_3d)
        phases = [Phase("fusion", self.fusion_steps, self.lr, self.lr_steps,
                        LossWeights(weight_3d=self.weight_3d), fraction_3d)]
        if self.geometric_steps:
            phases.append(Phase("geometric", self.geometric_steps, self.geometric_lr, (),
                                LossWeights(self.weight_3d, self.weight_var), fraction_3d))
        return phases


def run(spec: Finetune3DSpec, train_3d: Path, val_3d: Path, train_2d: Path, out: _training.TrainOutputs,
        init_weights: Path | None = None, init_metrics: Path | None = None) -> dict:
    """Fine-tune ``spec.model`` in 3D; returns the metrics written to ``out.metrics``."""
    if (spec.init == "pretrained_2d") != (init_weights is not None):
        raise ValueError(f"init {spec.init!r} {'needs' if init_weights is None else 'takes no'} --init-weights")
    backbone = spec.pretrained_backbone if spec.init == "scratch" else None
    model, device = _training.build(spec.model, spec.loop, backbone)
    if init_weights is not None:
        load_weights(init_weights, model, spec.model)
    data = _training.load_data(val_3d, device, train_2d=train_2d, train_3d=train_3d)
    extra = {"arm": spec.init, "dataset_3d": data.train_3d.info.dataset, "dataset_2d": data.train_2d.info.dataset}
    return _training.run_training("finetune_3d", spec, model, spec.model, spec.phases(), data, spec.loop, out,
                                  prior=_training.read_prior(init_metrics), extra=extra)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", required=True, help="Finetune3DSpec as inline JSON or a spec.json path")
    parser.add_argument("--train-3d", type=Path, required=True, help="3D training split (.h5)")
    parser.add_argument("--val-3d", type=Path, required=True, help="3D validation split (.h5)")
    parser.add_argument("--train-2d", type=Path, required=True, help="2D training split mixed into batches (.h5)")
    parser.add_argument("--init-weights", type=Path, help="pre-trained model.pt (init: pretrained_2d)")
    parser.add_argument("--init-metrics", type=Path, help="the pre-training run's metrics.json (compute totals)")
    _training.add_output_arguments(parser)


def main(args: argparse.Namespace) -> None:
    run(load_spec_arg(Finetune3DSpec, args.spec), args.train_3d, args.val_3d, args.train_2d,
        _training.outputs_from_args(args), args.init_weights, args.init_metrics)
