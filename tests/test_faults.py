"""Faults a user or a cluster can cause, and what pose_study does about them.

reports/reliability.md lists every fault tried and the outcome. The faults tested here are
the ones that cross modules, and the second round of faults a new user hit (disk full on a real
tmpfs, two trainers on one checkpoint folder, damaged checkpoints, config and data that used to
pass or give a cryptic message, the default profile, the thread count of a hand rerun); the
others are tested beside the code they exercise:

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
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pose_study._io import atomic_path, write_json
from pose_study._spec import spec_from_dict
from pose_study.data.transforms import AugmentSpec
from pose_study.stages import _training, pretrain_2d
from pose_study.train import checkpoint
from pose_study.train.detection import DetectorTask, TrainData
from pose_study.train.loop import LoopSpec, LRSchedule, Phase, train
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


@pytest.fixture
def small_disk(tmp_path):
    """A real 4 MiB tmpfs (mounting needs root, as in CI); skipped elsewhere."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("could not mount a tmpfs here")
    yield mount
    subprocess.run(["umount", "--lazy", str(mount)], check=True)  # torch may still hold the failed file open


def fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` until only ``leave`` bytes are free."""
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(disk / "filler", "wb") as f:
        f.write(b"\0" * max(free - leave, 0))


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(small_disk):
    state = {"weights": torch.arange(20_000, dtype=torch.float32), "progress": {"step": 10}}
    checkpoint.save_checkpoint(small_disk / "ckpt", state)
    fill(small_disk, leave=16 * 1024)
    with pytest.raises(OSError, match=r"could not write checkpoint .*last\.pt .*No space left on device.*"
                                      r"previous checkpoint is intact"):
        checkpoint.save_checkpoint(small_disk / "ckpt", {**state, "progress": {"step": 20}})
    assert checkpoint.load_checkpoint(small_disk / "ckpt")["progress"]["step"] == 10
    assert sorted(p.name for p in (small_disk / "ckpt").iterdir()) == ["last.pt"]


def test_disk_full_while_writing_model_pt_names_the_file(small_disk):
    from pose_study import models

    fill(small_disk, leave=16 * 1024)
    with pytest.raises(OSError, match=r"could not write .*model\.pt: No space left on device") as caught:
        checkpoint.save_weights(small_disk / "run" / "model.pt", models.build_model("hg1_tiny"), "hg1_tiny")
    assert caught.value.errno == errno.ENOSPC
    assert list((small_disk / "run").iterdir()) == []


def test_truncated_checkpoint_says_delete_it_or_resume_from_the_previous_one(tmp_path):
    folder = tmp_path / "ckpt"
    for step in (10, 20):
        checkpoint.save_checkpoint(folder, {"progress": {"step": step}})
    last = folder / "last.pt"
    last.write_bytes(last.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"last\.pt: not a loadable .*truncated or corrupt: delete it to start this "
                                         r"run afresh, or resume from the previous one: mv .*previous\.pt .*last\.pt"):
        checkpoint.load_checkpoint(folder)
    os.replace(folder / "previous.pt", last)
    assert checkpoint.load_checkpoint(folder)["progress"]["step"] == 10
    last.write_bytes(b"")
    with pytest.raises(ValueError, match=r"delete it to start this run afresh \(there is no previous one"):
        checkpoint.load_checkpoint(folder)


def test_a_second_trainer_on_the_same_checkpoint_folder_stops_at_once(tiny_world, tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pose_study.train import checkpoint; "
         "checkpoint.claim_folder(sys.argv[1]); print('held', flush=True); time.sleep(60)", str(tmp_path / "ckpt")],
        stdout=subprocess.PIPE, text=True, env={**ENV, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "held"
        start = time.monotonic()
        with pytest.raises(RuntimeError, match=rf"checkpoint folder .*ckpt is in use by another trainer "
                                               rf"\(pid {holder.pid} on .*\); .*stop it"):
            pretrain_2d.run(spec(10), tiny_world["wild_train"], tiny_world["wild_val"], outputs(tmp_path))
        assert time.monotonic() - start < 5 and not (tmp_path / "ckpt" / "last.pt").exists()
    finally:
        holder.kill()
        holder.wait()
    pretrain_2d.run(spec(10), tiny_world["wild_train"], tiny_world["wild_val"], outputs(tmp_path))  # released on exit
    assert (tmp_path / "model.pt").exists()


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
    phases = [Phase("p", 1, DetectorTask(data, loop), LRSchedule(1.0))]
    train(model, phases, loop, tmp_path / "ckpt", flops_per_sample=1)
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


def test_yaml_syntax_error_names_the_file_and_line(tmp_path, caplog):
    from pose_study import cli

    path = tmp_path / "study.yaml"
    path.write_text("title: x\nseeds: [0\nmodels: [hg1_tiny]\n")
    assert cli.main(["check-config", str(path)]) == 1  # Snakemake's own --configfile parser names neither
    assert re.search(r"ValueError: .*study\.yaml: not valid YAML, line 3, column 7: while parsing a flow sequence "
                     r"\(opened at line 2, column 8\) expected ',' or '\]'", caplog.text)


def test_numbers_from_snakemake_config_overrides_are_accepted():
    from snakemake.cli import parse_config

    from pose_study import config

    data = smoke_dict()
    data.update(parse_config(["seeds=[1,2]", "crop_size=128"]))
    assert data["seeds"] == ["1", "2"]  # what Snakemake's --config parser gives
    resolved = config.validate_config(data)
    assert resolved["seeds"] == [1, 2] and resolved["crop_size"] == 128


# --- data faults: the file is named before any training -----------------------------------------


def rewrite(src: Path, dst: Path, change) -> Path:
    from pose_study.data import formats

    split = formats.read_split(src)
    formats.write_split(dst, change(split))
    return dst


def finetune_args(world: dict, train_3d: Path, tmp_path: Path) -> list[str]:
    spec_json = json.dumps({"model": "hg1_tiny", "arm": "fusion_scratch", "steps": 5,
                            "loop": {"batch_size": 4, "eval_every": 5, "checkpoint_every": 5, "log_every": 5,
                                     "eval_samples": 8}})
    return ["finetune-3d", "--spec", spec_json, "--train-3d", str(train_3d), "--val-3d", str(world["lab_val"]),
            "--train-2d", str(world["wild_train"]), "--model-out", str(tmp_path / "model.pt"),
            "--metrics-out", str(tmp_path / "metrics.json"), "--curve-out", str(tmp_path / "curve.csv"),
            "--checkpoint-dir", str(tmp_path / "ckpt")]


def test_finetune_3d_given_a_2d_only_split_as_train_3d_names_it(tiny_world, tmp_path, caplog):
    from pose_study import cli

    rc = cli.main(finetune_args(tiny_world, tiny_world["wild_train"], tmp_path))
    assert rc == 1 and not (tmp_path / "metrics.json").exists()
    assert re.search(r"FormatError: .*wild_train\.h5: --train-3d needs 3D labels \(joints_3d\), but this split "
                     r"\(wild/train\) has 2D labels only", caplog.text)


def test_nan_at_a_valid_joint_is_rejected_at_read_naming_file_field_and_row(tiny_world, tmp_path):
    from pose_study.data import formats

    def poison(split):
        split.joints_3d[3, 5, 2] = float("nan")
        return split

    bad = rewrite(tiny_world["lab_train"], tmp_path / "nan.h5", poison)
    with pytest.raises(formats.FormatError, match=r"nan\.h5: field 'joints_3d' has a non-finite coordinate at a "
                                                  r"valid joint: first at row 3, joint 5 \(.*\); 1 row\(s\) in all"):
        formats.read_split(bad)


def test_an_empty_split_is_named(tiny_world, tmp_path, caplog):
    from pose_study import cli

    empty = rewrite(tiny_world["lab_train"], tmp_path / "empty.h5", lambda s: s.select(np.zeros(len(s), bool)))
    assert cli.main(finetune_args(tiny_world, empty, tmp_path)) == 1
    assert re.search(r"empty\.h5: the split is empty \(0 samples\), so it cannot serve as --train-3d", caplog.text)


# --- reproducibility: a hand rerun from spec.json computes with the run's thread count -----------


def test_spec_json_records_the_thread_count_and_a_hand_rerun_uses_it(tmp_path, monkeypatch, caplog):
    from pose_study._spec import load_spec_arg, spec_record
    from pose_study.train import distributed

    threads = torch.get_num_threads()
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # keep this process's setting
    record = spec_record(spec(10))
    assert record["_threads"] == threads
    record["_threads"] = 3  # as if the study had run it at 3 threads
    path = tmp_path / "spec.json"
    write_json(path, record)
    assert load_spec_arg(pretrain_2d.Pretrain2DSpec, str(path)) == spec(10)
    assert distributed.cpu_threads({}) == (3, f"recorded in {path}; set OMP_NUM_THREADS to override")
    assert distributed.cpu_threads({"OMP_NUM_THREADS": "2"})[0] == 2  # an explicit setting still wins
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    distributed.configure_threads()
    assert f"but {path} records 3: results may differ" in caplog.text


# --- messages that must name the file ------------------------------------------------------------


class _RunsCode:
    """A pickle whose loading would create a file (a stand-in for a payload)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_malicious_pretrained_backbone_is_refused_naming_the_file(tmp_path):
    import pickle

    from pose_study import models

    evil, marker = tmp_path / "resnet18_imagenet.pth", tmp_path / "payload-ran"
    evil.write_bytes(pickle.dumps({"state_dict": _RunsCode(marker)}, protocol=2))
    with pytest.raises(ValueError, match=r"resnet18_imagenet\.pth: not a loadable weight or checkpoint file; only "
                                         r"tensors and plain containers load \(weights_only=True\)"):
        models.build_model("resnet_tiny", pretrained=evil)
    assert not marker.exists()


def test_a_malformed_evaluation_json_names_the_file_and_field(tmp_path):
    from pose_study.stages import collect
    from tests.fixtures.results_tree import copy_study, shared_study

    tree = copy_study(shared_study(), tmp_path / "study")
    path = next((tree.results / "evaluate").rglob("*.json"))
    doc = json.loads(path.read_text())
    del doc["source"]
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: malformed evaluation JSON: field 'source' is "
                                         r"missing; .*Delete it and rerun the workflow"):
        collect.collect(tree.config, tree.results, tree.benchmarks)


def test_a_public_download_without_network_says_how_to_place_the_files_by_hand(tmp_path):
    import socket

    from pose_study.data.catalog import Artefact, DatasetEntry, load_catalog
    from pose_study.stages import download

    with socket.socket() as s:  # a port nothing listens on: the connection is refused, as offline
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    real = load_catalog()["lspet"]
    artefact = Artefact(file="lspet_dataset.zip", url=f"http://127.0.0.1:{port}/lspet_dataset.zip", sha256=None,
                        size=None)
    catalog = {"lspet": DatasetEntry(**{**real.__dict__, "artefacts": (artefact,)})}
    spec_ = download.DownloadSpec(dataset="lspet", root=str(tmp_path / "lspet"), retries=1, retry_wait_s=0.0)
    with pytest.raises(ConnectionError, match=r"download incomplete after 2 attempts \(last error: .*refused.*\); .*"
                                              r"If this machine has no network access, fetch lspet_dataset\.zip "
                                              r"elsewhere and place it by hand at "
                                              r".*lspet/\.download/lspet_dataset\.zip"):
        download.run(spec_, tmp_path / "manifest.json", catalog=catalog)


# --- the workflow: plain `snakemake` uses the default profile; a failed data check is shown once ---


@pytest.mark.workflow
def test_plain_snakemake_uses_the_default_profile_and_shows_a_failed_data_check_once(tmp_path):
    data = smoke_dict()
    data["datasets"]["h36m"] = {"source": "real", "name": "h36m", "root": str(tmp_path / "h36m")}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(data))
    result = subprocess.run(snakemake_cmd(config, tmp_path, "results/smoke/data/h36m/download.json"),
                            capture_output=True, text=True, env=ENV)
    shown = result.stdout + result.stderr
    assert result.returncode != 0
    assert re.search(r"Using workflow specific profile .*profiles/default", shown)
    assert re.search(r"h36m \(.*\): \d+ required path\(s\) missing under .*h36m", shown)  # the message itself
    assert "Register / download: " in shown and shown.count("Error in rule download") == 1
    assert "Trying to restart" not in shown


def test_non_finite_loss_before_the_first_checkpoint_does_not_claim_one_is_intact(tiny_world, tmp_path, monkeypatch):
    from pose_study.train import objective

    real = objective.compute_losses

    def poisoned(*args, **kwargs):
        terms = real(*args, **kwargs)
        terms["total"] = terms["total"] + float("nan")
        return terms

    monkeypatch.setattr("pose_study.train.objective.compute_losses", poisoned)
    with pytest.raises(FloatingPointError, match=r"non-finite loss at step 1: .*; no checkpoint was written yet in "
                                                 r".*ckpt \(a rerun starts afresh\)"):
        pretrain_2d.run(spec(30), tiny_world["wild_train"], tiny_world["wild_val"], outputs(tmp_path))
