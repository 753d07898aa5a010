"""Equal-compute and time-to-accuracy functions on constructed learning curves (known answers)."""

import math

import pytest

from pose_study.report.efficiency import (compute_to_reach, equal_compute_difference, error_at,
                                          time_to_accuracy_ratio)

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
