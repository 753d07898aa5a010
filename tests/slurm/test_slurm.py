"""The slurm profile on a real one-node SLURM (scripts/slurm-single-node.sh).

One cluster per module; the smoke study runs once through the slurm executor (tests/profiles/slurm-local)
while the same study runs locally beside it (profiles/default). The tests then read that run:
GPU requests in the sbatch lines, the report, local == SLURM numbers, a partial rerun, and a training
job that SLURM sends SIGTERM and that resumes from its checkpoint when resubmitted.

Skipped (with the reason) where the cluster cannot be started: not root, not Debian, no apt, no slurm
executor plugin. With POSE_STUDY_REQUIRE_SLURM=1 (CI) those reasons fail the tests instead.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.dry_run import planned_jobs

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "slurm-single-node.sh"
ON_SLURM = ("--profile", str(REPO / "tests/profiles/slurm-local"))
LOCALLY = ("--workflow-profile", str(REPO / "profiles/default"))  # as plain `snakemake` and `make study` run
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
       "OMP_NUM_THREADS": "1"}
RUN_TIMEOUT_S = 1200  # a guard against a hung run (e.g. a status command that never answers), not a budget
R = "results/smoke"


# --- the cluster ----------------------------------------------------------------------------------


def unavailable(reason: str) -> None:
    """Skip, or fail where CI says the cluster must be there."""
    if os.environ.get("POSE_STUDY_REQUIRE_SLURM") == "1":
        pytest.fail(f"POSE_STUDY_REQUIRE_SLURM=1, but the one-node SLURM cannot run: {reason}")
    pytest.skip(f"one-node SLURM unavailable: {reason}")


def why_no_cluster() -> str | None:
    if os.geteuid() != 0:
        return "needs root (it installs slurm-wlm and starts daemons)"
    if not Path("/etc/debian_version").exists():
        return "not Debian (the script installs slurm-wlm and munge with apt)"
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        return "slurm-wlm is not installed and apt-get is unavailable"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')"
    return None


def cluster_script(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), command], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def cluster():
    """A running one-node cluster; stopped afterwards (by PID) if this fixture started it."""
    if reason := why_no_cluster():
        unavailable(reason)
    ours = cluster_script("status").returncode != 0
    started = cluster_script("start")
    if started.returncode != 0:
        unavailable(f"scripts/slurm-single-node.sh start failed:\n{started.stdout}\n{started.stderr}")
    try:
        yield
    finally:
        if ours:
            stopped = cluster_script("stop")
            assert stopped.returncode == 0, stopped.stderr


# --- running snakemake ----------------------------------------------------------------------------


def smoke_config(path: Path) -> Path:
    """config/smoke.yaml with the two Zhou-style arms: the cluster mechanics, not every arm, are under test."""
    data = yaml.safe_load((REPO / "config/smoke.yaml").read_text())
    data["arms"] = ["pretrained_2d", "fusion_scratch"]
    path.write_text(yaml.safe_dump(data))
    return path


def snakemake_cmd(workdir: Path, config: Path, *args: str, profile: tuple[str, ...] = ON_SLURM) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(config), *profile, *args]


def snakemake(workdir: Path, config: Path, *args: str) -> str:
    """Run on SLURM to completion; the combined output (with --verbose: every sbatch call)."""
    cmd = snakemake_cmd(workdir, config, *args)
    result = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=RUN_TIMEOUT_S)
    out = result.stdout + result.stderr
    assert result.returncode == 0, f"{shlex.join(cmd)} failed:\n{out[-5000:]}"
    return out


def sbatch_calls(output: str) -> list[str]:
    """The sbatch command lines the slurm executor logged (needs --verbose), without the --wrap part."""
    return [line.split("--wrap=")[0] for line in output.splitlines() if line.startswith("sbatch call:")]


def submitted_jobs(output: str) -> set[tuple[str, str]]:
    """(rule, wildcards) of every job inside every sbatch submission (groups list all their jobs)."""
    jobs = set()
    for line in output.splitlines():
        if line.startswith("sbatch call:") and (m := re.search(r"--target-jobs ((?:'[^']*' ?)+)", line)):
            for spec in re.findall(r"'([^']*)'", m.group(1)):
                rule, wildcards = spec.split(":", 1)
                jobs.add((rule, wildcards))
    return jobs


# --- the study, on SLURM and locally --------------------------------------------------------------


@dataclass
class Study:
    slurm_dir: Path
    local_dir: Path
    config: Path
    slurm_output: str


@pytest.fixture(scope="module")
def study(cluster, tmp_path_factory) -> Study:
    """The smoke study on SLURM; the same study runs locally in parallel (the SLURM run mostly waits)."""
    slurm_dir, local_dir = tmp_path_factory.mktemp("on-slurm"), tmp_path_factory.mktemp("local")
    config = smoke_config(tmp_path_factory.mktemp("config") / "smoke.yaml")
    local_cmd = snakemake_cmd(local_dir, config, profile=LOCALLY)
    local = subprocess.Popen(local_cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    try:
        output = snakemake(slurm_dir, config, "--verbose")
        local_out, _ = local.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if local.poll() is None:
            local.kill()
            local.wait()
    assert local.returncode == 0, f"the local run failed:\n{local_out[-5000:]}"
    return Study(slurm_dir, local_dir, config, output)


def test_training_and_evaluation_jobs_ask_slurm_for_one_gpu(study):
    calls = sbatch_calls(study.slurm_output)
    gpu_rules = ("pretrain_2d", "finetune_3d", "evaluate_pretrain_2d", "evaluate_finetune_3d")
    training = [c for c in calls if re.search(r"--comment \S*(pretrain_2d|finetune_3d)", c)]
    assert len(training) == 4 + 8, "one submission per training run (its evaluation rides along)"
    assert all(" --gpus=1" in c for c in training), training
    others = [c for c in calls if c not in training]
    assert others and not any("--gpus" in c for c in others), others
    submitted = {rule for rule, _ in submitted_jobs(study.slurm_output)}
    assert set(gpu_rules) <= submitted
    assert not submitted & {"collect", "report", "all"}, "bookkeeping rules run locally"


def test_the_report_appears(study):
    assert (study.slurm_dir / "reports/smoke/index.html").stat().st_size > 10_000
    for table in ("metrics", "curves", "runs", "jobs"):
        assert (study.slurm_dir / f"{R}/tables/{table}.csv").stat().st_size > 0


def scores(path: Path) -> dict:
    """An evaluation JSON without its provenance (versions, git SHA): every number it reports."""
    data = json.loads(path.read_text())
    data.pop("provenance", None)
    return data


def test_slurm_and_local_runs_give_identical_numbers(study):
    """Same seeds, CPU kernels, one thread per job: the numbers must be equal (tolerance: none)."""
    files = sorted(p.relative_to(study.local_dir) for p in (study.local_dir / R / "evaluate").rglob("*.json"))
    assert len(files) == 8 * 4 + 4 * 1  # 3D runs x (3 3D + 1 2D test sets), 2D runs x 1
    for rel in files:
        assert scores(study.slurm_dir / rel) == scores(study.local_dir / rel), rel
    local_table = (study.local_dir / R / "tables/metrics.csv").read_text()
    assert (study.slurm_dir / R / "tables/metrics.csv").read_text() == local_table


# --- after the study: a partial rerun, and (beside it) a training job that SLURM signals ------------
#
# SIGTERM is what SLURM sends at a time limit or on preemption: the training loop checkpoints and exits
# non-zero, `retries` resubmits the job with attempt x runtime/memory, and the job resumes.

FORCED = f"{R}/pretrain_2d/hg2_tiny/wild_mpii/seed1/model.pt"
LONG_RUN = f"{R}/pretrain_2d/hg1_tiny/wild_mpii/seed0"


@dataclass
class AfterStudy:
    plan: set[tuple[str, str]]
    rerun_output: str
    sigterm_output: str
    sigterm_log: str


def long_pretraining_config(path: Path) -> Path:
    """One pre-training run, long enough (seconds) to be signalled while it trains."""
    data = yaml.safe_load((REPO / "config/smoke.yaml").read_text())
    data.update(models=["hg1_tiny"], seeds=[0])
    data["pretrain_2d"] = {"steps": 200, "loop": {"batch_size": 8, "eval_every": 100, "checkpoint_every": 100,
                                                  "eval_samples": 32, "log_every": 5}}
    path.write_text(yaml.safe_dump(data))
    return path


def wait_for(predicate, what: str, process: subprocess.Popen, timeout_s: float = RUN_TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what} (snakemake exit status {process.poll()})")


def running_slurm_job(workdir: Path) -> str | None:
    """The id of a running SLURM job whose working directory is ``workdir``."""
    rows = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i %Z"], capture_output=True, text=True).stdout
    return next((job for job, cwd in (r.split(" ", 1) for r in rows.splitlines()) if Path(cwd) == workdir), None)


def started(workdir: Path, config: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(snakemake_cmd(workdir, config, "--verbose", *args), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=ENV)


def finished(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=RUN_TIMEOUT_S)
    assert process.returncode == 0, f"{shlex.join(process.args)} failed:\n{output[-5000:]}"
    return output


def sigterm_while_training(workdir: Path) -> tuple[str, str]:
    """Start the long run on SLURM, TERM its job once it trains; (snakemake output, the job's log)."""
    log = workdir / f"logs/smoke/{LONG_RUN.removeprefix(R + '/')}.log"
    proc = started(workdir, long_pretraining_config(workdir / "long.yaml"), f"{LONG_RUN}/model.pt")
    try:
        wait_for(lambda: log.exists() and "step 5/200" in log.read_text(), "the first training steps", proc)
        job = wait_for(lambda: running_slurm_job(workdir), "its running SLURM job", proc)
        subprocess.run(["scancel", "--signal=TERM", job], check=True)
        return finished(proc), log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def after_study(study, tmp_path_factory) -> AfterStudy:
    plan = planned_jobs(snakemake(study.slurm_dir, study.config, "-n", "--forcerun", FORCED))
    sigterm_dir = tmp_path_factory.mktemp("sigterm")
    data = f"{R}/data/wild_mpii"
    shutil.copytree(study.slurm_dir / data, sigterm_dir / data)  # its inputs, as the study made them
    rerun = started(study.slurm_dir, study.config, "--forcerun", FORCED)
    try:
        sigterm_output, sigterm_log = sigterm_while_training(sigterm_dir)
        rerun_output = finished(rerun)
    finally:
        if rerun.poll() is None:
            rerun.kill()
            rerun.wait()
    return AfterStudy(plan, rerun_output, sigterm_output, sigterm_log)


def test_forcerun_of_one_pretraining_resubmits_exactly_it_and_its_descendants(after_study):
    finetune_run = "finetune_3d/pretrained_2d/hg2_tiny/wild_mpii/lab/seed1"
    assert {job for job in after_study.plan if job[0] != "all"} == {
        ("pretrain_2d", FORCED),
        ("evaluate_pretrain_2d", f"{R}/evaluate/pretrain_2d/hg2_tiny/wild_mpii/seed1/wild_mpii_val.json"),
        ("finetune_3d", f"{R}/{finetune_run}/model.pt"),
        ("evaluate_finetune_3d", f"{R}/evaluate/{finetune_run}/lab_test.json"),
        ("collect", f"{R}/tables/metrics.csv"),
        ("report", "reports/smoke/index.html"),
    }
    pretrain = "model=hg2_tiny,dataset2d=wild_mpii,seed=1"
    finetune = "arm=pretrained_2d,model=hg2_tiny,dataset2d=wild_mpii,dataset3d=lab,seed=1"
    assert submitted_jobs(after_study.rerun_output) == {
        ("pretrain_2d", pretrain), ("evaluate_pretrain_2d", pretrain),
        ("finetune_3d", finetune), ("evaluate_finetune_3d", finetune)}
    assert len(sbatch_calls(after_study.rerun_output)) == 2  # one allocation per training run


def test_sigterm_checkpoints_and_the_resubmitted_job_resumes_with_more_time(after_study):
    assert re.search(r"resuming from checkpoint \S+ at step [1-9]", after_study.sigterm_log), after_study.sigterm_log
    first, retry = sbatch_calls(after_study.sigterm_output)
    assert " -t 10 " in first and " --mem 1000 " in first, first
    assert " -t 20 " in retry and " --mem 2000 " in retry, "a resubmitted job asks for attempt x runtime/memory"
