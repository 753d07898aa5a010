"""``cost``: a study's expected FLOPs per stage, with the compute-matched baseline resolved."""

from __future__ import annotations

import math

import pytest

from pose_study import models
from pose_study.benchmarks import cost
from pose_study.plan import Plan
from tests.fixtures.results_tree import fixture_config


@pytest.fixture(scope="module")
def plan() -> Plan:
    return Plan(fixture_config(arms=["3d_only", "fusion_scratch", "pretrained_2d"], models=["hg1_tiny"]))


def test_every_run_costs_three_forward_passes_per_sample(plan):
    costs = cost.run_costs(plan)
    fwd = models.forward_flops(models.build_model("hg1_tiny"), plan.config["crop_size"])
    for key, c in costs.items():
        spec = plan.spec(key)
        assert c.samples == c.steps * spec["loop"]["batch_size"]
        assert c.flops == 3 * fwd * c.samples
        if key.arm != "3d_only":
            assert c.steps == spec["steps"]


def test_the_baseline_costs_the_largest_total_of_the_runs_it_is_compared_with(plan):
    costs = cost.run_costs(plan)
    for key, c in costs.items():
        if key.arm != "3d_only":
            continue
        budget = max(costs[k].total for k in plan.compared_runs(key))
        assert costs[[k for k in plan.compared_runs(key) if k.arm == "pretrained_2d"][0]].total == budget
        per_step = c.flops / c.steps
        assert c.steps == math.ceil(budget / per_step) and c.flops >= budget > c.flops - per_step


def test_the_stage_table_adds_up(plan):
    costs = cost.run_costs(plan)
    rows = {r["stage"]: r for r in cost.stage_rows(costs)}
    assert set(rows) == {"pretrain_2d", "finetune_3d · 3d_only", "finetune_3d · fusion_scratch",
                         "finetune_3d · pretrained_2d"}
    assert sum(r["flops"] for r in rows.values()) == pytest.approx(sum(c.flops for c in costs.values()))
    table = cost.markdown(list(rows.values()), 100.0, (0.5,))
    total = table.splitlines()[-1].split("|")
    hours = sum(c.flops for c in costs.values()) / (100e12 * 0.5) / 3600
    assert total[1].strip() == "**total**" and float(total[-2]) == pytest.approx(hours, abs=0.06)
