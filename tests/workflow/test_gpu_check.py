"""scripts/gpu-check.sh --cpu: the GPU check's dry mode runs every section tiny, so the script cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.workflow
def test_gpu_check_dry_mode_runs_every_section_and_checks_its_tolerances(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    env.pop("OUT", None)
    argv = ["bash", str(REPO / "scripts" / "gpu-check.sh"), "--cpu", "--out", str(out),
            "--work", str(tmp_path / "work")]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)
    summary = json.loads((out / "summary.json").read_text())
    assert result.returncode == 0 and summary["ok"], result.stdout[-4000:]
    files = ["details.tar.gz", "gpu-check.log", "summary.json", "summary.md"]
    assert sorted(p.name for p in out.iterdir()) == files
    sections = ["install", "env", "tests", "data", "correctness", "bench", "ddp"]
    assert [s["section"] for s in summary["sections"]] == sections
    assert summary["env"]["torch"] and summary["install"]["mode"] == "existing"

    tests = summary["tests"]  # collected and skipped (no CUDA), not "no tests collected"
    assert tests["pytest_exit"] == 0 and tests["tests"] > 0 and tests["skipped"] == tests["tests"]

    for stage in ("pretrain-2d", "finetune-3d"):
        checks = summary["correctness"]["stages"][stage]["checks"]
        bf16 = checks["bf16_vs_fp32"]
        assert bf16["passed"] and bf16["measured"]["comparable"]
        assert 0 <= bf16["measured"]["loss_rel_mean"] <= bf16["tolerance"]["loss_rel_mean"]
        for resume in ("fp32_resume", "bf16_resume"):  # no autocast on the CPU: both resume exactly
            assert checks[resume]["passed"] and checks[resume]["measured"]["exact"]
        runs = summary["correctness"]["stages"][stage]["runs"]
        assert runs["fp32_resume"]["interrupted"] and runs["fp32_resume"]["resumed"]
        assert 0 < runs["fp32_resume"]["stopped_at_step"] < runs["fp32"]["curve"][-1]["step"]
        assert "skipped" in checks["compile_vs_eager"]

    timed = [r for r in summary["bench"]["rows"] if "img_per_s" in r]
    assert {r["mode"] for r in timed} == {"eager", "channels_last"}
    assert all(r["img_per_s"] > 0 and r["data_over_model"] > 0 for r in timed)
    ddp = summary["ddp"]
    assert ddp["ok"] and ddp["backend"] == "gloo" and ddp["device_count"] == 2
    commands = summary["commands"]
    assert any(" bench " in c for c in commands) and any("torchrun" in c for c in commands)
    assert "## Correctness" in (out / "summary.md").read_text()
