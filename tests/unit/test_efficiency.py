"""Equal-compute and time-to-accuracy functions on constructed learning curves (known answers)."""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from pose_study.report.efficiency import (compute_to_reach, equal_compute_difference, error_at, paired_efficiency,
                                          time_to_accuracy_ratio)
from pose_study.report.stats import ratio_interval

# baseline: error falls 100 → 50 linearly over 0..10 FLOPs
BASE_X, BASE_Y = [0.0, 5.0, 10.0], [100.0, 75.0, 50.0]
# arm: 4 FLOPs of pre-training already spent, then 70 → 40 over 4..8
ARM_X, ARM_Y = [4.0, 6.0, 8.0], [70.0, 55.0, 40.0]


def test_error_at_interpolates_and_refuses_to_extrapolate():
    assert error_at(BASE_X, BASE_Y, 2.5) == pytest.approx(87.5)
    assert error_at(BASE_X, BASE_Y, 10.0) == 50.0
    assert math.isnan(error_at(BASE_X, BASE_Y, 10.5)) and math.isnan(error_at(BASE_X, BASE_Y, -1.0))


def test_compute_to_reach_first_crossing():
    assert compute_to_reach(BASE_X, BASE_Y, 60.0) == pytest.approx(8.0)
    assert compute_to_reach(BASE_X, BASE_Y, 100.0) == 0.0
    assert math.isnan(compute_to_reach(BASE_X, BASE_Y, 49.0))
    # a curve that dips, rises and dips again: the first crossing counts
    assert compute_to_reach([0, 1, 2, 3], [10, 4, 8, 2], 5.0) == pytest.approx(1 - 1 / 6)


def test_equal_compute_difference():
    # arm ends at 8 FLOPs with 40; the baseline at 8 FLOPs is at 60 → −20
    assert equal_compute_difference(ARM_X, ARM_Y, BASE_X, BASE_Y) == pytest.approx(-20.0)
    # a baseline that stops before the arm's compute gives no answer
    assert math.isnan(equal_compute_difference(ARM_X, ARM_Y, [0.0, 5.0], [100.0, 75.0]))


def test_time_to_accuracy_ratio_with_and_without_pretraining():
    # baseline final 50 reached at 10; the arm reaches 50 at 4 + (70-50)/(15/2) = 6 + 2·(55-50)/15
    arm_at = 6.0 + 2.0 * (55.0 - 50.0) / 15.0
    assert time_to_accuracy_ratio(ARM_X, ARM_Y, BASE_X, BASE_Y) == pytest.approx(arm_at / 10.0)
    # pre-training as a paid cost: the arm's compute counted from the start of fine-tuning
    finetune_only = [x - 4.0 for x in ARM_X]
    assert time_to_accuracy_ratio(finetune_only, ARM_Y, BASE_X, BASE_Y) == pytest.approx((arm_at - 4.0) / 10.0)
    # an arm that never reaches the baseline's final error
    assert math.isnan(time_to_accuracy_ratio(ARM_X, [90.0, 80.0, 70.0], BASE_X, BASE_Y))


def test_bad_curves_are_named():
    with pytest.raises(ValueError, match="must not decrease"):
        error_at([0, 2, 1], [3, 2, 1], 1.0)
    with pytest.raises(ValueError, match="one length"):
        error_at([0, 1], [1.0], 0.5)


def _curves(rows: list[tuple[str, int, list[float], list[float], list[float]]]) -> pd.DataFrame:
    """A ``curves.csv``-like frame: (arm, seed, flops_total, flops, val_value) per curve."""
    out = []
    for arm, seed, total, own, error in rows:
        out += [{"arm": arm, "model": "m", "seed": seed, "flops_total": t, "flops": f, "val_value": e,
                 "val_metric": "mpjpe_mm"} for t, f, e in zip(total, own, error)]
    return pd.DataFrame(out)


def test_paired_efficiency_per_seed_with_both_compute_columns():
    finetune_only = [x - 4.0 for x in ARM_X]
    curves = _curves([("base", 0, BASE_X, BASE_X, BASE_Y), ("arm", 0, ARM_X, finetune_only, ARM_Y),
                      ("base", 1, BASE_X, BASE_X, BASE_Y), ("arm", 1, [5.0, 7.0, 9.0], [1.0, 3.0, 5.0], ARM_Y),
                      ("arm", 2, ARM_X, finetune_only, ARM_Y)])  # seed 2 has no baseline run: no pair
    total = paired_efficiency(curves, "arm", "base")
    assert total["seed"].tolist() == [0, 1]
    assert total["equal_compute"].tolist() == pytest.approx([-20.0, 40.0 - 55.0])  # base at 9 FLOPs: 55
    arm_at = 6.0 + 2.0 * (55.0 - 50.0) / 15.0
    assert total["time_ratio"].tolist() == pytest.approx([arm_at / 10.0, (arm_at + 1.0) / 10.0])
    assert total["arm_compute"].tolist() == [8.0, 9.0] and total["baseline_final"].tolist() == [50.0, 50.0]
    own = paired_efficiency(curves, "arm", "base", column="flops")
    # fine-tuning compute only: the arm ends at 4 (seed 0) and 5 (seed 1) FLOPs; the baseline there is at 80, 75
    assert own["equal_compute"].tolist() == pytest.approx([40.0 - 80.0, 40.0 - 75.0])
    assert own["time_ratio"].tolist() == pytest.approx([(arm_at - 4.0) / 10.0, (arm_at + 1.0 - 4.0) / 10.0])


def test_paired_efficiency_leaves_out_pairs_of_different_metrics():
    curves = _curves([("base", 0, BASE_X, BASE_X, BASE_Y), ("arm", 0, ARM_X, ARM_X, ARM_Y)])
    curves.loc[curves["arm"] == "arm", "val_metric"] = "error_2d_px"
    assert paired_efficiency(curves, "arm", "base").empty


def test_ratio_interval_is_the_t_interval_of_the_log():
    got = ratio_interval([0.5, 2.0, 1.0, -1.0, math.nan])  # non-positive and NaN ratios are ignored
    half = scipy.stats.t.ppf(0.975, 2) * np.log([0.5, 2.0, 1.0]).std(ddof=1) / math.sqrt(3)
    assert (got.mean, got.n) == (pytest.approx(1.0), 3)
    assert got.low == pytest.approx(math.exp(-half)) and got.high == pytest.approx(math.exp(half))
