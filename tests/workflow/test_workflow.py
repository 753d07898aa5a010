"""The Snakemake workflow: lint, formatting, DAG shape, validation before any job, the smoke study."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pose_study.arms import ARMS
from pose_study.config import load_config
from pose_study.plan import Plan
from tests.dry_run import dry_run_jobs, planned_jobs

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
       "OMP_NUM_THREADS": "1"}


def snakemake(*args: str, cwd: Path = REPO, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), *args]
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=ENV)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[1].split("\n\n")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def write_config(path: Path, name: str = "smoke", **changes) -> Path:
    data = yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data))
    return path


def test_lint_is_clean():
    result = snakemake("--lint", "--configfile", "config/smoke.yaml")
    out = result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition!" in out


def test_rule_files_are_snakefmt_formatted():
    snakefmt = Path(sys.executable).parent / "snakefmt"
    result = subprocess.run([str(snakefmt), "--check", "Snakefile", "workflow/rules"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("name", "every_arm"), [("synthetic", False), ("synthetic_arms", True), ("smoke", True)])
def test_dry_run_job_counts_match_the_configured_axes(name, every_arm, tmp_path):
    data = yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())
    assert (sorted(data["arms"]) == sorted(ARMS)) == every_arm, "smoke runs every arm; the default study, three"
    models, seeds, arms = len(data["models"]), len(data["seeds"]), len(data["arms"])
    splits = sum(len(d["samples"]) for d in data["datasets"].values())
    # mlp_tiny, graph_tiny (guide) + transformer_tiny (held out) + apt_tiny from scratch, pre-trained and from
    # scratch at the pre-trained one's total steps (one 2D training set)
    lifters = 6 * seeds if every_arm else 0
    pose_pretraining = 2 * seeds if every_arm else 0  # apt_tiny (masked pose modeling) and mpt_tiny (heatmaps)
    out = snakemake("-n", "--configfile", str(REPO / "config" / f"{name}.yaml"), "--directory", str(tmp_path)).stdout
    lifter_jobs = {"train_lifter": lifters, "pretrain_pose": pose_pretraining} if every_arm else {}
    assert job_counts(out) == {
        "synthesize": splits, "pretrain_2d": models * seeds, "finetune_3d": arms * models * seeds,
        "evaluate_finetune_3d": arms * models * seeds, "evaluate_pretrain_2d": models * seeds, **lifter_jobs,
        "collect": 1, "report": 1, "all": 1,
        "total": splits + models * seeds * (2 + 2 * arms) + lifters + pose_pretraining + 3,
    }


SHIPPED = sorted(p.stem for p in (REPO / "config").glob("*.yaml"))


@pytest.mark.parametrize("name", SHIPPED)
def test_the_dry_run_is_the_plan(name, tmp_path):
    """Every job Snakemake schedules, with its outputs and inputs, is a job of pose_study.plan, and back."""
    out = snakemake("-n", "--configfile", str(REPO / "config" / f"{name}.yaml"), "--directory", str(tmp_path)).stdout
    references = str(REPO / "reports" / "reference_results.yaml")
    scheduled = {(rule, outputs, frozenset("reports/reference_results.yaml" if p == references else p for p in inputs))
                 for rule, outputs, inputs in dry_run_jobs(out) if rule != "all"}
    planned = {(job.rule, frozenset(job.outputs),
                frozenset(p for paths in job.inputs.values() for p in ([paths] if isinstance(paths, str) else paths)))
               for job in Plan(load_config(REPO / "config" / f"{name}.yaml")).jobs()}
    assert scheduled == planned


def test_two_arm_study_plans_no_lifters(tmp_path):
    config = write_config(tmp_path / "two.yaml", arms=["pretrained_2d", "fusion_scratch"])
    counts = job_counts(snakemake("-n", "--configfile", str(config), "--directory", str(tmp_path)).stdout)
    assert "train_lifter" not in counts and "pretrain_pose" not in counts
    assert counts["finetune_3d"] == 2 * 2 * 2


def test_lifter_arms_get_their_lifters_and_priors(tmp_path):
    """The finetune_3d and evaluate commands carry exactly the upstream runs pose_study/arms.py names."""
    out = snakemake("-n", "-p", "--configfile", "config/smoke.yaml", "--directory", str(tmp_path)).stdout
    lines = [line for line in out.splitlines() if "python -m pose_study" in line]

    def command(stage: str, arm: str) -> str:
        run = f"results/smoke/finetune_3d/{arm}/hg1_tiny/wild_mpii/lab/seed0/model.pt"  # trained or evaluated
        found = [c for c in lines if f" {stage} " in c and run in c]
        assert len(found) == 1, (stage, arm)
        return found[0]

    lifter = "results/smoke/train_lifter/{}/{}/none/lab/seed0/model.pt"
    multi = command("finetune-3d", "l2d_multi")
    assert multi.count("--guide-lifter") == 2 and lifter.format("graph_tiny", "scratch") in multi
    assert multi.count("--prior-metrics") == 3  # pretrain_2d + both guide lifters
    single = command("finetune-3d", "l2d_single")
    assert single.count("--guide-lifter") == 1 and lifter.format("mlp_tiny", "scratch") in single
    mpt = command("finetune-3d", "mpt")
    assert "--lifter-init" in mpt and "pretrain_pose/mpt_tiny/none/lab/seed0/model.pt" in mpt
    assert "--guide-lifter" not in mpt
    assert "--guide-lifter" not in command("finetune-3d", "pretrained_2d")
    assert "--init-weights" not in command("finetune-3d", "fusion_scratch")
    apt = command("finetune-3d", "apt_pose")  # validated through its own sequence lifter, not the MLP
    assert apt.count("--guide-lifter") == 1 and lifter.format("apt_tiny", "pretrain_pose").replace(
        "/none/", "/wild_mpii/") in apt
    pose = [c for c in lines if " pretrain-pose " in c and "seed0" in c]
    assert len(pose) == 2 and all("--train-pose results/smoke/data/mocap/train.h5" in c and "--train-3d" not in c
                                  for c in pose)
    assert ["--train-2d" in c for c in sorted(pose)] == [True, False]  # apt_tiny reads its 2D set, mpt_tiny none
    evaluation = command("evaluate", "l2d_single")
    assert evaluation.count("--lifter ") == 7  # 3 single-frame + apt scratch/pre-trained/scratch_total + mpt zero-shot
    assert "--lifter " not in command("evaluate", "3d_only")
    baseline = command("finetune-3d", "3d_only")
    assert "--train-2d" not in baseline and baseline.count("--budget-metrics") == len(ARMS) - 1


@pytest.mark.parametrize("change,message", [
    ({"sedds": [0]}, r"'sedds' was unexpected.*allowed keys"),
    ({"models": ["hg1_tiny", "hg3_tiny"]}, r"models.1: 'hg3_tiny' is not one of"),
], ids=["misspelled-key", "unknown-preset"])
def test_bad_config_fails_before_any_job(tmp_path, change, message):
    config = write_config(tmp_path / "bad.yaml", **change)
    result = snakemake("-n", "--configfile", str(config), "--directory", str(tmp_path), check=False)
    assert result.returncode != 0
    assert re.search(message, result.stdout + result.stderr)
    assert "Job stats" not in result.stdout


@pytest.mark.workflow
def test_smoke_study_end_to_end_then_nothing_then_exactly_the_changed_preset(tmp_path):
    workdir = tmp_path / "smoke study's dir"  # spaces and quotes in paths must survive every command
    workdir.mkdir()
    config = write_config(workdir / "smoke.yaml")
    snakemake("--configfile", str(config), "--directory", str(workdir), "--cores", "2")
    assert (workdir / "reports/smoke/index.html").stat().st_size > 10_000
    for table in ("metrics", "curves", "runs", "jobs", "examples"):
        assert (workdir / f"results/smoke/tables/{table}.csv").stat().st_size > 0

    again = snakemake("-n", "--configfile", str(config), "--directory", str(workdir))
    assert "Nothing to be done" in again.stdout + again.stderr

    data = yaml.safe_load(config.read_text())
    data["model_settings"] = {"hg2_tiny": {"pretrain_steps": 7}}
    config.write_text(yaml.safe_dump(data))
    plan = planned_jobs(snakemake("-n", "--configfile", str(config), "--directory", str(workdir)).stdout)
    # the arms from pretrain_2d, and the baseline: its compute budget is their total
    rerun = [a for a in data["arms"] if a != "fusion_scratch"]
    expected = {("pretrain_2d", f"results/smoke/pretrain_2d/hg2_tiny/wild_mpii/seed{s}/model.pt") for s in (0, 1)}
    expected |= {("finetune_3d", f"results/smoke/finetune_3d/{a}/hg2_tiny/wild_mpii/lab/seed{s}/model.pt")
                 for s in (0, 1) for a in rerun}
    expected |= {("evaluate_pretrain_2d", f"results/smoke/evaluate/pretrain_2d/hg2_tiny/wild_mpii/seed{s}/wild_mpii_val.json")
                 for s in (0, 1)}
    expected |= {("evaluate_finetune_3d",
                  f"results/smoke/evaluate/finetune_3d/{a}/hg2_tiny/wild_mpii/lab/seed{s}/lab_test.json")
                 for s in (0, 1) for a in rerun}
    expected |= {("collect", "results/smoke/tables/metrics.csv"), ("report", "reports/smoke/index.html")}
    assert {job for job in plan if job[0] != "all"} == expected


def paper_config_on_fixtures(tmp_path: Path) -> Path:
    """config/paper.yaml with every dataset root pointing at an official-format fixture."""
    from tests.fixtures.official import write_all

    roots = write_all(tmp_path / "raw data's")  # a space and a quote in every dataset path
    data = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    for d in data["datasets"].values():
        d["root"] = str(roots[d["name"]])
    data["datasets"]["lsp"]["options"] = {"skip_bad_images": True}  # the fixture leaves out one image on purpose
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_paper_dag_builds_on_fixture_roots(tmp_path):
    config = paper_config_on_fixtures(tmp_path)
    data = yaml.safe_load(config.read_text())
    out = snakemake("-n", "--configfile", str(config), "--directory", str(tmp_path)).stdout
    models, seeds, arms, d2 = len(data["models"]), len(data["seeds"]), len(data["arms"]), len(data["train_2d"])
    counts = job_counts(out)
    resnets = [m for m in data["models"] if data["model_settings"].get(m, {}).get("pretrained_backbone") == "imagenet"]
    assert len(resnets) == 5 and counts["download"] == len(data["datasets"]) + len(resnets)  # + ImageNet weights
    # mpii, flic_full: train+val; lsp: val; h36m: train+val+test; 3dhp, occl.: test; cmu_mocap: train
    assert counts["convert"] == 11
    assert counts["pretrain_2d"] == models * d2 * seeds
    assert counts["finetune_3d"] == arms * models * d2 * seeds
    # one 3D training set; the sequence lifter's pose pre-training (and the lifter from it) per 2D set
    assert counts["train_lifter"] == (5 + d2) * seeds and counts["pretrain_pose"] == (1 + d2) * seeds


@pytest.mark.workflow
def test_paper_data_stage_runs_on_fixtures(tmp_path):
    """download (layout check) and convert, through the workflow, on official-format fixtures."""
    config = paper_config_on_fixtures(tmp_path)
    snakemake("--configfile", str(config), "--directory", str(tmp_path), "--cores", "2", "--until", "convert")
    from pose_study.data.formats import read_info

    for dataset, split in [("mpii", "val"), ("h36m", "test"), ("mpi_inf_3dhp", "test"), ("occlusion_person", "test")]:
        info = read_info(tmp_path / f"results/paper/data/{dataset}/{split}.h5")
        assert info.source == "real" and info.dataset == dataset
