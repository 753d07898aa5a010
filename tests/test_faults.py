"""Faults a user or a cluster can cause, and what pose_study does about them.

reports/reliability.md lists every fault tried and the outcome. The faults tested here are
the ones that cross modules; the others are tested beside the code they exercise:

* SIGTERM / kill -9 of one training process, resume matching the uninterrupted run:
  tests/unit/test_loop.py::test_interrupted_run_resumes_and_matches_the_uninterrupted_run
* non-finite loss names step and terms, last checkpoint intact: tests/unit/test_loop.py
* checkpoints load with weights_only=True: tests/unit/test_loop.py
* bad config (misspelled key, wrong type, unknown preset/dataset, 3D test without 3D data):
  tests/unit/test_config.py, tests/workflow/test_workflow.py::test_bad_config_fails_before_any_job
* HDF5 of another format version, wrong shape/dtype, missing field: tests/unit/test_formats.py
* missing dataset files (listed with layout and where to get them), truncated download,
  checksum mismatch: tests/unit/test_download.py
* corrupt/missing image, malformed annotation (file and field named): tests/unit/test_convert_*.py
* malicious pickle refused by the restricted unpickler: tests/unit/test_unpickle.py
* report escapes config text: tests/unit/test_report.py
* samples with no valid joint are counted, not averaged as zero: tests/unit/test_metrics.py
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from pose_study._io import atomic_path, write_json
from pose_study._spec import spec_from_dict
from pose_study.data.transforms import AugmentSpec
from pose_study.stages import _training, pretrain_2d
from pose_study.train import checkpoint
from pose_study.train.loop import LoopSpec, Phase, TrainData, train
from pose_study.data.batches import SplitTensors

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
       "OMP_NUM_THREADS": "1"}


def outputs(root: Path) -> _training.TrainOutputs:
    return _training.TrainOutputs(root / "model.pt", root / "metrics.json", root / "curve.csv", root / "ckpt")


def spec(steps: int, **loop) -> pretrain_2d.Pretrain2DSpec:
    base = {"batch_size": 8, "eval_every": 10, "checkpoint_every": 10, "log_every": 10, "eval_samples": 32}
    return spec_from_dict(pretrain_2d.Pretrain2DSpec, {"model": "hg1_tiny", "steps": steps, "loop": {**base, **loop}})


# --- resource faults --------------------------------------------------------------------------


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(tiny_world, tmp_path, monkeypatch):
    real_save = torch.save
    calls = {"n": 0}

    def full_disk(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint: the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    out = outputs(tmp_path)
    with pytest.raises(OSError, match=r"could not write checkpoint .*last\.pt.*No space left.*previous checkpoint is intact"):
        pretrain_2d.run(spec(30), tiny_world["wild_train"], tiny_world["wild_val"], out)
    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    assert checkpoint.load_checkpoint(out.checkpoint_dir)["progress"]["step"] == 10
    assert not list(out.checkpoint_dir.glob("*.tmp")) and not out.model.exists()


def test_interrupted_atomic_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"ok": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text('{"half": ')
        raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


# --- numerical faults -------------------------------------------------------------------------


def test_gradient_clipping_bounds_the_update(tiny_world, tmp_path):
    torch.manual_seed(0)
    from pose_study import models

    model = models.build_model("hg1_tiny")
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    loop = LoopSpec(batch_size=8, optimizer="sgd", grad_clip=1e-3, augment=AugmentSpec(), eval_every=1000,
                    checkpoint_every=1000, log_every=1000, eval_samples=8)
    data = TrainData(val=SplitTensors.load(tiny_world["wild_val"], torch.device("cpu")),
                     train_2d=SplitTensors.load(tiny_world["wild_train"], torch.device("cpu")))
    train(model, [Phase("p", 1, lr=1.0)], data, loop, tmp_path / "ckpt", flops_per_image=1)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert 0 < float((after - before).norm()) <= 1e-3 * (1 + 1e-4)  # one SGD step of lr 1 on a clipped gradient


def test_batches_without_any_valid_joint_give_a_finite_zero_loss():
    from pose_study.train import losses

    pred = torch.rand(2, 17, 8, 8, requires_grad=True)
    loss = losses.heatmap_loss(pred, torch.zeros(2, 17, 8, 8), torch.zeros(2, 17, dtype=torch.bool))
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.isfinite(pred.grad).all()
    depth = losses.depth_loss(torch.rand(2, 17), torch.full((2, 17), float("nan")), torch.zeros(2, 17, dtype=torch.bool))
    assert float(depth) == 0.0


# --- the workflow: kill -9 mid-job, rerun with --rerun-incomplete --------------------------------


def smoke_config(path: Path, steps: int) -> Path:
    data = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    data["pretrain_2d"]["steps"] = steps
    data["pretrain_2d"]["loop"].update(checkpoint_every=5, eval_every=steps)
    path.write_text(yaml.safe_dump(data))
    return path


def snakemake_cmd(config: Path, workdir: Path, target: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--configfile", str(config),
            "--directory", str(workdir), "--cores", "1", target, *extra]


@pytest.mark.workflow
def test_kill_9_of_the_workflow_then_rerun_incomplete_resumes(tmp_path):
    target = "results/smoke/pretrain_2d/hg1_tiny/wild_mpii/seed0/metrics.json"
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    for d in (whole, cut):
        d.mkdir()
    subprocess.run(snakemake_cmd(smoke_config(whole / "c.yaml", 40), whole, target), check=True,
                   capture_output=True, env=ENV)
    proc = subprocess.Popen(snakemake_cmd(smoke_config(cut / "c.yaml", 40), cut, target), env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ckpt = cut / "checkpoints/smoke/pretrain_2d/hg1_tiny/wild_mpii/seed0/last.pt"
    deadline = time.time() + 240
    while not ckpt.exists():
        assert proc.poll() is None and time.time() < deadline, "workflow ended before the first checkpoint"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and its job, at once
    proc.wait()
    assert not (cut / target).exists()
    # Snakemake itself was killed too, so its lock on the working directory remains: release it.
    subprocess.run(snakemake_cmd(cut / "c.yaml", cut, target, "--unlock"), check=True, capture_output=True, env=ENV)
    rerun = subprocess.run(snakemake_cmd(cut / "c.yaml", cut, target, "--rerun-incomplete"),
                           capture_output=True, text=True, env=ENV)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    log = (cut / "logs/smoke/pretrain_2d/hg1_tiny/wild_mpii/seed0.log").read_text()
    assert "resuming from checkpoint" in log
    a, b = (json.loads((d / target).read_text())["final"]["value"] for d in (whole, cut))
    assert b == pytest.approx(a, rel=1e-4)


# --- config faults that used to pass validation or give a cryptic message ----------------------


def smoke_dict() -> dict:
    return yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())


def test_crop_size_the_synthesizer_cannot_render_fails_validation():
    from pose_study import config
    from pose_study.data.synthetic.worlds import CROP_SIZES

    bounds = config.schema()["properties"]["crop_size"]
    assert (bounds["minimum"], bounds["maximum"]) == CROP_SIZES
    data = smoke_dict()
    data["crop_size"] = 50
    with pytest.raises(ValueError, match=r"crop_size: 50 is less than the minimum of 64"):
        config.validate_config(data)


def test_yaml_syntax_error_names_the_file_and_line(tmp_path):
    from pose_study import config

    path = tmp_path / "study.yaml"
    path.write_text("title: x\nseeds: [0\nmodels: [hg1_tiny]\n")
    with pytest.raises(ValueError, match=r"study\.yaml: not valid YAML, line 3, column 7: .*flow sequence"):
        config.load_config(path)


def test_numbers_from_snakemake_config_overrides_are_accepted():
    from snakemake.cli import parse_config

    from pose_study import config

    data = smoke_dict()
    data.update(parse_config(["seeds=[1,2]", "crop_size=128"]))
    assert data["seeds"] == ["1", "2"]  # what Snakemake's --config parser gives
    resolved = config.validate_config(data)
    assert resolved["seeds"] == [1, 2] and resolved["crop_size"] == 128
