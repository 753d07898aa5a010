"""The study's arms: pre-training strategies compared on the same 3D task, as data.

Each arm names how its 2D detector starts, what its 3D fine-tuning optimises and where its 3D
pose comes from. Every arm is a ``finetune_3d`` run per (model, 2D set, 3D set, seed); the
workflow derives each run's inputs (pre-trained detector, frozen or trainable lifters) from this
table, and the report compares every arm with ``3d_only`` (the paper's baseline) at equal compute.

* ``3d_only``: the seed's "3D exclusive" mode (reference/seed_system.md §4.2, item 4), the paper's
  baseline: Zhou et al.'s network trained on the 3D set alone, from the same backbone initialisation
  as the arms it is compared with (random for hourglasses, the configured ImageNet weights for
  ResNets), for as much compute as the costliest of them (``finetune_3d.baseline_budget``).
* ``fusion_scratch`` / ``pretrained_2d``: the same network trained on 2D+3D fusion batches in the
  fusion then geometric phases, from random init or from ``pretrain_2d`` weights (Mills et al.).
  ``fusion_scratch`` shows what pre-training adds beyond co-training on the same 2D data.
* ``ft_2d``: the 2D pre-trained detector fine-tuned with the heatmap loss only, then lifted by the
  study's first guide lifter (trained on ground-truth 2D).
* ``l2d_single`` / ``l2d_multi``: the same detector fine-tuned with 3D losses that flow back
  through one / all frozen guide lifters (Lee, Hwang, Lee: L2D-Pose).
* ``apt_pose``: the ``ft_2d`` detector recipe, lifted by a sequence lifter pre-trained with
  hierarchical masked pose modeling and then fine-tuned (Yang et al.: APTPose).
* ``mpt``: the detector and a heatmap-to-3D regression transformer pre-trained on heatmaps
  synthesised from 3D poses, fine-tuned end to end (Lin et al.: MPT).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

DETECTOR_INITS = ("scratch", "pretrain_2d")
OBJECTIVES = ("depth", "heatmap", "guided", "end_to_end")
GUIDES = ("none", "first", "all")
LIFTED_BY = (None, "guide", "sequence", "heatmap")


@dataclass(frozen=True)
class Arm:
    """One pre-training strategy.

    Attributes:
        name: Id used in configs, paths and tables.
        label: Short label in figures and tables.
        noun: Noun phrase in the report's sentences.
        detector_init: ``scratch`` or ``pretrain_2d`` (the 2D pre-training run's weights).
        objective: What ``finetune_3d`` optimises: ``depth`` (heatmap + depth, then + bone ratio),
            ``heatmap`` (2D loss only), ``guided`` (heatmap + OHKLM + 3D losses through frozen
            lifters), ``end_to_end`` (heatmap + 3D loss of a trainable heatmap lifter).
        guides: Frozen guide lifters in the loss: ``none``, ``first`` or ``all`` of ``lifters.guide``.
        uses_2d: Whether its fine-tuning batches mix in 2D samples; False: the 3D training set alone.
        lifted_by: Where the 3D pose comes from: None (the network's depth maps), ``guide`` (the
            first guide lifter), ``sequence`` (the pre-trained sequence lifter) or ``heatmap`` (the
            arm's own end-to-end heatmap lifter).
    """

    name: str
    label: str
    noun: str
    detector_init: str
    objective: str
    guides: str = "none"
    lifted_by: str | None = None
    uses_2d: bool = True

    def __post_init__(self) -> None:
        for value, allowed in ((self.detector_init, DETECTOR_INITS), (self.objective, OBJECTIVES),
                               (self.guides, GUIDES), (self.lifted_by, LIFTED_BY)):
            if value not in allowed:
                raise ValueError(f"arm {self.name!r}: {value!r} is not one of {allowed}")
        if not self.uses_2d and (self.objective != "depth" or self.detector_init != "scratch"):
            raise ValueError(f"arm {self.name!r}: only a depth arm from the backbone initialisation trains on 3D alone")

    @property
    def uses_lifters(self) -> bool:
        """True when the 3D pose comes from a lifter (so it is scored through every study lifter)."""
        return self.lifted_by is not None

    def guide_lifters(self, guide: Sequence[str]) -> list[str]:
        """The lifters of ``lifters.guide`` that are frozen in this arm's loss."""
        return {"none": [], "first": list(guide[:1]), "all": list(guide)}[self.guides]


ARMS: dict[str, Arm] = {a.name: a for a in (
    Arm("3d_only", "3D only", "3D-only training", "scratch", "depth", uses_2d=False),
    Arm("fusion_scratch", "2D+3D fusion, random init", "2D+3D co-training from random init", "scratch", "depth"),
    Arm("pretrained_2d", "2D pre-trained", "2D pre-training", "pretrain_2d", "depth"),
    Arm("ft_2d", "2D fine-tuned + lifter", "2D-only fine-tuning with a lifter", "pretrain_2d", "heatmap",
        lifted_by="guide"),
    Arm("l2d_single", "L2D, one lifter", "3D guidance through one frozen lifter", "pretrain_2d", "guided",
        guides="first", lifted_by="guide"),
    Arm("l2d_multi", "L2D, multi-lifter", "3D guidance through several frozen lifters", "pretrain_2d",
        "guided", guides="all", lifted_by="guide"),
    Arm("apt_pose", "APTPose lifter pre-training", "masked pose-sequence pre-training of the lifter",
        "pretrain_2d", "heatmap", lifted_by="sequence"),
    Arm("mpt", "MPT heatmap pre-training", "heatmap pre-training from 3D poses", "pretrain_2d",
        "end_to_end", lifted_by="heatmap"),
)}
BASELINE = "3d_only"  # the paper's baseline: every other arm is compared with it


def compute_matched_steps(budget_flops: float, flops_per_step: float) -> int:
    """Steps of a compute-matched baseline run: the fewest (at least 2, one per phase) whose training FLOPs
    reach ``budget_flops``, the largest total of the runs it is compared with."""
    if budget_flops <= 0 or flops_per_step <= 0:
        raise ValueError(f"a compute budget needs positive FLOPs, got {budget_flops} and {flops_per_step} per step")
    return max(math.ceil(budget_flops / flops_per_step), 2)


def upstream_lifter_runs(arm: Arm, lifters: dict) -> list[tuple[str, str, str]]:
    """(stage, lifter, init) of the lifter runs ``arm``'s 3D pose depends on, upstream first.

    The guide lifters in its loss (or the first guide lifter, when that lifts it), the sequence lifter
    and its pose pre-training, or the heatmap lifter's pose pre-training; ``init`` is ``""`` for
    ``pretrain_pose`` runs. ``lifters`` is the study config's ``lifters`` section.
    """
    names = arm.guide_lifters(lifters["guide"]) or (lifters["guide"][:1] if arm.lifted_by == "guide" else [])
    runs = [("train_lifter", name, "scratch") for name in names]
    if arm.lifted_by == "sequence":
        runs += [("pretrain_pose", lifters["sequence"], ""), ("train_lifter", lifters["sequence"], "pretrain_pose")]
    if arm.lifted_by == "heatmap":
        runs.append(("pretrain_pose", lifters["heatmap"], ""))
    return runs
