"""Compute efficiency of an arm against a baseline, from learning curves: pure functions.

A learning curve is validation error (lower is better) against cumulative training compute
(FLOPs). Counting the arm's compute from zero at the start of its pre-training (``flops_total``)
answers "what does the whole recipe cost"; counting only its fine-tuning (``flops``) answers the
paper's framing, where pre-training is a reusable cost already paid.

* ``error_at``: a curve's error at a given compute, linearly interpolated between its points.
* ``compute_to_reach``: the first compute at which a curve reaches a target error.
* ``equal_compute_difference``: the arm's final error minus the baseline's error at the arm's
  final compute (negative: the arm is better for the same compute).
* ``time_to_accuracy_ratio``: the arm's compute to reach the baseline's final error, over the
  baseline's compute for it (below 1: the arm gets there cheaper).

Each returns NaN when the curves do not answer (the baseline stops before the arm's compute, or
the arm never reaches the target), so a missing answer is never a number.

``paired_efficiency`` applies the last two to every (model, seed) pair of an arm and the baseline in
a ``curves.csv`` table (validation curves: ``val_value``), with either compute column.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd


def _points(compute: Sequence[float], error: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(compute, dtype=float), np.asarray(error, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"compute and error must be 1-D of one length, got shapes {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if np.any(np.diff(x) < 0):
        raise ValueError("a learning curve's compute must not decrease")
    return x, y


def error_at(compute: Sequence[float], error: Sequence[float], at: float) -> float:
    """The curve's error at compute ``at``, linearly interpolated; NaN outside the curve's range."""
    x, y = _points(compute, error)
    if not len(x) or not x[0] <= at <= x[-1]:
        return math.nan
    return float(np.interp(at, x, y))


def compute_to_reach(compute: Sequence[float], error: Sequence[float], target: float) -> float:
    """The first compute at which the curve's error is ≤ ``target``, linearly interpolated between the
    last point above and the first point at or below it; NaN if the curve never gets there."""
    x, y = _points(compute, error)
    hit = np.flatnonzero(y <= target)
    if not len(hit):
        return math.nan
    i = int(hit[0])
    if i == 0:
        return float(x[0])
    x0, x1, y0, y1 = x[i - 1], x[i], y[i - 1], y[i]
    return float(x0 + (x1 - x0) * (y0 - target) / (y0 - y1))


def equal_compute_difference(arm_compute: Sequence[float], arm_error: Sequence[float],
                             base_compute: Sequence[float], base_error: Sequence[float]) -> float:
    """Arm's final error − the baseline's error at the arm's final compute (NaN if the baseline's curve
    does not reach that compute)."""
    x, y = _points(arm_compute, arm_error)
    if not len(x):
        return math.nan
    return float(y[-1]) - error_at(base_compute, base_error, float(x[-1]))


def time_to_accuracy_ratio(arm_compute: Sequence[float], arm_error: Sequence[float],
                           base_compute: Sequence[float], base_error: Sequence[float]) -> float:
    """Compute the arm needs to reach the baseline's final error, over the compute the baseline needed
    for it (its first crossing); NaN if either never gets there."""
    bx, by = _points(base_compute, base_error)
    if not len(bx):
        return math.nan
    target = float(by[-1])
    need = compute_to_reach(arm_compute, arm_error, target)
    return need / compute_to_reach(bx, by, target)


PAIR_COLUMNS = ("model", "seed", "equal_compute", "time_ratio", "arm_compute", "baseline_start",
                "baseline_compute", "arm_final", "baseline_final")


def paired_efficiency(curves: pd.DataFrame, arm: str, baseline: str, column: str = "flops_total") -> pd.DataFrame:
    """Equal-compute difference and time-to-accuracy ratio of ``arm`` against ``baseline``, per (model, seed).

    Args:
        curves: ``curves.csv`` rows of the fine-tuning runs on one pair of training sets.
        arm: The compared arm.
        baseline: The reference arm (its run has no upstream run, so both compute columns agree).
        column: ``flops_total`` (every upstream stage counted) or ``flops`` (the run's own compute:
            pre-training counted as a cost already paid).

    Returns:
        One row per pair present in both arms with one validation metric: ``PAIR_COLUMNS``
        (``arm_compute``/``baseline_compute``: each curve's last compute, ``baseline_start`` the baseline's
        first; ``*_final``: each curve's last error).
    """
    rows = []
    for (model, seed), part in curves.groupby(["model", "seed"], sort=True):
        mine, base = (part[part["arm"] == a].sort_values(column) for a in (arm, baseline))
        if mine.empty or base.empty or set(mine["val_metric"]) != set(base["val_metric"]):
            continue
        curve, reference = (mine[column], mine["val_value"]), (base[column], base["val_value"])
        rows.append({"model": model, "seed": seed, "equal_compute": equal_compute_difference(*curve, *reference),
                     "time_ratio": time_to_accuracy_ratio(*curve, *reference),
                     "arm_compute": float(mine[column].iloc[-1]), "baseline_start": float(base[column].iloc[0]),
                     "baseline_compute": float(base[column].iloc[-1]),
                     "arm_final": float(mine["val_value"].iloc[-1]),
                     "baseline_final": float(base["val_value"].iloc[-1])})
    return pd.DataFrame(rows, columns=list(PAIR_COLUMNS))
