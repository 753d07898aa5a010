"""The study's question and its answer in two sentences, computed from the collected tables.

Accuracy: for each compared arm, on how many model sizes its mean MPJPE on the primary test set
is lower than the 3D-only arm's, and the mean paired difference over all (model, seed) pairs with
its 95 % t-interval. Compute: the ratio of total training FLOPs (pre-training included), and the
paired validation-MPJPE difference at equal compute — each pair compared at the 3D-only run's
final budget, reading both learning curves at the last point within it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pose_study.report import stats
from pose_study.report.results import StudyResults
from pose_study.report.style import SYNTHETIC_LABEL, arm_noun, fmt

METRIC = "mpjpe"


def question(res: StudyResults) -> str:
    """The study's question, naming its arms and primary test set."""
    test = res.primary_test or "the 3D test sets"
    world = f" ({SYNTHETIC_LABEL})" if res.source(test) == "synthetic" else ""
    if len(res.compared_arms) > 1:
        arms = ", ".join(arm_noun(a) for a in res.compared_arms[:-1]) + f" or {arm_noun(res.compared_arms[-1])}"
        return (f"Which pre-training strategy — {arms} — gives better 3D pose than 3D-only training on "
                f"{test}{world}, and what does each cost in compute?")
    arms = " / ".join(arm_noun(a) for a in res.compared_arms) or "2D pre-training"
    return (f"Does {arms} give better 3D pose than 3D-only training on {test}{world}, "
            "and what does it cost in compute?")


def answers(res: StudyResults) -> list[str]:
    """Two sentences per compared arm: accuracy, then compute; or why no answer can be given."""
    if not res.primary_test or not res.baseline_arm or not res.compared_arms:
        return [("No comparison is possible: the study needs a 3D test set, the 3D-only arm (3d_only) "
                 "and at least one other arm.")]
    out = []
    for arm in res.compared_arms:
        out.append(accuracy_sentence(res, arm))
        out.append(compute_sentence(res, arm))
    return out


def accuracy_sentence(res: StudyResults, arm: str) -> str:
    """E.g. "2D pre-training lowered MPJPE on lab_test for 2 of 2 model sizes; mean paired difference …"."""
    frame = res.scores(res.primary_test, METRIC)
    pairs = stats.paired_differences(frame, arm, res.baseline_arm)
    if pairs.empty:
        return (f"No finished pair of runs ({arm_noun(arm)}, {arm_noun(res.baseline_arm)}) was evaluated "
                f"on {res.primary_test}.")
    per_model = pairs.groupby("model")["difference"].mean()
    lowered = int((per_model < 0).sum())
    interval = stats.t_interval(pairs["difference"])
    noun = arm_noun(arm)
    unresolved = interval.n >= 2 and interval.low <= 0 <= interval.high
    return (f"{noun[0].upper()}{noun[1:]} lowered MPJPE on {res.primary_test} for {lowered} of "
            f"{len(per_model)} model sizes compared with {arm_noun(res.baseline_arm)}; "
            f"mean paired difference {_signed(interval.mean)} mm, {_ci_text(interval)}"
            + (" (the interval includes 0: not resolved with these seeds)." if unresolved else "."))


def compute_sentence(res: StudyResults, arm: str) -> str:
    """The compute cost ratio and the paired validation difference at equal compute."""
    flops = stats.paired_differences(res.total_flops(), arm, res.baseline_arm).dropna(subset=["difference"])
    if flops.empty:
        return "Compute cannot be compared: no finished pair of runs."
    ratio = float((flops["arm_value"] / flops["baseline_value"]).mean())
    counted = "pre-training and lifter training" if arm in res.lifter_arms else "pre-training"
    text = (f"Counting {counted}, it used {ratio:.2f}× the training FLOPs of 3D-only training")
    metrics = _validation_metrics(res.curves, arm, res.baseline_arm)
    if len(metrics) > 1:
        return text + (f"; its validation curves measure {' and '.join(metrics)} against 3D-only training's, "
                       "so they are not compared at equal compute.")
    equal = equal_compute_differences(res.curves, arm, res.baseline_arm, res.training_sets)
    if equal.empty or not np.isfinite(equal["difference"]).any():
        return text + ("; its pre-training alone exceeded the 3D-only budget, so no equal-compute point "
                       "exists.")
    interval = stats.t_interval(equal["difference"])
    direction = "lower" if interval.mean < 0 else "higher"
    return (text + f"; at equal compute (the 3D-only run's budget) its validation MPJPE was {direction} by "
            f"{_mm(abs(interval.mean))} mm (paired difference {_signed(interval.mean)} mm, "
            f"{_ci_text(interval)}).")


def equal_compute_differences(curves: pd.DataFrame, arm: str, baseline: str,
                              training_sets: tuple[str, str]) -> pd.DataFrame:
    """Per (model, seed) pair: validation value of each arm at the baseline run's final ``flops_total``.

    Returns:
        Columns ``model``, ``seed``, ``arm_value``, ``baseline_value``, ``difference`` (NaN where the
        arm has no curve point within the budget). Pairs whose curves measure different validation
        metrics are left out.
    """
    c = curves[(curves["stage"] == "finetune_3d") & (curves["dataset_2d"] == training_sets[0])
               & (curves["dataset_3d"] == training_sets[1])]
    rows = []
    for (model, seed), part in c.groupby(["model", "seed"], sort=True):
        mine, base = part[part["arm"] == arm], part[part["arm"] == baseline]
        if mine.empty or base.empty or set(mine["val_metric"]) != set(base["val_metric"]):
            continue
        base = base.sort_values("flops_total")
        budget = float(base["flops_total"].iloc[-1])
        mine = mine.sort_values("flops_total")
        value = stats.value_at_budget(mine["flops_total"].to_numpy(), mine["val_value"].to_numpy(), budget)
        reference = float(base["val_value"].iloc[-1])
        rows.append({"model": model, "seed": seed, "arm_value": value, "baseline_value": reference,
                     "difference": value - reference})
    return pd.DataFrame(rows, columns=["model", "seed", "arm_value", "baseline_value", "difference"])


def _validation_metrics(curves: pd.DataFrame, arm: str, baseline: str) -> list[str]:
    """The distinct validation metrics of the two arms' fine-tuning curves (one when comparable)."""
    part = curves[(curves["stage"] == "finetune_3d") & curves["arm"].isin([arm, baseline])]
    return sorted(set(part["val_metric"].dropna().astype(str)))


def _ci_text(interval: stats.Interval) -> str:
    if interval.n < 2:
        return f"n={interval.n} pair (no interval)"
    return f"95% CI [{_mm(interval.low)}, {_mm(interval.high)}] over {interval.n} model×seed pairs"


def _mm(value: float) -> str:
    return fmt(value, 1) if math.isfinite(value) else "—"


def _signed(value: float) -> str:
    """A difference with its sign always shown (+9.2, −23.9)."""
    return ("+" if math.isfinite(value) and round(value, 1) > 0 else "") + _mm(value)
