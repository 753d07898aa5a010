"""train_lifter and the pose task of the training loop on the tiny synthetic lab world (CPU)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from pose_study import lifters, metrics
from pose_study._spec import load_spec_arg, spec_from_dict, spec_to_dict
from pose_study.data.formats import read_split
from pose_study.data.poses import PoseData
from pose_study.data.poses import PoseBatch
from pose_study.lifters.inputs import project, relative_3d
from pose_study.stages import _pose_training, _training, train_lifter
from pose_study.train import lifting
from pose_study.records import CURVE_COLUMNS
from pose_study.train.loop import LoopSpec, LRSchedule, Phase, train

LOOP = {"batch_size": 64, "eval_every": 50, "eval_samples": 96, "log_every": 50, "checkpoint_every": 50, "device": "cpu"}
METRIC_KEYS = {"stage", "model", "input_size", "source", "params", "forward_flops_per_image", "final", "compute",
               "compute_total", "lifter", "init", "dataset_3d"}
COMPUTE_KEYS = {"wall_seconds", "train_samples", "train_flops", "device_hours", "steps", "device",
                "device_count", "img_per_s", "peak_memory_mb"}


def outputs(root: Path) -> _training.TrainOutputs:
    return _training.TrainOutputs(root / "model.pt", root / "metrics.json", root / "curve.csv", root / "ckpt")


def spec(steps: int = 150, **fields) -> train_lifter.TrainLifterSpec:
    data = {"lifter": "mlp_tiny", "steps": steps, "lr": 2e-3, "loop": LOOP, **fields}
    return spec_from_dict(train_lifter.TrainLifterSpec, data)


@pytest.fixture(scope="module")
def trained(tiny_world, tmp_path_factory) -> dict:
    out = outputs(tmp_path_factory.mktemp("mlp"))
    result = train_lifter.run(spec(), tiny_world["lab_train"], tiny_world["lab_val"], out)
    return {"out": out, "metrics": result}


def mean_pose_mpjpe(train: Path, val: Path) -> float:
    """MPJPE (mm) of predicting the training set's mean root-relative pose for every validation sample."""
    tr, va = PoseData.load(train), PoseData.load(val)
    rel, valid = relative_3d(tr.joints_3d, tr.valid_3d), tr.valid_3d
    mean = (rel * valid[..., None]).sum(0) / valid.sum(0).clamp(min=1)[:, None]
    pred = (mean * 1000.0).expand(len(va), -1, -1).numpy()
    return float(metrics.mpjpe(pred, va.joints_3d.numpy(), va.valid_3d.numpy()).value)


def test_mpjpe_falls_below_the_mean_pose(trained, tiny_world):
    final = trained["metrics"]["final"]
    assert final["metric"] == "mpjpe_mm"
    assert final["value"] < 0.5 * final["initial_value"], final
    assert final["value"] < 0.8 * mean_pose_mpjpe(tiny_world["lab_train"], tiny_world["lab_val"]), final


def test_outputs_carry_the_documented_keys(trained):
    out, result = trained["out"], trained["metrics"]
    written = json.loads(out.metrics.read_text())
    assert written == json.loads(json.dumps(result))
    assert METRIC_KEYS <= set(written) and COMPUTE_KEYS <= set(written["compute"])
    assert written["stage"] == "train_lifter" and written["model"] == written["lifter"] == "mlp_tiny"
    assert written["init"] == "scratch" and written["dataset_3d"] == "lab" and written["input_size"] == 64
    assert written["compute"]["steps"] == 150 and written["compute"]["train_samples"] == 150 * 64
    assert written["compute"]["train_flops"] == 3 * written["forward_flops_per_image"] * 150 * 64
    assert written["compute_total"] == {k: written["compute"][k] for k in written["compute_total"]}
    with open(out.curve, newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CURVE_COLUMNS and [int(r["step"]) for r in rows] == [50, 100, 150]
    assert float(rows[-1]["val_value"]) == pytest.approx(written["final"]["value"])
    model = lifters.load_lifter(out.model)
    assert model.preset_name == "mlp_tiny"
    assert load_spec_arg(train_lifter.TrainLifterSpec, str(out.spec_json)) == spec()


def test_options_round_trip_through_spec_json():
    made = spec(lifter="apt_tiny", options={"fusion": "add", "input": None})
    assert made.options == (("fusion", "add"),)
    again = spec_from_dict(train_lifter.TrainLifterSpec, json.loads(json.dumps(spec_to_dict(made))))
    assert again == made and hash(again) == hash(made)


@pytest.mark.parametrize("bad", [{"init": "imagenet"}, {"lifter": "nope"}, {"options": {"colour": "red"}}])
def test_bad_spec_names_the_field(bad):
    with pytest.raises(ValueError, match="init|lifter|colour"):
        spec(**bad)


def test_pretrain_pose_init_with_another_preset_names_the_file(tiny_world, trained, tmp_path):
    bad = spec(lifter="graph_tiny", init="pretrain_pose")
    with pytest.raises(ValueError, match=str(trained["out"].model)):
        train_lifter.run(bad, tiny_world["lab_train"], tiny_world["lab_val"], outputs(tmp_path), trained["out"].model)


def test_non_finite_loss_names_step_and_terms(tiny_world, tmp_path):
    data = PoseData.load(tiny_world["lab_val"])
    model = lifters.build_lifter("mlp_tiny")

    def loss(model, batch, generator):
        total = model(*lifting.lifter_inputs(model, batch)).sum() * float("nan")
        return {"total": total, "pose": total}

    loop = LoopSpec(batch_size=4, device="cpu")
    task = lifting.PoseTask(loss, _pose_training.sampler(data, 1), data, loop)
    with pytest.raises(FloatingPointError, match=r"non-finite loss at step 1: pose=nan;"):
        train(model, [Phase("t", 5, task, LRSchedule(1e-3))], loop, tmp_path, flops_per_sample=1)
    assert not (tmp_path / "last.pt").exists()


def test_flip_keeps_2d_the_projection_of_3d(tiny_world):
    data = PoseData.load(tiny_world["lab_val"])
    batch = data.gather(torch.arange(8))
    flags = torch.tensor([True, False] * 4)
    flipped = lifting.flip_batch(batch, flags)
    reproj = project(flipped.joints_3d, flipped.intrinsics)
    valid = flipped.valid_2d & flipped.valid_3d
    assert torch.allclose(reproj[valid], flipped.joints_2d[valid], atol=1e-2)
    assert torch.equal(flipped.joints_2d[~flags], batch.joints_2d[~flags])
    # the left wrist of a flipped sample is the mirrored right wrist of the original
    assert torch.allclose(flipped.joints_2d[0, 0, 13, 0], 63.0 - batch.joints_2d[0, 0, 16, 0])
    twice = lifting.flip_batch(flipped, flags)
    assert torch.allclose(twice.joints_3d, batch.joints_3d) and torch.allclose(twice.intrinsics, batch.intrinsics)


def test_sequence_windows_gather_frames_of_one_clip(tiny_world):
    data = PoseData.load(tiny_world["lab_train"], frames=5)
    batch = data.gather(torch.tensor([0, 7]))
    assert isinstance(batch, PoseBatch) and batch.joints_2d.shape == (2, 5, 17, 2)
    assert torch.equal(batch.centre().joints_2d[:, 0], data.joints_2d[[0, 7]])
    three = data.gather(torch.tensor([0, 7]), frames=3)
    assert torch.equal(three.joints_2d, batch.joints_2d[:, 1:4])
    with pytest.raises(ValueError, match="frames"):
        data.gather(torch.tensor([0]), frames=7)
    clip = read_split(tiny_world["lab_train"], images=False).clip
    assert (clip[data.windows.numpy()] == clip[:, None]).all()
