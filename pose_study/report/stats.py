"""Statistics of the report, as pure functions: t-intervals over seeds and paired arm differences.

Seeds are few (2–5), so intervals are Student-t intervals of the mean, not bootstraps. Arms are
compared *paired*: the same model, training data and seed in both arms, so seed-to-seed variation
of the data order and the initial weights cancels out of the difference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

PAIR_KEYS = ("model", "dataset_2d", "dataset_3d", "seed")


@dataclass(frozen=True)
class Interval:
    """Mean of ``n`` values and its confidence interval (NaN bounds when ``n < 2``).

    Attributes:
        mean: Sample mean (NaN when ``n == 0``).
        low: Lower bound of the interval.
        high: Upper bound of the interval.
        n: Number of finite values.
    """

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        """Half the interval's width (NaN when there is no interval)."""
        return (self.high - self.low) / 2


def t_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> Interval:
    """Student-t confidence interval of the mean of ``values`` (NaNs ignored).

    ``mean ± t_{(1+c)/2, n-1} · s / √n`` with ``s`` the sample standard deviation (ddof = 1).

    Args:
        values: Observations, e.g. one metric over seeds.
        confidence: Two-sided coverage in (0, 1).

    Returns:
        The interval; with one value the bounds are NaN, with none the mean is NaN too.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1)
    half = float(scipy_stats.t.ppf((1 + confidence) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, n)


def ratio_interval(ratios: Sequence[float] | np.ndarray, confidence: float = 0.95) -> Interval:
    """Geometric mean of positive ``ratios`` with the t-interval of their logarithm, exponentiated.

    A ratio's sampling distribution is skewed; on the log scale it is closer to symmetric, so the
    interval is ``exp(mean(log r) ± t · s_log / √n)`` (asymmetric around the geometric mean).
    Non-positive and non-finite ratios are ignored.
    """
    x = np.asarray(ratios, dtype=np.float64)
    x = x[np.isfinite(x) & (x > 0)]
    interval = t_interval(np.log(x), confidence)
    return Interval(*(math.exp(v) for v in (interval.mean, interval.low, interval.high)), interval.n)


def paired_differences(frame: pd.DataFrame, arm: str, baseline: str, value: str = "value",
                       keys: Sequence[str] = PAIR_KEYS) -> pd.DataFrame:
    """``arm − baseline`` for every pair present in both arms.

    Args:
        frame: One row per (arm, *keys) with an ``arm`` column and the ``value`` column.
        arm: The compared arm, e.g. ``pretrained_2d``.
        baseline: The reference arm, e.g. ``3d_only``.
        value: Column to difference.
        keys: Columns that identify a pair.

    Returns:
        Columns ``keys`` + ``arm``, ``baseline``, ``difference``; pairs missing an arm are left out.
    """
    keys = list(keys)
    left = frame.loc[frame["arm"] == arm, [*keys, value]].rename(columns={value: "arm_value"})
    right = frame.loc[frame["arm"] == baseline, [*keys, value]].rename(columns={value: "baseline_value"})
    pairs = left.merge(right, on=keys, how="inner", validate="one_to_one")
    pairs["difference"] = pairs["arm_value"] - pairs["baseline_value"]
    return pairs.sort_values(keys).reset_index(drop=True)


def summarise(frame: pd.DataFrame, by: Sequence[str], value: str = "value",
              confidence: float = 0.95) -> pd.DataFrame:
    """Mean, interval bounds and ``n`` of ``value`` within each group of ``by`` (over seeds).

    Returns:
        One row per group: ``by`` columns, ``mean``, ``low``, ``high``, ``n``.
    """
    rows = []
    for group, part in frame.groupby(list(by), sort=False, dropna=False):
        interval = t_interval(part[value].to_numpy(dtype=np.float64), confidence)
        group = group if isinstance(group, tuple) else (group,)
        rows.append({**dict(zip(by, group)), "mean": interval.mean, "low": interval.low,
                     "high": interval.high, "n": interval.n})
    return pd.DataFrame(rows, columns=[*by, "mean", "low", "high", "n"])


def value_at_budget(flops: np.ndarray, values: np.ndarray, budget: float) -> float:
    """The last curve value recorded at or below a compute budget (NaN if none).

    Args:
        flops: [P] cumulative training FLOPs of the curve points, increasing.
        values: [P] validation values at those points.
        budget: Compute budget, FLOPs.
    """
    inside = np.asarray(flops, dtype=np.float64) <= budget * (1 + 1e-9)
    if not inside.any():
        return math.nan
    return float(np.asarray(values, dtype=np.float64)[inside][-1])
