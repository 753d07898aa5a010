"""The training loop (detector and lifter tasks) and the detector training stages, on the tiny synthetic world (CPU)."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pose_study import lifters
from pose_study._spec import spec_from_dict
from pose_study.stages import _training, finetune_3d, pretrain_2d, train_lifter
from pose_study.stages.evaluate import EvaluateSpec
from pose_study.stages.evaluate import run as evaluate
from pose_study.train import loop, objective
from pose_study.records import CURVE_COLUMNS
from pose_study.train.checkpoint import CHECKPOINT_NAME, load_checkpoint
from pose_study.train.detection import DetectorTask
from pose_study.train.lifting import PoseTask
from pose_study.train.loop import LoopSpec, LRSchedule

LOOP = {"batch_size": 16, "eval_every": 25, "log_every": 25, "checkpoint_every": 25, "eval_samples": 96}
COMPUTE_KEYS = {"wall_seconds", "train_samples", "train_flops", "device_hours", "steps", "device",
                "device_count", "img_per_s", "peak_memory_mb"}


def outputs(root: Path) -> _training.TrainOutputs:
    return _training.TrainOutputs(root / "model.pt", root / "metrics.json", root / "curve.csv", root / "ckpt")


def pretrain_spec(steps: int, **loop) -> pretrain_2d.Pretrain2DSpec:
    from pose_study._spec import spec_from_dict

    return spec_from_dict(pretrain_2d.Pretrain2DSpec,
                          {"model": "hg1_tiny", "steps": steps, "lr": 2e-3, "loop": {**LOOP, **loop}})


@pytest.fixture(scope="module")
def pretrained(tiny_world, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("pre")
    out = outputs(root)
    result = pretrain_2d.run(pretrain_spec(150), tiny_world["wild_train"], tiny_world["wild_val"], out)
    return {"out": out, "metrics": result}


@pytest.fixture(scope="module")
def finetuned(tiny_world, pretrained, tmp_path_factory) -> dict:
    from pose_study._spec import spec_from_dict

    runs = {}
    for arm in ("pretrained_2d", "fusion_scratch"):
        spec = spec_from_dict(finetune_3d.Finetune3DSpec, {
            "model": "hg1_tiny", "arm": arm, "steps": 175, "geometric_steps": 25, "lr": 2e-3,
            "loop": LOOP})
        out = outputs(tmp_path_factory.mktemp(arm))
        init = (pretrained["out"].model, [pretrained["out"].metrics]) if arm == "pretrained_2d" else (None, [])
        finetune_3d.run(spec, tiny_world["lab_train"], tiny_world["lab_val"], tiny_world["wild_train"], out, *init)
        runs[arm] = out
    return runs


def read_curve(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_pretrain_halves_the_2d_error(pretrained):
    final = pretrained["metrics"]["final"]
    assert final["metric"] == "error_2d_px"
    assert final["value"] <= 0.5 * final["initial_value"], final


@pytest.mark.parametrize("arm", ["pretrained_2d", "fusion_scratch"])
def test_finetune_writes_every_accounting_field(finetuned, arm):
    out = finetuned[arm]
    metrics = json.loads(out.metrics.read_text())
    assert metrics["arm"] == arm and metrics["final"]["metric"] == "mpjpe_mm"
    assert COMPUTE_KEYS <= set(metrics["compute"])
    assert metrics["forward_flops_per_image"] > 0 and metrics["params"] > 0
    assert metrics["compute"]["train_flops"] == 3 * metrics["forward_flops_per_image"] * metrics["compute"]["train_samples"]
    rows = read_curve(out.curve)
    assert list(rows[0]) == list(CURVE_COLUMNS)
    assert [r["phase"] for r in rows][-1] == "geometric"
    spec = json.loads(out.spec_json.read_text())
    assert spec["arm"] == arm and "git_sha" in spec["_provenance"]


def test_pretrained_arm_carries_its_pretraining_compute(finetuned, pretrained):
    own = json.loads(finetuned["pretrained_2d"].metrics.read_text())
    scratch = json.loads(finetuned["fusion_scratch"].metrics.read_text())
    pre = pretrained["metrics"]["compute"]
    assert own["compute_total"]["train_flops"] == own["compute"]["train_flops"] + pre["train_flops"]
    assert scratch["compute_total"]["train_flops"] == scratch["compute"]["train_flops"]
    first = read_curve(finetuned["pretrained_2d"].curve)[0]
    assert float(first["flops_total"]) == float(first["flops"]) + pre["train_flops"]


def test_trained_model_beats_the_mean_pose_baseline(finetuned, tiny_world, tmp_path):
    out = tmp_path / "lab_test.json"
    evaluate(EvaluateSpec(model="hg1_tiny", run="t"), finetuned["pretrained_2d"].model,
             [tiny_world["lab_test"]], [out], train_3d=tiny_world["lab_train"])
    result = json.loads(out.read_text())
    assert result["metrics"]["mpjpe"]["value"] < result["baselines"]["mean_pose"]["mpjpe"]


def test_non_finite_loss_names_step_and_terms_and_keeps_the_checkpoint(tiny_world, tmp_path, monkeypatch):
    real = objective.compute_losses
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        terms = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 30:
            terms["depth"] = terms["depth"] + float("nan")
            terms["total"] = terms["total"] + terms["depth"]
        return terms

    monkeypatch.setattr("pose_study.train.objective.compute_losses", poisoned)
    out = outputs(tmp_path)
    with pytest.raises(FloatingPointError,
                       match=r"non-finite loss at step 30: heatmap=[\d.e-]+ depth=nan bone_ratio=0;"):
        pretrain_2d.run(pretrain_spec(60), tiny_world["wild_train"], tiny_world["wild_val"], out)
    assert load_checkpoint(out.checkpoint_dir)["progress"]["step"] == 25  # the last good one
    assert not out.model.exists()


# --- interruption and resume, in real processes -------------------------------------------------


def cli(spec: pretrain_2d.Pretrain2DSpec, world: dict, root: Path) -> list[str]:
    from pose_study._spec import spec_to_dict

    return [sys.executable, "-m", "pose_study", "pretrain-2d", "--spec", json.dumps(spec_to_dict(spec)),
            "--train", str(world["wild_train"]), "--val", str(world["wild_val"]),
            "--model-out", str(root / "model.pt"), "--metrics-out", str(root / "metrics.json"),
            "--curve-out", str(root / "curve.csv"), "--checkpoint-dir", str(root / "ckpt")]


def start_and_stop_after_checkpoint(cmd: list[str], root: Path, sig: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    deadline = time.time() + 120
    while not (root / "ckpt" / "last.pt").exists():
        assert proc.poll() is None and time.time() < deadline, "run ended before its first checkpoint"
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(cmd, proc.returncode, "", err)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_interrupted_run_resumes_and_matches_the_uninterrupted_run(tiny_world, tmp_path, sig):
    spec = pretrain_spec(100, checkpoint_every=10, eval_every=50)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole = tmp_path / "whole"
    subprocess.run(cli(spec, tiny_world, whole), check=True, capture_output=True, env=env)
    cut = tmp_path / "cut"
    stopped = start_and_stop_after_checkpoint(cli(spec, tiny_world, cut), cut, sig)
    assert stopped.returncode != 0
    if sig == signal.SIGTERM:
        assert "SIGTERM at step" in stopped.stderr and "rerun the same command to resume" in stopped.stderr
    assert not (cut / "model.pt").exists()
    rerun = subprocess.run(cli(spec, tiny_world, cut), capture_output=True, text=True, env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming from checkpoint" in rerun.stderr
    a, b = (json.loads((d / "metrics.json").read_text())["final"]["value"] for d in (whole, cut))
    assert b == pytest.approx(a, rel=1e-4)  # CPU kernels are deterministic: same batches, same steps


def test_checkpoint_of_other_settings_is_not_resumed(tiny_world, tmp_path, caplog):
    out = outputs(tmp_path)
    pretrain_2d.run(pretrain_spec(25), tiny_world["wild_train"], tiny_world["wild_val"], out)
    with caplog.at_level("WARNING"):
        pretrain_2d.run(pretrain_spec(30), tiny_world["wild_train"], tiny_world["wild_val"], out)
    assert "belongs to other settings" in caplog.text
    assert json.loads(out.metrics.read_text())["compute"]["steps"] == 30


def test_checkpoints_load_with_weights_only(pretrained):
    state = torch.load(pretrained["out"].checkpoint_dir / "last.pt", weights_only=True)
    assert state["progress"]["step"] == 150
    weights = torch.load(pretrained["out"].model, weights_only=True)
    assert weights["preset"] == "hg1_tiny"


# --- the LR schedule ------------------------------------------------------------------------------


def rates(schedule: LRSchedule, steps: int) -> list[float]:
    return [schedule.rate(i, steps) for i in range(steps)]


def test_step_schedule_decays_after_each_fraction():
    # ceil(0.5·8) = 4, ceil(0.7·8) = 6: the seed's "LR ×0.1 after epoch N" on step counts
    assert rates(LRSchedule(1.0, (0.5, 0.7)), 8) == pytest.approx([1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01])


def test_warmup_ramps_linearly_then_steps():
    # 25 % of 8 steps = 2 warm-up steps at lr·1/2, lr·2/2; then the step schedule of the whole phase
    assert rates(LRSchedule(1.0, (0.75,), warmup=0.25), 8) == pytest.approx([0.5, 1, 1, 1, 1, 1, 0.1, 0.1])


def test_linear_decay_reaches_zero_at_the_end():
    # MPT's schedule: 10 % warm-up, then linear decay to zero (lr_steps are ignored)
    expected = [2e-4 * x for x in (0.5, 1, 1, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125)]
    assert rates(LRSchedule(2e-4, (0.5,), warmup=0.2, shape="linear"), 10) == pytest.approx(expected)
    assert LRSchedule(1.0, shape="linear").rate(3, 4) == pytest.approx(0.25)


@pytest.mark.parametrize("bad, message", [({"lr_schedule": "cosine"}, "lr_schedule must be one of"),
                                          ({"warmup": 1.0}, "warmup must be a fraction"),
                                          ({"heatmap_sigma": 0.0}, "heatmap_sigma must be > 0")])
def test_bad_schedule_settings_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        LoopSpec(**bad)


def test_the_loop_sets_the_scheduled_lr_every_step(tiny_world, tmp_path, monkeypatch):
    seen = []
    real = loop.set_lr
    monkeypatch.setattr(loop, "set_lr", lambda optimizer, lr: (seen.append(lr), real(optimizer, lr)))
    settings = {"batch_size": 16, "warmup": 0.2, "lr_schedule": "linear", "eval_every": 10, "log_every": 10,
                "checkpoint_every": 10, "eval_samples": 32, "device": "cpu"}
    spec = spec_from_dict(train_lifter.TrainLifterSpec, {"lifter": "mlp_tiny", "steps": 10, "lr": 1e-3,
                                                         "loop": settings})
    train_lifter.run(spec, tiny_world["lab_train"], tiny_world["lab_val"], outputs(tmp_path))
    assert seen == pytest.approx(rates(spec.loop.schedule(spec.lr, spec.lr_steps), 10))


# --- one loop, two kinds of task: SIGTERM, checkpoint, exact resume -------------------------------


def run_detector(world: dict, out: _training.TrainOutputs) -> dict:
    spec = pretrain_spec(12, checkpoint_every=1000, eval_every=4, log_every=4)
    return pretrain_2d.run(spec, world["wild_train"], world["wild_val"], out)


def run_lifter(world: dict, out: _training.TrainOutputs) -> dict:
    settings = {"batch_size": 32, "eval_every": 4, "log_every": 4, "checkpoint_every": 1000, "eval_samples": 32,
                "device": "cpu"}
    spec = spec_from_dict(train_lifter.TrainLifterSpec, {"lifter": "mlp_tiny", "steps": 12, "lr": 2e-3,
                                                         "loop": settings})
    return train_lifter.run(spec, world["lab_train"], world["lab_val"], out)


def weights(out: _training.TrainOutputs, kind: str) -> dict[str, torch.Tensor]:
    if kind == "lifter":
        return lifters.load_lifter(out.model).state_dict()
    return torch.load(out.model, weights_only=True)["state_dict"]


KINDS = {"detector": (DetectorTask, run_detector), "lifter": (PoseTask, run_lifter)}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_sigterm_saves_a_checkpoint_and_the_rerun_equals_the_uninterrupted_run(kind, tiny_world, tmp_path,
                                                                               monkeypatch):
    task, run = KINDS[kind]
    whole = outputs(tmp_path / "whole")
    expected = run(tiny_world, whole)
    parts, real_draw, calls = outputs(tmp_path / "parts"), task.draw, {"n": 0}

    def draw_then_sigterm(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_draw(*args, **kwargs)

    monkeypatch.setattr(task, "draw", draw_then_sigterm)
    with pytest.raises(loop.TrainingInterrupted, match="SIGTERM at step 5;.*rerun the same command to resume"):
        run(tiny_world, parts)
    assert load_checkpoint(parts.checkpoint_dir)["progress"]["step"] == 5 and not parts.model.exists()
    monkeypatch.setattr(task, "draw", real_draw)
    resumed = run(tiny_world, parts)

    a, b = weights(whole, kind), weights(parts, kind)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit-exact on the CPU
    assert resumed["final"] == expected["final"]
    assert [r["val_value"] for r in read_curve(parts.curve)] == [r["val_value"] for r in read_curve(whole.curve)]
    assert resumed["compute"]["train_samples"] == expected["compute"]["train_samples"]


# --- the NaN guard --------------------------------------------------------------------------------


def test_nan_guard_names_the_first_bad_step_and_its_terms(tmp_path):
    guard = loop.NanGuard(torch.device("cpu"), tmp_path)
    good = {"pose": torch.tensor(1.0), "bone": torch.tensor(2.0), "total": torch.tensor(3.0)}
    bad = {"pose": torch.tensor(float("nan")), "bone": torch.tensor(2.5), "total": torch.tensor(float("nan"))}
    assert float(guard.update(good, 0)) == 3.0
    guard.check()
    assert float(guard.update(bad, 1)) == 0.0  # a non-finite loss is left out of the running mean
    guard.update({**bad, "bone": torch.tensor(9.0)}, 2)  # later bad steps do not replace the first
    where = re.escape(str(tmp_path))
    first = "at step 2: pose=nan bone=2.5; "
    with pytest.raises(FloatingPointError, match=rf"{first}no checkpoint was written yet in {where} "):
        guard.check()
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"")  # with a checkpoint in the folder, the message says it is kept
    with pytest.raises(FloatingPointError, match=rf"{first}the last good checkpoint in {where} "):
        guard.check()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_nan_guard_update_does_not_wait_for_the_gpu(tmp_path):
    cuda = torch.device("cuda")
    guard = loop.NanGuard(cuda, tmp_path)
    terms = {"pose": torch.ones((), device=cuda), "total": torch.full((), float("nan"), device=cuda)}
    guard.update(terms, 0)
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step in range(1, 4):
            guard.update(terms, step)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    with pytest.raises(FloatingPointError, match="at step 1: pose=1;"):
        guard.check()


@pytest.mark.parametrize("native, amp, expected", [(True, True, True), (False, True, False), (True, False, False)])
def test_detector_forward_is_bf16_only_on_a_cpu_with_native_bf16(monkeypatch, native, amp, expected) -> None:
    from pose_study.train import detection
    monkeypatch.setattr(detection, "cpu_has_native_bf16", lambda: native)
    with detection._autocast(torch.device("cpu"), amp):
        assert torch.is_autocast_enabled("cpu") == expected
        if expected:
            assert torch.get_autocast_dtype("cpu") == torch.bfloat16
