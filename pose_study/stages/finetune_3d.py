"""Stage ``finetune_3d``: 3D training of the 2D detector, one run per arm (``pose_study.arms``).

Arms whose objective is ``depth`` (``fusion_scratch``, ``pretrained_2d``) run the seed system's
phases (reference/seed_system.md §4.2): *fusion* — every batch mixes 3D and 2D samples (``ratio_3d``
3D samples per 2D sample), heatmap + ``weight_3d``·depth loss; then *geometric* — the same plus
``weight_var``·bone-length-ratio loss on the 2D samples, at a lower LR, for the last
``geometric_steps`` of the run's ``steps``. ``3d_only`` runs the seed's "3D exclusive" mode instead:
*exclusive* — 3D samples only, heatmap + ``exclusive_weight_3d`` (seed 1.0)·depth loss; then
*exclusive_low_lr* — the same batches at the geometric LR with ``weight_3d``·depth and no
bone-ratio loss (it has no 2D samples to apply it to).

With ``budget: compute_matched`` (the baseline, ``finetune_3d.baseline_budget``) the run's length is
set at start from ``--budget-metrics``: the smallest number of steps whose training FLOPs reach the
largest ``compute_total.train_flops`` among those runs (every upstream stage counted), split between
the phases in the planned proportion. Both LR schedules stretch with it (decays at the same fractions
of each phase), so the baseline gets the schedule tuned to its budget rather than a truncated or
un-decayed one (a step schedule cut short, or a constant tail, would handicap it).

The other arms run ONE phase of ``steps`` steps (the plan gives every arm the same total, on the same
batch mixture) named after their objective (``pose_study.train.objective``):

* ``heatmap`` (``ft_2d``, ``apt_pose``): heatmap loss only; validated through one frozen lifter
  (``--guide-lifter``, exactly one): ``ft_2d``'s first guide lifter, ``apt_pose``'s own sequence
  lifter (fed with the detector's 2D of each validation sample's window of its clip).
* ``guided`` (``l2d_single``: one ``--guide-lifter``; ``l2d_multi``: one or more): heatmap, OHKLM
  and 3D losses through frozen lifters fed with the soft-argmax of the detector's heatmaps.
* ``end_to_end`` (``mpt``): heatmap + 3D loss of a trainable heatmap lifter (``--lifter-init``,
  a ``pretrain_pose`` model.pt) optimised together with the detector.

Lifter arms validate by MPJPE through their lifter (the first guide, or the end-to-end lifter).

Inputs: 3D training + validation splits, a 2D training split (not for ``3d_only``), ``--init-weights`` (the
``pretrain_2d`` model.pt) for arms that start from it, lifters as above, and ``--prior-metrics``
for every upstream run whose compute the run carries (2D pre-training, lifters, pose pre-training);
``--budget-metrics`` for a compute-matched baseline.
Outputs: ``model.pt`` (for ``mpt`` with a ``lifter`` entry, ``lifters.load_lifter`` reads it),
``metrics.json``, ``curve.csv``, ``spec.json``; resume state in ``--checkpoint-dir``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from pose_study import lifters
from pose_study._spec import load_spec_arg
from pose_study.arms import ARMS, Arm, compute_matched_steps
from pose_study import models
from pose_study.data.formats import check_split, read_split
from pose_study.data.poses import sequence_windows
from pose_study.models import MODELS
from pose_study.stages import _training
from pose_study.train import distributed
from pose_study.train.checkpoint import claim_folder, load_weights
from pose_study.train.detection import DetectorTask, TrainData
from pose_study.train.guidance import GuidanceSpec
from pose_study.train.loop import LoopSpec, Phase
from pose_study.train.objective import (DepthObjective, DetectorWithLifter, EndToEndObjective, GuidedObjective,
                                        HeatmapObjective, LossWeights, Objective, freeze)

__all__ = ["BUDGETS", "Finetune3DSpec", "GuidanceSpec", "budget_flops", "check_inputs", "run"]

BUDGETS = ("steps", "compute_matched")


@dataclass(frozen=True)
class Finetune3DSpec:
    """Resolved settings of one 3D fine-tuning run.

    Attributes:
        model: Preset id.
        arm: A key of ``arms.ARMS``: how the detector starts and what it optimises.
        steps: Optimiser steps of the whole run.
        geometric_steps: The last steps, with the bone-ratio loss added (seed stage 3), of a ``depth``
            arm; the steps before them are the fusion phase (seed stage 2). 0 skips the phase, and
            must be 0 for the other arms, whose one phase has ``steps`` steps of their own loss.
        lr: Fusion LR (seed 1e-3); ``lr_steps`` as fractions of the phase (seed 45/60).
        geometric_lr: LR of the geometric phase (seed 1e-4).
        ratio_3d: 3D samples per 2D sample in every batch (seed 1 = half and half); unused by ``3d_only``.
        weight_3d: Depth-loss weight (seed 0.1). weight_var: bone-ratio-loss weight (seed 0.01).
        exclusive_weight_3d: Depth-loss weight of ``3d_only``'s first phase (the seed's 1.0).
        budget: ``steps`` (run ``steps``) or ``compute_matched`` (``steps`` and ``geometric_steps`` give
            only the phases' proportion; the length comes from ``--budget-metrics``, see ``matched``).
        budget_flops: The FLOPs the run must reach, once resolved (0 before).
        pretrained_backbone: Local ImageNet weights for the ResNet backbone of an arm that starts from the
            backbone initialisation (``3d_only``, ``fusion_scratch``), or None.
        loop: Loop settings.
        guidance: Weights of the lifter arms' objectives (the config's ``guidance`` section).
    """

    model: str
    arm: str
    steps: int
    geometric_steps: int = 0
    lr: float = 1e-3
    lr_steps: tuple[float, ...] = (0.75,)
    geometric_lr: float = 1e-4
    ratio_3d: float = 1.0
    weight_3d: float = 0.1
    weight_var: float = 0.01
    exclusive_weight_3d: float = 1.0
    budget: str = "steps"
    budget_flops: float = 0.0
    pretrained_backbone: str | None = None
    loop: LoopSpec = field(default_factory=LoopSpec)
    guidance: GuidanceSpec = field(default_factory=GuidanceSpec)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"unknown model preset {self.model!r}; choices: {sorted(MODELS)}")
        if self.arm not in ARMS:
            raise ValueError(f"arm must be one of {sorted(ARMS)}, got {self.arm!r}")
        if not 0 <= self.geometric_steps < self.steps:
            raise ValueError(f"geometric_steps must be ≥ 0 and below steps ({self.steps}), got {self.geometric_steps}")
        if self.geometric_steps and self.arm_spec.objective != "depth":
            raise ValueError(f"arm {self.arm!r} has no geometric phase (its objective is "
                             f"{self.arm_spec.objective!r}); set geometric_steps to 0 and steps to the run's length")
        if self.budget not in BUDGETS:
            raise ValueError(f"budget must be one of {BUDGETS}, got {self.budget!r}")
        if self.ratio_3d <= 0:
            raise ValueError(f"ratio_3d must be > 0 (3D samples per 2D sample), got {self.ratio_3d}")

    @property
    def arm_spec(self) -> Arm:
        return ARMS[self.arm]

    def matched(self, budget_flops: float, flops_per_step: float) -> Finetune3DSpec:
        """This spec resolved to a compute budget: the fewest steps whose FLOPs reach ``budget_flops``,
        the geometric phase keeping its share of the run (at least one step when it has one)."""
        steps = compute_matched_steps(budget_flops, flops_per_step)
        geometric = 0
        if self.geometric_steps:
            geometric = min(max(round(steps * self.geometric_steps / self.steps), 1), steps - 1)
        return replace(self, steps=steps, geometric_steps=geometric, budget_flops=float(budget_flops))

    def phases(self, data: TrainData, objective: Objective | None = None) -> list[Phase]:
        """The run's phases on ``data``; lifter arms need their ``objective`` (it holds the lifters)."""
        fraction_3d, loop = self.ratio_3d / (1.0 + self.ratio_3d), self.loop
        if not self.arm_spec.uses_2d:
            return self._exclusive_phases(data)
        if self.arm_spec.objective != "depth":
            if objective is None:
                raise ValueError(f"arm {self.arm!r} needs its {self.arm_spec.objective!r} objective")
            return [Phase(objective.name, self.steps,
                          DetectorTask(data, loop, objective, fraction_3d), loop.schedule(self.lr, self.lr_steps))]
        phases = [Phase("fusion", self.steps - self.geometric_steps,
                        DetectorTask(data, loop, DepthObjective(LossWeights(weight_3d=self.weight_3d)), fraction_3d),
                        loop.schedule(self.lr, self.lr_steps))]
        if self.geometric_steps:
            weights = LossWeights(self.weight_3d, self.weight_var)
            phases.append(Phase("geometric", self.geometric_steps,
                                DetectorTask(data, loop, DepthObjective(weights), fraction_3d),
                                loop.schedule(self.geometric_lr)))
        return phases

    def _exclusive_phases(self, data: TrainData) -> list[Phase]:
        """The seed's 3D exclusive mode: 3D batches, depth weight 1.0, then the low-LR phase without the
        bone-ratio loss."""
        phases = [Phase("exclusive", self.steps - self.geometric_steps,
                        DetectorTask(data, self.loop, DepthObjective(LossWeights(self.exclusive_weight_3d)), 1.0),
                        self.loop.schedule(self.lr, self.lr_steps))]
        if self.geometric_steps:
            phases.append(Phase("exclusive_low_lr", self.geometric_steps,
                                DetectorTask(data, self.loop, DepthObjective(LossWeights(self.weight_3d)), 1.0),
                                self.loop.schedule(self.geometric_lr)))
        return phases


def budget_flops(metrics_paths: Sequence[Path]) -> float:
    """The compute budget of a compute-matched run: the largest ``compute_total.train_flops`` among the
    ``metrics.json`` of the runs it is compared with (each counts every upstream stage)."""
    if not metrics_paths:
        raise ValueError("a compute-matched run needs --budget-metrics: the metrics.json of the runs it is "
                         "compared with")
    totals = []
    for path in metrics_paths:
        with open(path, encoding="utf-8") as f:
            metrics = json.load(f)
        try:
            totals.append(float(metrics["compute_total"]["train_flops"]))
        except KeyError as e:
            raise ValueError(f"{path}: no compute_total.train_flops; is it a training run's metrics.json?") from e
    return max(totals)


def check_inputs(arm: Arm, init_weights: Path | None, guide_lifters: list[Path], lifter_init: Path | None,
                 train_2d: Path | None = None, budget: str = "steps", budget_metrics: Sequence[Path] = ()) -> None:
    """Raise a ``ValueError`` naming the flag when ``arm`` misses an input or gets one it does not use."""
    if arm.uses_2d != (train_2d is not None):
        verb = "needs" if train_2d is None else "takes no"
        raise ValueError(f"arm {arm.name!r} {verb} --train-2d (2D samples in its fine-tuning batches)")
    if (budget == "compute_matched") != bool(budget_metrics):
        verb = "needs" if budget == "compute_matched" else f"takes no (its budget is {budget!r})"
        raise ValueError(f"arm {arm.name!r} {verb} --budget-metrics")
    if (arm.detector_init == "pretrain_2d") != (init_weights is not None):
        verb = "needs" if init_weights is None else "takes no"
        raise ValueError(f"arm {arm.name!r} {verb} --init-weights (the pretrain_2d model.pt)")
    n = len(guide_lifters)
    if arm.objective in ("depth", "end_to_end") and n:
        raise ValueError(f"arm {arm.name!r} takes no --guide-lifter (got {n})")
    if (arm.objective == "heatmap" or arm.guides == "first") and n != 1:
        raise ValueError(f"arm {arm.name!r} needs exactly one --guide-lifter (got {n})")
    if arm.guides == "all" and n < 1:
        raise ValueError(f"arm {arm.name!r} needs at least one --guide-lifter (got 0)")
    if (arm.objective == "end_to_end") != (lifter_init is not None):
        verb = "needs" if lifter_init is None else "takes no"
        raise ValueError(f"arm {arm.name!r} {verb} --lifter-init (a pretrain_pose model.pt)")


def run(spec: Finetune3DSpec, train_3d: Path, val_3d: Path, train_2d: Path | None, out: _training.TrainOutputs,
        init_weights: Path | None = None, prior_metrics: Sequence[Path] = (), guide_lifters: Sequence[Path] = (),
        lifter_init: Path | None = None, budget_metrics: Sequence[Path] = ()) -> dict:
    """Fine-tune ``spec.model`` in 3D as ``spec.arm``; returns the metrics written to ``out.metrics``.

    Args:
        spec: Settings.
        train_3d, val_3d, train_2d: Split files (``train_2d`` None for ``3d_only``).
        out: Output paths.
        init_weights: The ``pretrain_2d`` model.pt (arms starting from it).
        prior_metrics: metrics.json of every upstream run whose compute this run carries.
        guide_lifters: Frozen lifters' model.pt, in ``lifters.guide`` order.
        lifter_init: The trainable lifter's initial weights (``mpt``).
        budget_metrics: metrics.json of the runs a compute-matched run is compared with.
    """
    arm, guide_lifters = spec.arm_spec, list(guide_lifters)
    check_inputs(arm, init_weights, guide_lifters, lifter_init, train_2d, spec.budget, budget_metrics)
    check_split(train_3d, "--train-3d", needs_3d=True)
    check_split(val_3d, "--val-3d", needs_3d=True)
    if train_2d is not None:
        check_split(train_2d, "--train-2d")
    claim_folder(out.checkpoint_dir)
    backbone = spec.pretrained_backbone if arm.detector_init == "scratch" else None
    model, device = _training.build(spec.model, spec.loop, backbone)
    if init_weights is not None:
        load_weights(init_weights, model, spec.model)
    guides = [freeze(lifters.load_lifter(path), device) for path in guide_lifters]
    model, objective = _objective(spec, model, guides, lifter_init, device, val_3d)
    data = _training.load_data(val_3d, device, train_2d=train_2d, train_3d=train_3d)
    if spec.budget == "compute_matched":
        per_step = 3 * models.forward_flops(model, data.val.crop_size) * spec.loop.batch_size \
            * distributed.current().world_size
        spec = spec.matched(budget_flops(budget_metrics), per_step)
    extra = {"arm": spec.arm, "lifters": [g.preset_name for g in guides], "dataset_3d": data.train_3d.info.dataset,
             "dataset_2d": data.train_2d.info.dataset if data.train_2d is not None else None}
    if isinstance(model, DetectorWithLifter):
        extra["end_to_end_lifter"] = model.lifter.preset_name
    loss_lifters = guides if arm.objective == "guided" else []
    return _training.run_training(
        "finetune_3d", spec, model, spec.model, spec.phases(data, objective), data, out,
        prior=_training.read_priors(list(prior_metrics)), extra=extra,
        extra_flops=sum(lifters.lifter_flops(g) for g in loss_lifters))


def _objective(spec: Finetune3DSpec, model: torch.nn.Module, guides: list[torch.nn.Module],
               lifter_init: Path | None, device: torch.device,
               val_3d: Path | None = None) -> tuple[torch.nn.Module, Objective | None]:
    """The network to train (the detector, or detector + trainable lifter) and the arm's objective.

    A sequence lifter that validates a ``heatmap`` arm gets the windows of ``val_3d``'s clips.
    """
    kind, g = spec.arm_spec.objective, spec.guidance
    if kind == "heatmap":
        windows = None
        if guides[0].frames > 1 and val_3d is not None:
            split = read_split(val_3d, images=False)
            windows = torch.as_tensor(sequence_windows(split.clip, split.frame, guides[0].frames))
        return model, HeatmapObjective(guides[0], g.beta, windows)
    if kind == "guided":
        return model, GuidedObjective(guides, g)
    if kind == "end_to_end":
        lifter = lifters.load_lifter(lifter_init).to(device)
        return DetectorWithLifter(model, lifter, g.beta), EndToEndObjective(lifter, g.end_to_end_lambda_3d, g.beta)
    return model, None


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", required=True, help="Finetune3DSpec as inline JSON or a spec.json path")
    parser.add_argument("--train-3d", type=Path, required=True, help="3D training split (.h5)")
    parser.add_argument("--val-3d", type=Path, required=True, help="3D validation split (.h5)")
    parser.add_argument("--train-2d", type=Path, help="2D training split mixed into batches (.h5; not 3d_only)")
    parser.add_argument("--init-weights", type=Path, help="pretrain_2d model.pt (arms that start from it)")
    parser.add_argument("--prior-metrics", type=Path, action="append", default=[],
                        help="metrics.json of an upstream run whose compute this run carries (repeatable)")
    parser.add_argument("--guide-lifter", type=Path, action="append", default=[],
                        help="a frozen lifter's model.pt, in lifters.guide order (repeatable; ft_2d, apt_pose, "
                             "l2d_single: exactly one; l2d_multi: one or more)")
    parser.add_argument("--lifter-init", type=Path, help="the trainable lifter's pretrain_pose model.pt (mpt arm)")
    parser.add_argument("--budget-metrics", type=Path, action="append", default=[],
                        help="metrics.json of a run a compute-matched run is compared with (repeatable)")
    _training.add_output_arguments(parser)


def main(args: argparse.Namespace) -> None:
    run(load_spec_arg(Finetune3DSpec, args.spec), args.train_3d, args.val_3d, args.train_2d,
        _training.outputs_from_args(args), args.init_weights, args.prior_metrics, args.guide_lifter, args.lifter_init,
        args.budget_metrics)
