"""scripts/gpu-check.sh's Python pieces: curves compared and judged, pytest's outcome read, the summary."""

from __future__ import annotations

import argparse
import json

import pytest

from pose_study.benchmarks import gpu_check


def curve(losses, values=None):
    values = values or [10.0] * len(losses)
    return [{"step": 10 * (i + 1), "loss": loss, "value": v}
            for i, (loss, v) in enumerate(zip(losses, values))]


def test_curves_are_compared_row_by_row_against_the_reference():
    c = gpu_check.compare_curves(curve([1.1, 0.9], [12.0, 11.0]), curve([1.0, 1.0], [10.0, 10.0]))
    assert c["comparable"] and not c["exact"] and c["rows"] == 2
    assert c["loss_rel_mean"] == pytest.approx(0.1) and c["loss_rel_max"] == pytest.approx(0.1)
    assert c["final_metric"] == 11.0 and c["final_metric_rel"] == pytest.approx(0.1)


@pytest.mark.parametrize("a,b", [([], [1.0]), ([1.0], [1.0, 1.0])])
def test_missing_or_misaligned_curves_are_not_comparable(a, b):
    assert not gpu_check.compare_curves(curve(a), curve(b))["comparable"]


def runs(**curves):
    """Every run of RUNS with one curve, interrupted and resumed where RUNS says so; ``curves`` override."""
    base = curve([1.0, 0.8, 0.6, 0.5])
    out = {}
    for name, (_, interrupt) in gpu_check.RUNS.items():
        out[name] = {"rc": 0, "curve": curves.get(name, base)}
        if interrupt:
            out[name].update(interrupted=True, resumed=True, stopped_at_step=20)
    return out


def test_identical_runs_pass_every_check_and_fp32_resume_is_exact():
    checks = gpu_check.judge(runs())
    assert all(c["passed"] for c in checks.values()), checks
    assert checks["fp32_resume"]["rule"] == "exact" and checks["fp32_resume"]["device_deterministic"]


def test_bf16_beyond_tolerance_fails_and_compile_is_judged_against_bf16_eager():
    far = curve([1.3, 1.04, 0.78, 0.65])  # 30 % off fp32
    checks = gpu_check.judge(runs(bf16=far, bf16_resume=far))
    assert not checks["bf16_vs_fp32"]["passed"]
    assert not checks["compile_vs_eager"]["passed"]  # compile (== fp32 here) is 23 % off bf16 eager
    assert checks["bf16_resume"]["passed"] and checks["bf16_resume"]["measured"]["exact"]


def test_fp32_resume_must_be_exact_when_the_uninterrupted_repeat_is():
    checks = gpu_check.judge(runs(fp32_resume=curve([1.0, 0.8, 0.6, 0.5000001])))
    assert not checks["fp32_resume"]["passed"]
    assert checks["fp32_resume"]["rule"].startswith("exact (the uninterrupted repeat was exact)")


@pytest.mark.parametrize("resume_loss,passed", [(0.5015, True), (0.52, False)])
def test_on_a_nondeterministic_device_fp32_resume_is_held_to_the_repeat_noise(resume_loss, passed):
    # the repeat differs by 0.2 % on one row of four: mean 0.05 %; the margin allows twice that
    checks = gpu_check.judge(runs(fp32_repeat=curve([1.0, 0.8, 0.6, 0.501]),
                                  fp32_resume=curve([1.0, 0.8, 0.6, resume_loss])))
    assert not checks["fp32_resume"]["device_deterministic"]
    assert checks["fp32_resume"]["passed"] is passed


def test_a_run_that_was_not_interrupted_fails_its_resume_check():
    r = runs()
    r["bf16_resume"]["interrupted"] = False
    assert not gpu_check.judge(r)["bf16_resume"]["passed"]


def test_without_a_compiled_run_the_compile_check_says_skipped():
    r = runs()
    del r["bf16_compile"]
    check = gpu_check.judge(r)["compile_vs_eager"]
    assert check["passed"] and "skipped" in check


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites>
<testsuite name="pytest" errors="0" failures="{f}" skipped="{s}" tests="{t}"></testsuite></testsuites>"""


@pytest.mark.parametrize("rc,t,f,s,status,ok,passed", [
    (0, 6, 0, 6, "passed", True, 0),
    (0, 6, 0, 1, "passed", True, 5),
    (1, 6, 2, 0, "failed", False, 4),
    (5, 0, 0, 0, "no_tests_collected", False, 0),
])
def test_pytest_outcome_is_read_from_exit_status_and_junit(tmp_path, rc, t, f, s, status, ok, passed):
    junit = tmp_path / "junit.xml"
    junit.write_text(JUNIT.format(f=f, s=s, t=t))
    result = gpu_check.tests(argparse.Namespace(junit=junit, rc=rc, profile="gpu"))
    assert (result["status"], result["ok"], result["passed"]) == (status, ok, passed)


def test_stage_commands_carry_the_run_settings_in_the_spec_json(tmp_path):
    p = gpu_check.PROFILES["gpu"]
    settings = gpu_check.RUNS["bf16_compile"][0]
    argv = gpu_check.stage_argv("finetune-3d", p, settings, tmp_path, tmp_path / "run")
    spec = json.loads(argv[argv.index("--spec") + 1])
    assert spec["arm"] == "fusion_scratch" and spec["steps"] == 200 and spec["geometric_steps"] == 50
    assert spec["loop"]["device"] == "cuda" and spec["loop"]["amp"] and spec["loop"]["compile"]
    assert argv[argv.index("--curve-out") + 1] == str(tmp_path / "run" / "curve.csv")


def test_the_cpu_profile_makes_every_run_but_the_compiled_one():
    assert gpu_check.runs_for(gpu_check.PROFILES["cpu"]) == [n for n in gpu_check.RUNS if n != "bf16_compile"]
    assert gpu_check.runs_for(gpu_check.PROFILES["gpu"]) == list(gpu_check.RUNS)


def test_summary_judges_the_sections_that_ran_and_names_their_failures(tmp_path):
    (tmp_path / "sections.tsv").write_text("env\t0\t09:00:00\t09:00:05\t5\nddp\t0\t09:00:05\t09:00:09\t4\n")
    (tmp_path / "env.json").write_text(json.dumps({"device": "cpu (x86_64)", "torch": "2.13.0"}))
    args = argparse.Namespace(work=tmp_path, profile="cpu")
    assert not gpu_check.summary(args)["ok"]  # ddp ran but wrote no result
    (tmp_path / "ddp.json").write_text(json.dumps({"ok": True, "backend": "gloo"}))
    result = gpu_check.summary(args)
    assert result["ok"] and [s["seconds"] for s in result["sections"]] == [5, 4]
    (tmp_path / "ddp.json").write_text(json.dumps({"ok": False}))
    assert not gpu_check.summary(args)["ok"]
    assert "SOME CHECKS FAILED" in gpu_check.render(gpu_check.summary(args))
