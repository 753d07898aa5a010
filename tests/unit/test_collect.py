"""The collect stage: tidy tables from a results tree, missing runs kept as rows, atomic writes."""

from __future__ import annotations

import argparse
import json
import shutil

import pandas as pd
import pytest

from pose_study.arms import ARMS
from pose_study.plan import EvalSplit, Plan, RunKey
from pose_study.report import tidy
from pose_study.stages import collect
from tests.fixtures.results_tree import (ResultsTree, copy_study, delete_run, fixture_config, shared_lifter_study,
                                        shared_study)

PRE_RUN = "finetune_3d/pretrained_2d/hg2_tiny/wild_mpii/lab/seed1"


@pytest.fixture(scope="module")
def tree() -> ResultsTree:
    return shared_study()


@pytest.fixture(scope="module")
def tables(tree, tmp_path_factory) -> dict[str, pd.DataFrame]:
    out = tmp_path_factory.mktemp("tables")
    collect.run(tree.config, collect.CollectPaths(tree.results, tree.benchmarks, out))
    assert not list(out.glob(".*")), "atomic writes leave no temporary files"
    return {name: tidy.read_table(out, name) for name in collect.TABLES}


def test_every_table_is_written_with_its_schema(tables):
    for name in collect.TABLES:
        assert list(tables[name].columns) == list(tidy.SCHEMAS[name]), name


def test_runs_table_has_one_ok_row_per_expected_run(tree, tables):
    runs = tables["runs"]
    expected = [k.path for k in Plan(tree.config).runs()]
    assert list(runs["run"]) == expected and len(expected) == 4 + 8
    assert set(runs["status"]) == {"ok"}
    metrics = json.loads((tree.results / PRE_RUN / "metrics.json").read_text())
    row = runs.set_index("run").loc[PRE_RUN]
    assert row["total_device_hours"] == pytest.approx(metrics["compute_total"]["device_hours"])
    assert row["train_flops"] == metrics["compute"]["train_flops"]
    assert row["final_value"] == pytest.approx(metrics["final"]["value"])
    assert row["device"] == metrics["compute"]["device"] and isinstance(row["git_sha"], str)


def test_metric_totals_equal_the_evaluation_json(tree, tables):
    doc = json.loads((tree.results / "evaluate" / PRE_RUN / "occluded_test.json").read_text())
    m = tables["metrics"]
    mine = m[(m["run"] == PRE_RUN) & (m["testset"] == "occluded_test")]
    totals = mine[(mine["variant"] == "model") & (mine["scope"] == "total")].set_index("metric")["value"]
    assert totals.to_dict() == pytest.approx({k: v["value"] for k, v in doc["metrics"].items()})
    joints = mine[(mine["metric"] == "mpjpe") & (mine["scope"] == "joint")].set_index("key")["value"]
    assert joints.to_dict() == pytest.approx(doc["metrics"]["mpjpe"]["per_joint"])
    actions = mine[mine["scope"] == "action"].set_index("key")["value"]
    assert actions.to_dict() == pytest.approx(doc["per_action"])
    lifting = mine[mine["variant"] == "gt_2d_lifting"].set_index("metric")["value"]
    assert lifting.to_dict() == pytest.approx(doc["baselines"]["gt_2d_lifting"])


def test_metrics_cover_every_run_and_test_set(tree, tables):
    m = tables["metrics"]
    got = set(zip(m["run"], m["testset"]))
    plan = Plan(tree.config)
    want = {(k.path, t.name) for k in plan.runs() for t in plan.test_sets_of(k)}
    assert got == want and set(m["status"]) == {"ok"}
    assert set(m["variant"]) == {"model", "mean_pose", "gt_2d_lifting"}
    assert set(m["scope"]) == {"total", "joint", "action"}


def test_curves_examples_and_jobs(tree, tables):
    curves, examples, jobs = tables["curves"], tables["examples"], tables["jobs"]
    assert len(curves) == 8 * 5 + 4 * 7  # the baseline runs continue to the pre-trained arm's total: 70 steps
    pretrained = curves[curves["arm"] == "pretrained_2d"]
    assert (pretrained["flops_total"] > pretrained["flops"]).all()
    per_eval = examples.groupby(["run", "testset"]).size()
    assert (per_eval == 6 * 17).all() and len(per_eval) == 4 + 8 * 3
    assert set(jobs["stage"]) == {"synthesize", "pretrain_2d", "finetune_3d", "evaluate"}
    assert len(jobs) == 3 + 12 + 12 and (jobs["seconds"] > 0).all() and (jobs["max_rss_mb"] == 412.5).all()


def test_a_missing_run_is_a_row_not_a_gap(tree, tmp_path):
    broken = copy_study(tree, tmp_path / "copy")
    delete_run(broken, PRE_RUN)
    (broken.results / "evaluate" / "finetune_3d/3d_only/hg1_tiny/wild_mpii/lab/seed0/lab_test.json").unlink()
    out = collect.collect(broken.config, broken.results, broken.benchmarks)
    runs, m = out["runs"].set_index("run"), out["metrics"]
    assert runs.loc[PRE_RUN, "status"] == "missing"
    assert runs.loc[PRE_RUN, "missing_files"] == "metrics.json;curve.csv;spec.json;model.pt"
    assert len(runs) == 12 and (runs["status"] == "ok").sum() == 11
    lost = m[m["status"] == "missing"][["run", "testset"]].values.tolist()
    want = [[PRE_RUN, t] for t in ("lab_test", "occluded_test", "wild_mpii_val")]
    assert sorted(lost) == sorted([*want, ["finetune_3d/3d_only/hg1_tiny/wild_mpii/lab/seed0", "lab_test"]])


def test_an_unexpected_evaluation_is_kept(tree, tmp_path):
    extra = copy_study(tree, tmp_path / "copy")
    run = "pretrain_2d/hg1_tiny/wild_mpii/seed0"
    src = extra.results / "evaluate" / "finetune_3d/3d_only/hg1_tiny/wild_mpii/lab/seed0/lab_test.json"
    shutil.copy(src, extra.results / "evaluate" / run / "lab_test.json")
    m = collect.collect(extra.config, extra.results, extra.benchmarks)["metrics"]
    assert ((m["run"] == run) & (m["testset"] == "lab_test")).any()


def test_benchmark_files_with_na_and_extended_columns(tmp_path):
    path = tmp_path / "bench" / "evaluate" / "a" / "b.tsv"
    path.parent.mkdir(parents=True)
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\tjobid\n"
    path.write_text(header + "1.5\t0:00:01\tNA\t-\t1\t2\t3\t4\t5\t6\t7\n"
                    "2.5\t0:00:02\t10\t11\t1\t2\t3\t4\t5\t6\t7\n")
    rows = tidy.job_rows(tmp_path / "bench", path)
    assert [r["repeat"] for r in rows] == [0, 1] and rows[0]["job"] == "evaluate/a/b"
    assert rows[0]["max_rss_mb"] != rows[0]["max_rss_mb"] and rows[1]["max_rss_mb"] == 10.0


def test_a_file_that_is_not_a_benchmark_is_named(tmp_path):
    path = tmp_path / "stage" / "x.tsv"
    path.parent.mkdir()
    path.write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match=r"x\.tsv.*not a Snakemake benchmark"):
        tidy.job_rows(tmp_path, path)


def test_corrupt_json_is_named(tree, tmp_path):
    broken = copy_study(tree, tmp_path / "copy")
    (broken.results / PRE_RUN / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"metrics\.json: not valid JSON"):
        collect.collect(broken.config, broken.results, broken.benchmarks)


def test_config_argument_forms(tree, tmp_path):
    assert collect.load_config_arg(str(tree.config_path))["study"] == "fixture"
    assert collect.load_config_arg(json.dumps(tree.config))["models"] == tree.config["models"]
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        collect.load_config_arg(str(tmp_path / "nope.yaml"))


def test_table_reader_names_file_and_columns(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"runs\.csv"):
        tidy.read_table(tmp_path, "runs")
    (tmp_path / "jobs.csv").write_text("stage,job\nx,y\n")
    with pytest.raises(ValueError, match=r"jobs\.csv: missing column"):
        tidy.read_table(tmp_path, "jobs")


def test_command_line(tree, tmp_path):
    parser = argparse.ArgumentParser()
    collect.configure(parser)
    out = tmp_path / "tables"
    args = parser.parse_args(["--config", str(tree.config_path), "--results", str(tree.results),
                              "--benchmarks", str(tmp_path / "no-benchmarks"), "--out-dir", str(out)])
    collect.main(args)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.csv" for n in collect.TABLES)
    assert tidy.read_table(out, "jobs").empty


# --- every arm: lifter training and pose pre-training runs, lifter variants -----------------------

def test_lifter_runs_and_variants_are_collected():
    tree = shared_lifter_study()
    runs = tidy.read_table(tree.tables, "runs")
    lifter = runs[runs["stage"] == "train_lifter"]
    assert len(lifter) == 6 * 2 and set(lifter["status"]) == {"ok"}
    # a lifter run names the 2D set its data came from: the pose pre-trained sequence lifter's, else none
    from_pose = lifter["init"] == "pretrain_pose"
    assert set(lifter.loc[from_pose, "dataset_2d"]) == {"wild_mpii"} and set(lifter.loc[~from_pose, "dataset_2d"]) == \
        {"none"}
    assert set(lifter["init"]) == {"scratch", "pretrain_pose", "scratch_total"} and "apt_tiny" in set(lifter["lifter"])
    assert set(lifter["arm"]) == set(lifter["model"]) == {""}  # identity columns mean what they say
    run = "finetune_3d/l2d_multi/hg1_tiny/wild_mpii/lab/seed1"
    doc = json.loads((tree.results / "evaluate" / run / "lab_test.json").read_text())
    m = tidy.read_table(tree.tables, "metrics")
    mine = m[(m["run"] == run) & (m["testset"] == "lab_test") & (m["scope"] == "total")]
    for name, scores in doc["lifters"].items():
        for variant, source in ((f"lifter:{name}", "detected"), (f"gt_2d:{name}", "gt_2d")):
            got = mine[mine["variant"] == variant].set_index("metric")["value"].to_dict()
            assert got == pytest.approx(scores[source]) and "mpjpe" in got
    assert not m["variant"].str.startswith("lifter:")[m["testset"] == "wild_mpii_val"].any()
    curves = tidy.read_table(tree.tables, "curves")
    assert {"pretrain_pose", "train_lifter"} <= set(curves["stage"])


def test_metric_rows_carry_both_2d_decoders_and_the_argmax_lifter_input():
    key = RunKey(stage="finetune_3d", arm="l2d_single", model="hg1_tiny", dataset_2d="wild_mpii", dataset_3d="lab")
    doc = {"source": "synthetic", "samples": 4, "primary_metric": "mpjpe", "metrics": {}, "per_action": {},
           "baselines": {}, "decoder": "argmax_refined",
           "decoders": {"argmax_refined": {"error_2d_px": 1.5}, "soft_argmax": {"error_2d_px": 2.25}},
           "lifters": {"mlp_tiny/scratch": {"detected": {"mpjpe": 50.0}, "gt_2d": {"mpjpe": 40.0},
                                            "detected_argmax_refined": {"mpjpe": 48.0}}}}
    rows = tidy.metric_rows(key, EvalSplit("lab", "test", "3d"), doc)
    got = {(r["variant"], r["metric"]): r["value"] for r in rows}
    assert got == {("decoder:argmax_refined", "error_2d_px"): 1.5, ("decoder:soft_argmax", "error_2d_px"): 2.25,
                   ("lifter:mlp_tiny/scratch", "mpjpe"): 50.0, ("gt_2d:mlp_tiny/scratch", "mpjpe"): 40.0,
                   ("lifter_argmax_refined:mlp_tiny/scratch", "mpjpe"): 48.0}
