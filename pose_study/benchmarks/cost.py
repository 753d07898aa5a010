"""``cost``: a study's expected training compute and device-hours per stage, before anything runs.

For every training run of the plan: forward FLOPs per training sample (torch's counter on meta
tensors: the detector at the study's crop size, plus the frozen lifters in an L2D loss and MPT's
trainable regressor; a lifter per pose or per sequence) × 3 (forward + backward, the accounting
convention of ``train.accounting``) × batch × steps. The compute-matched baseline
(``finetune_3d.baseline_budget``) gets the fewest steps that reach the largest total of the runs it is
compared with, as ``Finetune3DSpec.matched`` resolves it at run time.

Device-hours = FLOPs / (peak × MFU). The defaults state an H100 SXM at its dense bf16 peak
(989.4 TFLOP/s) and the 10–20 % MFU band of eager PyTorch with bf16 autocast and channels_last
(reference/anchors.md §3b–3c); the table gives hours at the band's ends and its middle.

    python -m pose_study cost config/paper.yaml [--peak-tflops 989.4] [--mfu 0.10 0.15 0.20]
"""

from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass

import torch

from pose_study import lifters, models
from pose_study.arms import ARMS, compute_matched_steps
from pose_study.config import load_config
from pose_study.plan import Plan, RunKey
from pose_study.presets import applicable_options

H100_BF16_TFLOPS = 989.4
MFU_BAND = (0.10, 0.15, 0.20)


@dataclass(frozen=True)
class RunCost:
    """One training run's expected compute: ``flops`` its own, ``total`` with every upstream run."""

    key: RunKey
    steps: int
    samples: int
    flops: float
    total: float


@functools.cache
def detector_flops(model: str, crop_size: int) -> int:
    """Forward FLOPs of one image through detector preset ``model``."""
    with torch.device("meta"):
        net = models.build_model(model)
    return models.forward_flops(net, crop_size)


@functools.cache
def lifter_flops(name: str, options: tuple = ()) -> int:
    """Forward FLOPs of one input (pose or sequence) through lifter preset ``name``."""
    with torch.device("meta"):
        net = lifters.build_lifter(name, options=dict(options))
    return lifters.lifter_flops(net)


def sample_flops(plan: Plan, key: RunKey) -> int:
    """Forward FLOPs per training sample of ``key``: its network plus the lifters inside its loss."""
    def options(name: str) -> tuple:
        return tuple(sorted(applicable_options(name, plan.lifters["options"]).items()))

    if key.stage in ("pretrain_pose", "train_lifter"):
        return lifter_flops(key.lifter, options(key.lifter))
    flops = detector_flops(key.model, plan.config["crop_size"])
    if key.stage == "finetune_3d":
        arm = ARMS[key.arm]
        in_loss = arm.guide_lifters(plan.lifters["guide"]) if arm.objective == "guided" else []
        if arm.objective == "end_to_end":
            in_loss = [plan.lifters["heatmap"]]
        flops += sum(lifter_flops(name, options(name)) for name in in_loss)
    return flops


def run_costs(plan: Plan) -> dict[RunKey, RunCost]:
    """Every training run's expected compute, upstream first (the baseline after its compared runs)."""
    costs: dict[RunKey, RunCost] = {}
    runs = plan.runs()
    for key in sorted(runs, key=lambda k: plan.budget(k) == "compute_matched"):
        spec = plan.spec(key)
        per_step = 3 * sample_flops(plan, key) * spec["loop"]["batch_size"]
        steps = spec["steps"]
        if spec.get("budget") == "compute_matched":
            steps = compute_matched_steps(max(costs[k].total for k in plan.compared_runs(key)), per_step)
        upstream = sum(costs[k].flops for k in plan.upstream(key))
        costs[key] = RunCost(key, steps, steps * spec["loop"]["batch_size"], steps * per_step,
                             steps * per_step + upstream)
    return costs


def stage_rows(costs: dict[RunKey, RunCost]) -> list[dict]:
    """Per stage (``finetune_3d`` per arm): runs, steps, samples and FLOPs summed."""
    rows: dict[str, dict] = {}
    for c in costs.values():
        name = c.key.stage if c.key.stage != "finetune_3d" else f"finetune_3d · {c.key.arm}"
        row = rows.setdefault(name, {"stage": name, "runs": 0, "steps": 0, "samples": 0, "flops": 0.0})
        row["runs"] += 1
        row["steps"] += c.steps
        row["samples"] += c.samples
        row["flops"] += c.flops
    return list(rows.values())


def markdown(rows: list[dict], peak_tflops: float, mfu: tuple[float, ...]) -> str:
    """The per-stage table with device-hours at each MFU, and a total row."""
    total = {"stage": "**total**", "runs": sum(r["runs"] for r in rows), "steps": sum(r["steps"] for r in rows),
             "samples": sum(r["samples"] for r in rows), "flops": sum(r["flops"] for r in rows)}
    head = ["stage", "runs", "steps", "samples", "PFLOP"] + [f"h @ {m:.0%} MFU" for m in mfu]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in [*rows, total]:
        hours = [r["flops"] / (peak_tflops * 1e12 * m) / 3600 for m in mfu]
        lines.append(f"| {r['stage']} | {r['runs']} | {r['steps']:,} | {r['samples']:,} | {r['flops'] / 1e15:,.1f} | "
                     + " | ".join(f"{h:,.1f}" for h in hours) + " |")
    return "\n".join(lines)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="study config (YAML)")
    parser.add_argument("--peak-tflops", type=float, default=H100_BF16_TFLOPS,
                        help=f"the device's peak TFLOP/s (default {H100_BF16_TFLOPS}: H100 SXM, dense bf16)")
    parser.add_argument("--mfu", type=float, nargs="+", default=list(MFU_BAND),
                        help="model FLOPs utilisation(s) to convert FLOPs to hours (default 0.10 0.15 0.20)")


def main(args: argparse.Namespace) -> None:
    if args.peak_tflops <= 0 or not all(0 < m <= 1 for m in args.mfu):
        raise ValueError(f"--peak-tflops must be > 0 and every --mfu in (0, 1], got {args.peak_tflops} and {args.mfu}")
    plan = Plan(load_config(args.config))
    print(markdown(stage_rows(run_costs(plan)), args.peak_tflops, tuple(args.mfu)))
