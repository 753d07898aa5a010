"""The Python pieces of ``scripts/gpu-check.sh``: the GPU path checked end to end, through the CLIs.

Each subcommand is one section of the script and writes one JSON file into the work folder; the
script runs them in turn (each guarded, so one failure keeps the others' results) and ``summary``
gathers them into ``summary.json`` and ``summary.md``. Run as
``python -m pose_study.benchmarks.gpu_check SECTION --work DIR --profile gpu|cpu``.

* ``env``: device name, driver, torch / CUDA / cuDNN versions, GPU count.
* ``data``: the synthetic splits, made with ``python -m pose_study synthesize`` (in parallel).
* ``correctness``: ``pretrain-2d`` and ``finetune-3d`` run by their CLIs with ``--spec`` JSON, in
  fp32 (NCHW, no autocast), in bf16 autocast + channels_last, the same with ``torch.compile``, a
  repeat of the fp32 run (the device's run-to-run noise), and fp32 and bf16 runs stopped by SIGTERM
  mid-run and resumed by the same command. Runs are compared by their ``curve.csv`` (``TOLERANCES``).
* ``bench``: ``python -m pose_study bench`` for each model × batch × mode of the profile.
* ``ddp``: ``torchrun --nproc_per_node 2 -m pose_study pretrain-2d`` (NCCL on GPUs, gloo with
  ``--profile cpu``): it finishes, counts both ranks' samples, and rank 0 alone writes.
* ``tests``: reads the JUnit XML of ``pytest -m gpu`` and its exit status (5 = nothing collected).
* ``summary``: everything above, plus the section timings and every command run.

The ``cpu`` profile runs the same code paths tiny (64 px, ``*_tiny`` presets, a few steps); on
a CPU with native bf16 (AVX512-BF16, AMX) its "bf16" runs use bf16 autocast as on CUDA; on other
CPUs autocast is off, so they differ from fp32 by channels_last alone.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import dataclasses
import json
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from pose_study._io import write_json, write_text


@dataclasses.dataclass(frozen=True)
class Profile:
    """Sizes of one check (``PROFILES``).

    Attributes:
        device: ``cuda`` or ``cpu`` (the stages' ``loop.device``).
        crop_size: Crop side of every synthesized split, px.
        train_samples, val_samples: Size of each training / validation split.
        model: Preset of the correctness runs.
        batch_size: Batch of the correctness runs.
        pretrain_steps: ``pretrain-2d`` steps.
        fusion_steps, geometric_steps: ``finetune-3d`` steps (arm ``fusion_scratch``: both phases).
        eval_every, eval_samples, log_every: Loop settings of the correctness runs.
        parallel: Correctness runs at once (they share the device; timings are not compared).
        run_timeout: Seconds one stage process may take.
        bench_models, bench_batches: The throughput grid (every mode of ``BENCH_MODES`` for each).
        bench_steps, bench_warmup, bench_data_steps: ``bench`` timing options.
        bench_timeout, bench_compile_timeout: Seconds one ``bench`` process may take.
        ddp_model, ddp_steps: The 2-rank ``torchrun`` run.
        compile: Whether the ``torch.compile`` runs happen (inductor's CPU compile of even a tiny
            hourglass takes about 2 minutes of CPU, past the CI budget, so the CPU profile skips them).
    """

    device: str
    crop_size: int
    train_samples: int
    val_samples: int
    model: str
    batch_size: int
    pretrain_steps: int
    fusion_steps: int
    geometric_steps: int
    eval_every: int
    eval_samples: int
    log_every: int
    parallel: int
    run_timeout: int
    bench_models: tuple[str, ...]
    bench_batches: tuple[int, ...]
    bench_steps: int
    bench_warmup: int
    bench_data_steps: int
    bench_timeout: int
    bench_compile_timeout: int
    ddp_model: str
    ddp_steps: int
    compile: bool = True


PROFILES: dict[str, Profile] = {
    # One H100/H200-class GPU, 16 cores, ~10 minutes in all (issue 22).
    "gpu": Profile(device="cuda", crop_size=256, train_samples=512, val_samples=64, model="hg1",
                   batch_size=32,
                   pretrain_steps=300, fusion_steps=150, geometric_steps=50, eval_every=25, eval_samples=64,
                   log_every=10, parallel=12, run_timeout=240, bench_models=("resnet50", "hg2"),
                   bench_batches=(64, 128), bench_steps=20, bench_warmup=5,
                   bench_data_steps=30, bench_timeout=90, bench_compile_timeout=180, ddp_model="hg1",
                   ddp_steps=40),
    # The same code paths on the CPU, small enough for CI (about 2 minutes of 2 shared cores).
    "cpu": Profile(device="cpu", crop_size=64, train_samples=64, val_samples=16, model="hg1_tiny",
                   batch_size=4,
                   pretrain_steps=24, fusion_steps=12, geometric_steps=6, eval_every=6, eval_samples=8,
                   log_every=2, parallel=2, run_timeout=240, bench_models=("hg1_tiny",),
                   bench_batches=(8,), bench_steps=2, bench_warmup=1, bench_data_steps=2,
                   bench_timeout=120, bench_compile_timeout=240, ddp_model="hg1_tiny", ddp_steps=4,
                   compile=False),
}

# The bench modes: eager = NCHW, channels_last = the loop's default, compile = channels_last + torch.compile.
BENCH_MODES: dict[str, tuple[str, ...]] = {"eager": ("--no-channels-last",), "channels_last": (),
                                           "compile": ("--compile",)}

# Loop settings of each correctness run (merged into the stage's ``loop``); the second field says
# whether the run is stopped by SIGTERM mid-run and resumed by rerunning the same command.
RUNS: dict[str, tuple[dict[str, bool], bool]] = {
    "fp32": ({"amp": False, "channels_last": False, "compile": False}, False),
    "fp32_repeat": ({"amp": False, "channels_last": False, "compile": False}, False),
    "fp32_resume": ({"amp": False, "channels_last": False, "compile": False}, True),
    "bf16": ({"amp": True, "channels_last": True, "compile": False}, False),
    "bf16_resume": ({"amp": True, "channels_last": True, "compile": False}, True),
    "bf16_compile": ({"amp": True, "channels_last": True, "compile": True}, False),
}

# Curve agreement (curve.csv rows at the same steps, same seed, hence the same batches):
# loss_rel_mean = mean over rows of |loss_a - loss_b| / |loss_b|; final_metric_rel = relative
# difference of the last validation value (2D px error / MPJPE mm). bf16 rounds activations to
# 8 bits of mantissa, and a few hundred Adam steps amplify that into a different trajectory on the
# same batches, so agreement is statistical, not per step: both bounds are loose enough for that
# drift and tight enough to catch a broken path (a wrong layout, a lost loss term, a no-op step
# all move the loss by far more).
TOLERANCES: dict[str, dict[str, float]] = {
    "bf16_vs_fp32": {"loss_rel_mean": 0.10, "final_metric_rel": 0.20},
    "compile_vs_eager": {"loss_rel_mean": 0.10, "final_metric_rel": 0.20},
    "bf16_resume": {"loss_rel_mean": 0.10, "final_metric_rel": 0.20},
}
# fp32 resume: exact when an uninterrupted repeat is exact (the device ran deterministically);
# otherwise no further from the uninterrupted run than FP32_RESUME_MARGIN × the repeat is.
FP32_RESUME_MARGIN = 2.0
RESUME_REASONS = {
    "fp32": "the checkpoint holds model, optimiser, generator and RNG states, so a resumed run draws the "
            "same batches and makes the same updates: bitwise equal wherever the device is deterministic "
            "(the uninterrupted repeat shows whether it is)",
    "bf16": "the same state is restored, but on CUDA bf16 autocast kernels (cuBLAS/cuDNN algorithm choice, "
            "split reductions) are not bitwise run-to-run deterministic, so the resumed run drifts as an "
            "uninterrupted repeat would; it must stay within the bf16 tolerance",
}
_NO_COMPILE = "not in this profile (inductor's CPU compile is too slow for CI; the GPU profile runs it)"
STEP_LINE = re.compile(r"step (\d+)/\d+ \[")


# --- small helpers -------------------------------------------------------------------------------


def _python() -> list[str]:
    return [sys.executable]


def _record(work: Path, section: str, argv: list[str]) -> None:
    """Append the exact command to ``work/commands.txt`` (what the summary lists)."""
    with open(work / "commands.txt", "a", encoding="utf-8") as f:
        f.write(f"[{section}] {shlex.join(argv)}\n")


def _run(work: Path, section: str, argv: list[str], log: Path, timeout: float,
         env: dict[str, str] | None = None) -> tuple[int, float]:
    """Run ``argv`` with output to ``log``; returns (exit status, seconds); 124 on timeout."""
    _record(work, section, argv)
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "ab") as f:
        try:
            rc = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, timeout=timeout, env=env).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    return rc, time.perf_counter() - t0


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --- env -----------------------------------------------------------------------------------------


def env(args: argparse.Namespace) -> dict:
    """Device, driver and library versions."""
    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                            "cuda_available": torch.cuda.is_available(),
                            "gpu_count": torch.cuda.device_count(), "cpu_count": os.cpu_count(),
                            "host": platform.node(), "platform": platform.platform()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(device=torch.cuda.get_device_name(0),
                    capability=".".join(map(str, torch.cuda.get_device_capability(0))),
                    memory_gib=round(props.total_memory / 2**30, 1),
                    multiprocessors=props.multi_processor_count,
                    tf32_conv=torch.backends.cudnn.allow_tf32,
                    tf32_matmul=torch.backends.cuda.matmul.allow_tf32)
        info["driver"] = _nvidia_smi("driver_version")
    else:
        info.update(device=f"cpu ({platform.machine()})", driver=None)
    return info


def _nvidia_smi(field: str) -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.splitlines()[0].strip() if out.returncode == 0 and out.stdout.strip() else None


# --- data ----------------------------------------------------------------------------------------


def _splits(p: Profile) -> dict[str, tuple[str, str, int, str]]:
    """name -> (world, split, samples, encoding) of every split read (``bench`` reads wild_train)."""
    return {"wild_train": ("wild", "train", p.train_samples, "raw"),
            "wild_val": ("wild", "val", p.val_samples, "raw"),
            "lab_train": ("lab", "train", p.train_samples, "raw"),
            "lab_val": ("lab", "val", p.val_samples, "raw")}


def data(args: argparse.Namespace) -> dict:
    """Synthesize the splits with the ``synthesize`` CLI, all at once (one process each)."""
    p, work = PROFILES[args.profile], args.work
    jobs = {}
    for name, (world, split, n, encoding) in _splits(p).items():
        argv = [*_python(), "-m", "pose_study", "synthesize", "--world", world, "--split", split,
                "--num-samples", str(n), "--crop-size", str(p.crop_size), "--image-encoding", encoding,
                "--seed", "7",
                "--out", str(work / "data" / f"{name}.h5")]
        jobs[name] = argv
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        futures = {name: pool.submit(_run, work, "data", argv, work / "logs" / f"synthesize_{name}.log", 600)
                   for name, argv in jobs.items()}
        results = {name: f.result() for name, f in futures.items()}
    out = {name: {"rc": rc, "seconds": round(s, 1)} for name, (rc, s) in results.items()}
    return {"ok": all(r["rc"] == 0 for r in out.values()), "splits": out}


# --- correctness ---------------------------------------------------------------------------------


def _loop(p: Profile, settings: dict[str, bool]) -> dict:
    return {"batch_size": p.batch_size, "device": p.device, "seed": 0, "eval_every": p.eval_every,
            "eval_samples": p.eval_samples, "log_every": p.log_every, "checkpoint_every": 10**6, **settings}


def stage_argv(stage: str, p: Profile, settings: dict[str, bool], work: Path, run_dir: Path) -> list[str]:
    """The CLI call of one correctness run of ``stage`` (``pretrain-2d`` or ``finetune-3d``)."""
    d = work / "data"
    if stage == "pretrain-2d":
        spec = {"model": p.model, "steps": p.pretrain_steps, "loop": _loop(p, settings)}
        inputs = ["--train", str(d / "wild_train.h5"), "--val", str(d / "wild_val.h5")]
    else:
        spec = {"model": p.model, "arm": "fusion_scratch", "steps": p.fusion_steps + p.geometric_steps,
                "geometric_steps": p.geometric_steps, "loop": _loop(p, settings)}
        inputs = ["--train-3d", str(d / "lab_train.h5"), "--val-3d", str(d / "lab_val.h5"),
                  "--train-2d", str(d / "wild_train.h5")]
    return [*_python(), "-m", "pose_study", stage, "--spec", json.dumps(spec, separators=(",", ":")), *inputs,
            "--model-out", str(run_dir / "model.pt"), "--metrics-out", str(run_dir / "metrics.json"),
            "--curve-out", str(run_dir / "curve.csv"), "--checkpoint-dir", str(run_dir / "checkpoint")]


def _run_env(p: Profile) -> dict[str, str]:
    """The runs share the machine: each gets its share of the cores (``OMP_NUM_THREADS``)."""
    return {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // p.parallel))}


def _interrupted_run(work: Path, argv: list[str], log: Path, kill_at: int, timeout: float,
                     env: dict[str, str]) -> dict:
    """Start ``argv``, SIGTERM it once its log shows step ≥ ``kill_at``, then rerun it to resume."""
    _record(work, "correctness", argv)
    t0 = time.perf_counter()
    with open(log, "ab") as f:
        proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=env)
        sent_at = None
        while proc.poll() is None and time.perf_counter() - t0 < timeout:
            steps = [int(s) for s in STEP_LINE.findall(log.read_text(errors="replace"))]
            if sent_at is None and steps and max(steps) >= kill_at:
                proc.send_signal(signal.SIGTERM)
                sent_at = max(steps)
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
        first_rc = proc.wait()
    text = log.read_text(errors="replace")
    stopped = re.search(r"SIGTERM at step (\d+)", text)
    rc, _ = _run(work, "correctness (resume: the same command)", argv, log, timeout, env)
    resumed = re.search(r"resuming from checkpoint .* at step (\d+)", log.read_text(errors="replace"))
    return {"rc": rc, "first_rc": first_rc, "sigterm_sent_after_step": sent_at,
            "stopped_at_step": int(stopped.group(1)) if stopped else None,
            "resumed_at_step": int(resumed.group(1)) if resumed else None,
            "interrupted": stopped is not None and first_rc != 0, "resumed": resumed is not None,
            "seconds": round(time.perf_counter() - t0, 1)}


def runs_for(p: Profile) -> list[str]:
    """The ``RUNS`` this profile makes (no compiled run without ``p.compile``)."""
    return [name for name, (settings, _) in RUNS.items() if p.compile or not settings["compile"]]


def _one_run(stage: str, name: str, p: Profile, work: Path) -> dict:
    settings, interrupt = RUNS[name]
    run_dir = work / "correctness" / stage / name
    run_dir.mkdir(parents=True, exist_ok=True)
    argv = stage_argv(stage, p, settings, work, run_dir)
    log = work / "logs" / f"{stage}_{name}.log"
    if interrupt:
        total = p.pretrain_steps if stage == "pretrain-2d" else p.fusion_steps + p.geometric_steps
        result = _interrupted_run(work, argv, log, total // 2, p.run_timeout, _run_env(p))
    else:
        rc, seconds = _run(work, "correctness", argv, log, p.run_timeout, _run_env(p))
        result = {"rc": rc, "seconds": round(seconds, 1)}
    try:
        result["curve"] = read_curve(run_dir / "curve.csv")
    except (OSError, ValueError, KeyError) as err:  # a bad curve fails this run's checks, not the section
        result.update(curve=[], curve_error=f"{type(err).__name__}: {err}")
    if result["rc"] != 0:
        result["log_tail"] = _tail(log)
    return result


def read_curve(path: Path) -> list[dict[str, float]]:
    """(step, loss, value) of each curve.csv row; [] when the file is missing."""
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [{"step": int(r["step"]), "loss": float(r["loss"]), "value": float(r["val_value"])}
                for r in csv.DictReader(f)]


def compare_curves(a: list[dict], b: list[dict]) -> dict:
    """How far curve ``a`` is from curve ``b`` (the reference) at the same steps."""
    if not a or not b or [r["step"] for r in a] != [r["step"] for r in b]:
        return {"comparable": False, "steps_a": [r["step"] for r in a], "steps_b": [r["step"] for r in b]}
    rel = [abs(x["loss"] - y["loss"]) / max(abs(y["loss"]), 1e-12) for x, y in zip(a, b)]
    fa, fb = a[-1]["value"], b[-1]["value"]
    return {"comparable": True, "rows": len(a), "exact": a == b, "loss_rel_mean": sum(rel) / len(rel),
            "loss_rel_max": max(rel), "final_metric": fa, "final_metric_ref": fb,
            "final_metric_rel": abs(fa - fb) / max(abs(fb), 1e-12)}


def _within(c: dict, tol: dict[str, float]) -> bool:
    return c.get("comparable", False) and all(c[k] <= v for k, v in tol.items())


def judge(runs: dict[str, dict]) -> dict[str, dict]:
    """The checks of one stage from its runs (``RUNS``): each {passed, tolerance, measured, ...}."""
    curve = {name: r.get("curve", []) for name, r in runs.items()}
    checks = {}
    pairs = {"bf16_vs_fp32": ("bf16", "fp32"), "compile_vs_eager": ("bf16_compile", "bf16")}
    for check, (a, b) in pairs.items():
        if a not in curve:
            checks[check] = {"passed": True, "skipped": _NO_COMPILE, "measured": {"comparable": False}}
            continue
        c = compare_curves(curve[a], curve[b])
        checks[check] = {"passed": _within(c, TOLERANCES[check]), "tolerance": TOLERANCES[check],
                         "measured": c}
    repeat = compare_curves(curve["fp32_repeat"], curve["fp32"])
    fp32 = compare_curves(curve["fp32_resume"], curve["fp32"])
    deterministic = repeat.get("exact", False)
    if fp32.get("exact"):
        ok, rule = True, "exact"
    elif deterministic or not fp32.get("comparable") or not repeat.get("comparable"):
        ok, rule = False, "exact (the uninterrupted repeat was exact)"
    else:
        ok = fp32["loss_rel_mean"] <= FP32_RESUME_MARGIN * repeat["loss_rel_mean"]
        rule = (f"loss_rel_mean <= {FP32_RESUME_MARGIN} x the uninterrupted repeat's "
                f"({repeat['loss_rel_mean']:.3g})")
    interrupted = {n: runs[n].get("interrupted") and runs[n].get("resumed")
                   for n in ("fp32_resume", "bf16_resume")}
    checks["fp32_resume"] = {"passed": bool(ok and interrupted["fp32_resume"]), "rule": rule,
                             "reason": RESUME_REASONS["fp32"], "measured": fp32, "repeat": repeat,
                             "device_deterministic": deterministic,
                             "stopped_at_step": runs["fp32_resume"].get("stopped_at_step")}
    bf16 = compare_curves(curve["bf16_resume"], curve["bf16"])
    checks["bf16_resume"] = {"passed": bool((bf16.get("exact") or _within(bf16, TOLERANCES["bf16_resume"]))
                                            and interrupted["bf16_resume"]),
                             "tolerance": TOLERANCES["bf16_resume"], "reason": RESUME_REASONS["bf16"],
                             "measured": bf16, "stopped_at_step": runs["bf16_resume"].get("stopped_at_step")}
    return checks


def correctness(args: argparse.Namespace) -> dict:
    """Every run of ``RUNS`` for both training stages (``parallel`` at once), then the checks."""
    p, work = PROFILES[args.profile], args.work
    stages = ("pretrain-2d", "finetune-3d")
    with concurrent.futures.ThreadPoolExecutor(p.parallel) as pool:
        futures = {(s, n): pool.submit(_one_run, s, n, p, work) for s in stages for n in runs_for(p)}
        runs = {key: f.result() for key, f in futures.items()}
    result: dict[str, Any] = {"settings": {k: getattr(p, k) for k in ("model", "batch_size", "crop_size",
                                                                        "pretrain_steps", "fusion_steps",
                                                                        "geometric_steps", "eval_every")},
                              "tolerances": TOLERANCES, "stages": {}}
    for stage in stages:
        stage_runs = {n: runs[(stage, n)] for n in runs_for(p)}
        checks = judge(stage_runs)
        result["stages"][stage] = {"runs": stage_runs, "checks": checks}
    result["ok"] = all(c["passed"] for s in result["stages"].values() for c in s["checks"].values()) and all(
        r["rc"] == 0 for r in runs.values())
    return result


# --- bench ---------------------------------------------------------------------------------------


def bench(args: argparse.Namespace) -> dict:
    """``python -m pose_study bench`` for each model × batch × mode, one at a time (they are timings)."""
    p, work = PROFILES[args.profile], args.work
    rows, data_path = [], work / "data" / "wild_train.h5"
    for model in p.bench_models:
        for batch in p.bench_batches:
            for mode, flags in BENCH_MODES.items():
                if mode == "compile" and not p.compile:
                    rows.append({"model": model, "batch_size": batch, "mode": mode, "rc": 0,
                                 "skipped": _NO_COMPILE})
                    continue
                json_path = work / "bench" / f"{model}_b{batch}_{mode}.json"
                argv = [*_python(), "-m", "pose_study", "bench", "--model", model, "--batch-size", str(batch),
                        "--device", p.device, "--data", str(data_path), "--steps", str(p.bench_steps),
                        "--warmup", str(p.bench_warmup), "--data-steps", str(p.bench_data_steps),
                        "--no-baseline", *flags, "--json", str(json_path)]
                timeout = p.bench_compile_timeout if mode == "compile" else p.bench_timeout
                log = work / "logs" / f"bench_{model}_b{batch}_{mode}.log"
                rc, seconds = _run(work, "bench", argv, log, timeout)
                row = {"model": model, "batch_size": batch, "mode": mode, "rc": rc,
                       "seconds": round(seconds, 1)}
                if rc == 0 and json_path.is_file():
                    row.update(bench_row(json.loads(json_path.read_text())))
                rows.append(row)
                # written after every row: a section cut short by the time budget keeps what it measured
                write_json(work / "bench.json", _bench_result(rows))
    return _bench_result(rows)


def _bench_result(rows: list[dict]) -> dict:
    return {"ok": all(r["rc"] == 0 for r in rows), "rows": rows, "targets": _bench_targets(rows)}


def bench_row(result: dict) -> dict:
    """The numbers of one ``bench --json`` result that the summary tabulates."""
    ours = result["ours"]
    return {"crop_size": result["config"]["crop_size"], "device": result["device"],
            "img_per_s": ours["train"]["img_per_s"], "model_img_per_s": ours["model"]["img_per_s"],
            "data_img_per_s": ours["data"]["img_per_s"], "achieved_tflops": ours["train"]["achieved_tflops"],
            "mfu": ours["train"]["mfu"], "model_mfu": ours["model"]["mfu"],
            "data_over_model": result["data_over_model"], "peak_memory_mb": ours["train"]["peak_memory_mb"],
            "forward_gflops": result["forward_flops_per_image"] / 1e9,
            "peak_bf16_tflops": result["peak_bf16_tflops"]}


def _bench_targets(rows: list[dict]) -> dict:
    """Issue 22's targets, read on the best resnet50 row (none on the CPU profile)."""
    from pose_study.benchmarks.training import TARGETS

    r50 = [r for r in rows if r["model"] == "resnet50" and "img_per_s" in r]
    if not r50:
        return {"evaluated": False, "reason": "no resnet50 row (CPU profile or failed runs)"}
    best = max(r50, key=lambda r: r["img_per_s"])
    return {"evaluated": True, "best": {k: best[k] for k in ("batch_size", "mode", "img_per_s", "mfu")},
            "img_per_s_target": TARGETS["gpu_resnet50_256_img_per_s"],
            "img_per_s_met": best["img_per_s"] >= TARGETS["gpu_resnet50_256_img_per_s"],
            "data_over_model_target": TARGETS["data_over_model"],
            "data_over_model_met": {f"{r['mode']}_b{r['batch_size']}":
                                    r["data_over_model"] >= TARGETS["data_over_model"] for r in r50}}


# --- ddp -----------------------------------------------------------------------------------------


def ddp(args: argparse.Namespace) -> dict:
    """A 2-rank ``torchrun`` pre-training step through the CLI (NCCL on CUDA, gloo on the CPU)."""
    import torch

    p, work = PROFILES[args.profile], args.work
    if p.device == "cuda" and torch.cuda.device_count() < 2:
        return {"ok": True, "skipped": f"{torch.cuda.device_count()} GPU(s): the 2-rank NCCL step needs 2"}
    run_dir = work / "ddp"
    spec = {"model": p.ddp_model, "steps": p.ddp_steps,
            "loop": {"batch_size": p.batch_size, "device": p.device, "eval_every": p.ddp_steps,
                     "eval_samples": p.eval_samples, "log_every": 2, "checkpoint_every": 2}}
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    argv = [torchrun if Path(torchrun).exists() else "torchrun", "--standalone", "--nproc_per_node", "2",
            "-m", "pose_study", "pretrain-2d", "--spec", json.dumps(spec, separators=(",", ":")),
            "--train", str(work / "data" / "wild_train.h5"), "--val", str(work / "data" / "wild_val.h5"),
            "--model-out", str(run_dir / "model.pt"), "--metrics-out", str(run_dir / "metrics.json"),
            "--curve-out", str(run_dir / "curve.csv"), "--checkpoint-dir", str(run_dir / "checkpoint")]
    log = work / "logs" / "ddp.log"
    rc, seconds = _run(work, "ddp", argv, log, p.run_timeout)
    result: dict[str, Any] = {"rc": rc, "seconds": round(seconds, 1),
                              "backend": "nccl" if p.device == "cuda" else "gloo"}
    metrics_path = run_dir / "metrics.json"
    if rc == 0 and metrics_path.is_file():
        compute = json.loads(metrics_path.read_text())["compute"]
        result.update(device_count=compute["device_count"], train_samples=compute["train_samples"],
                      expected_samples=p.ddp_steps * p.batch_size * 2,
                      outputs=sorted(x.name for x in run_dir.iterdir()))
        written = ["checkpoint", "curve.csv", "metrics.json", "model.pt", "spec.json"]  # rank 0's, once
        result["ok"] = (compute["device_count"] == 2 and result["outputs"] == written
                        and compute["train_samples"] == result["expected_samples"])
    else:
        result.update(ok=False, log_tail=_tail(log))
    return result


# --- tests ---------------------------------------------------------------------------------------


def tests(args: argparse.Namespace) -> dict:
    """The outcome of ``pytest -m gpu`` from its exit status and JUnit XML.

    Exit status 5 (no tests collected) is not a pass: the ``gpu`` marker selects tests that exist,
    so collecting none means the selection or the collection broke.
    """
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    if args.junit.is_file():
        root = ET.parse(args.junit).getroot()
        suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
        for suite in suites:
            for key in counts:
                counts[key] += int(suite.get(key, 0))
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    status = {0: "passed", 1: "failed", 5: "no_tests_collected"}.get(args.rc,
                                                                      f"error (pytest exit {args.rc})")
    result = {"pytest_exit": args.rc, "status": status, "passed": passed, **counts}
    if args.profile == "cpu":
        result["note"] = "CPU profile: every gpu test skips (needs CUDA), the expected outcome here"
    result["ok"] = args.rc == 0 and counts["tests"] > 0
    return result


# --- summary -------------------------------------------------------------------------------------


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def summary(args: argparse.Namespace) -> dict:
    """Everything the sections wrote, in one dict (also rendered to markdown by ``render``)."""
    work = args.work
    sections = []
    if (work / "sections.tsv").is_file():
        for line in (work / "sections.tsv").read_text().splitlines():
            name, rc, start, end, seconds = line.split("\t")
            sections.append({"section": name, "rc": int(rc), "start": start, "end": end,
                             "seconds": int(seconds)})
    commands = (work / "commands.txt").read_text().splitlines() if (work / "commands.txt").is_file() else []
    parts = {name: _load(work / f"{name}.json") for name in ("env", "install", "tests", "data", "correctness",
                                                              "bench", "ddp")}
    ran = {x["section"] for x in sections}  # a section left out with --sections is neither pass nor fail
    ok = bool(sections) and all(x["rc"] == 0 for x in sections) and all(
        parts.get(name) is not None and parts[name].get("ok", True) for name in ran)
    return {"profile": args.profile, "ok": ok, "sections": sections, **parts, "commands": commands}


def render(s: dict) -> str:
    """``summary.md``: the summary as markdown tables."""
    env_ = s.get("env") or {}
    verdict = "all checks passed" if s["ok"] else "SOME CHECKS FAILED"
    install = {"mode": None, "python": None, "cli_imports": None, "note": "", **(s.get("install") or {})}
    lines = [f"# GPU check ({s['profile']} profile): {verdict}", "",
             f"- device: {env_.get('device')}; driver: {env_.get('driver')}; GPUs: {env_.get('gpu_count')}",
             f"- torch {env_.get('torch')}, CUDA {env_.get('cuda')}, cuDNN {env_.get('cudnn')}, "
             f"Python {env_.get('python')}; TF32 in fp32 convolutions / matmuls: {env_.get('tf32_conv')} / "
             f"{env_.get('tf32_matmul')} (the fp32 runs' arithmetic on CUDA)",
             "- install: {mode} ({python}); stage CLIs import: {cli_imports}. {note}".format(**install), "",
             "## Sections", "", "| section | exit | start | seconds |", "|---|---|---|---|"]
    lines += [f"| {x['section']} | {x['rc']} | {x['start']} | {x['seconds']} |" for x in s["sections"]]
    t = s.get("tests") or {}
    lines += ["", "## gpu-marked tests", "",
              f"pytest exit {t.get('pytest_exit')} ({t.get('status')}): {t.get('passed')} passed, "
              f"{t.get('skipped')} skipped, {t.get('failures')} failed, {t.get('errors')} errors. "
              f"{t.get('note', '')}"]
    c = s.get("correctness") or {}
    lines += ["", "## Correctness (curve.csv of each run against its reference)", "",
              f"Settings: {c.get('settings')}", "",
              "| stage | check | passed | loss_rel_mean | loss_rel_max | final metric (ref) | exact | rule |",
              "|---|---|---|---|---|---|---|---|"]
    for stage, st in (c.get("stages") or {}).items():
        for name, chk in st["checks"].items():
            m = chk["measured"]
            rule = chk.get("rule") or chk.get("tolerance")
            if m.get("comparable"):
                final = f"{m['final_metric']:.4g} ({m['final_metric_ref']:.4g})"
                lines.append(f"| {stage} | {name} | {chk['passed']} | {m['loss_rel_mean']:.3g} | "
                             f"{m['loss_rel_max']:.3g} | {final} | {m['exact']} | {rule} |")
            else:
                lines.append(f"| {stage} | {name} | {chk['passed']} | - | - | - | - | "
                             f"{chk.get('skipped', 'not comparable')} |")
    for kind, reason in RESUME_REASONS.items():
        lines.append(f"\n{kind} resume: {reason}.")
    b = s.get("bench") or {}
    lines += ["", "## Throughput (`python -m pose_study bench`)", "",
              "| model | batch | mode | img/s | TFLOP/s | MFU | model-only img/s | data img/s | data/model | "
              "peak MiB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in b.get("rows", []):
        head = f"| {r['model']} | {r['batch_size']} | {r['mode']} |"
        if "skipped" in r or "img_per_s" not in r:
            why = r.get("skipped") or f"failed (exit {r['rc']})"
            lines.append(f"{head} {why} |||||||")
            continue
        mfu = "n/a" if r["mfu"] is None else f"{r['mfu']:.1%}"
        lines.append(f"{head} {r['img_per_s']:.1f} | {r['achieved_tflops']:.3g} | {mfu} | "
                     f"{r['model_img_per_s']:.1f} | {r['data_img_per_s']:.1f} | {r['data_over_model']:.2f} | "
                     f"{r['peak_memory_mb']:.0f} |")
    lines += ["", f"Targets: {b.get('targets')}", "", "## DDP", "", f"{s.get('ddp')}", "",
              "## Commands", "", "```"]
    lines += s["commands"] + ["```", ""]
    return "\n".join(lines)


# --- command line --------------------------------------------------------------------------------

SECTIONS = {"env": env, "data": data, "correctness": correctness, "bench": bench, "ddp": ddp, "tests": tests}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pose_study.benchmarks.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("section", choices=[*SECTIONS, "summary"])
    parser.add_argument("--work", type=Path, required=True, help="the check's work folder")
    parser.add_argument("--profile", choices=sorted(PROFILES), required=True)
    parser.add_argument("--junit", type=Path, help="tests: pytest's --junitxml file")
    parser.add_argument("--rc", type=int, help="tests: pytest's exit status")
    parser.add_argument("--out", type=Path, help="summary: folder for summary.json and summary.md")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.section == "summary":
        result = summary(args)
        write_json(args.out / "summary.json", result)
        write_text(args.out / "summary.md", render(result))
        print(f"summary: {'ok' if result['ok'] else 'FAILED'} -> {args.out / 'summary.md'}")
        return 0 if result["ok"] else 1
    result = SECTIONS[args.section](args)
    write_json(args.work / f"{args.section}.json", result)
    print(json.dumps({k: v for k, v in result.items() if k in ("ok", "skipped", "status", "targets")}))
    return 0 if result.get("ok", True) else 1


if __name__ == "__main__":
    sys.exit(main())
