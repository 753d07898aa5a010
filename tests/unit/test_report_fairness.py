"""The report's fairness table and the APTPose lifter at equal fine-tuning and equal total steps."""

from __future__ import annotations

import pytest

from pose_study.report import strategies
from pose_study.report.results import StudyResults
from pose_study.report.style import fmt
from tests.fixtures.results_tree import STEPS, shared_lifter_study


@pytest.fixture(scope="module")
def res() -> StudyResults:
    tree = shared_lifter_study()
    return StudyResults.load(tree.config, tree.tables)


def test_fairness_table_has_steps_data_upstream_and_flops_per_arm(res):
    table = strategies.fairness(res)
    rows = {row[3].data["arm"]: row for row in table.rows}  # one model: one row per arm
    assert set(rows) == set(res.arms) and len(table.rows) == len(res.arms) * len(res.models)
    apt = {c.data["column"]: c for c in rows["apt_pose"] if "column" in c.data}
    # the plan's steps: fine-tuning fusion + geometric, plus 2D pre-training, pose pre-training and the lifter
    s = res.config
    own = s["finetune_3d"]["fusion_steps"] + s["finetune_3d"]["geometric_steps"]
    total = own + s["pretrain_2d"]["steps"] + s["pretrain_pose"]["steps"] + s["train_lifter"]["steps"]
    assert (int(apt["steps"].data["value"]), int(apt["total_steps"].data["value"])) == (own, total)
    assert apt["upstream"].text == ("pretrain_2d/hg1_tiny/wild_mpii; pretrain_pose/apt_tiny/wild_mpii/lab; "
                                    "train_lifter/apt_tiny/pretrain_pose/wild_mpii/lab")
    assert apt["2d"].text == "wild_mpii (64)" and apt["3d"].text == "lab (64)"  # no pose-only set: lab's poses
    scratch = {c.data["column"]: c for c in rows["fusion_scratch"] if "column" in c.data}
    assert scratch["upstream"].text == "—" and scratch["total_steps"].data["value"] == str(own)
    baseline = {c.data["column"]: c for c in rows["3d_only"] if "column" in c.data}  # what it ran, not the plan
    ran = res.runs[(res.runs["arm"] == "3d_only") & (res.runs["stage"] == "finetune_3d")]["steps"].mean()
    assert baseline["3d"].text == "lab (64)" and baseline["2d"].text == "—"
    assert int(baseline["steps"].data["value"]) == round(ran) > own
    flops = res.total_flops()
    want = flops.loc[flops["arm"] == "apt_pose", "value"].mean()
    assert float(apt["flops"].data["value"]) == pytest.approx(want)


def test_apt_sentence_compares_at_equal_fine_tuning_and_equal_total_steps(res):
    sentence = strategies.apt_sentence(res)
    m = res.metrics
    m = m[(m["arm"] == "apt_pose") & (m["testset"] == "lab_test") & (m["metric"] == "mpjpe")]
    per_seed = {init: m[m["variant"] == f"gt_2d:apt_tiny/{init}"].groupby("seed")["value"].mean()
                for init in ("pretrain_pose", "scratch", "scratch_total")}
    total = (per_seed["pretrain_pose"] - per_seed["scratch_total"]).mean()
    assert f"at equal fine-tuning steps ({STEPS['train_lifter']})" in sentence
    assert (f"At equal total steps it beat the scratch lifter trained for "
            f"{STEPS['train_lifter'] + STEPS['pretrain_pose']} steps (scratch_total; pose pre-training + fine-tuning "
            f"{STEPS['pretrain_pose']} + {STEPS['train_lifter']}): {fmt(total, 1)} mm MPJPE from ground-truth 2D") \
        in sentence
    assert len(per_seed["scratch_total"]) == 2  # both seeds scored the scratch_total lifter


def test_lifter_runs_table_names_the_2d_set_of_each_lifter_run(res):
    table = strategies.lifter_runs(res)
    column = table.columns.index("2D data")
    shown = {(row[0].text, row[1].text, row[2].text): row[column].text for row in table.rows}
    assert shown[("pretrain_pose", "apt_tiny", "—")] == "wild_mpii"
    assert shown[("train_lifter", "apt_tiny", "pretrain_pose")] == "wild_mpii"
    assert shown[("train_lifter", "apt_tiny", "scratch_total")] == shown[("pretrain_pose", "mpt_tiny", "—")] == "—"
