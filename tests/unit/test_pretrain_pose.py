"""pretrain_pose (APTPose masked pose modeling, MPT heatmaps from 3D poses) and its hand-over to train_lifter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pose_study import lifters
from pose_study._spec import load_spec_arg, spec_from_dict
from pose_study.stages import _training, pretrain_pose, train_lifter

LOOP = {"batch_size": 16, "eval_every": 10, "eval_samples": 48, "log_every": 10, "checkpoint_every": 10, "device": "cpu"}


def outputs(root: Path) -> _training.TrainOutputs:
    return _training.TrainOutputs(root / "model.pt", root / "metrics.json", root / "curve.csv", root / "ckpt")


def spec(lifter: str, steps: int = 20, **fields) -> pretrain_pose.PretrainPoseSpec:
    data = {"lifter": lifter, "steps": steps, "loop": LOOP, **fields}
    return spec_from_dict(pretrain_pose.PretrainPoseSpec, data)


@pytest.fixture(scope="module")
def apt_pretrained(tiny_world, tmp_path_factory) -> dict:
    out = outputs(tmp_path_factory.mktemp("apt"))
    result = pretrain_pose.run(spec("apt_tiny"), tiny_world["lab_train"], tiny_world["lab_val"],
                               [tiny_world["wild_train"]], out)
    return {"out": out, "metrics": result}


def check_outputs(out: _training.TrainOutputs, result: dict, lifter: str) -> None:
    written = json.loads(out.metrics.read_text())
    assert written == json.loads(json.dumps(result))
    assert written["stage"] == "pretrain_pose" and written["model"] == written["lifter"] == lifter
    assert written["final"]["metric"] == "mpjpe_mm" and written["compute"]["steps"] == 20
    assert written["compute"]["train_flops"] == 3 * written["forward_flops_per_image"] * 20 * 16 > 0
    assert lifters.load_lifter(out.model).preset_name == lifter
    assert load_spec_arg(pretrain_pose.PretrainPoseSpec, str(out.spec_json)).lifter == lifter


def test_apt_pretrains_on_3d_sequences_and_2d_images(apt_pretrained):
    check_outputs(apt_pretrained["out"], apt_pretrained["metrics"], "apt_tiny")
    final = apt_pretrained["metrics"]["final"]
    assert final["value"] < final["initial_value"], final
    assert apt_pretrained["metrics"]["datasets_2d"] == ["wild"]


@pytest.mark.parametrize("options", [{}, {"input": "coords"}])
def test_mpt_pretrains_from_3d_poses(tiny_world, tmp_path, options):
    result = pretrain_pose.run(spec("mpt_tiny", options=options), tiny_world["lab_train"], tiny_world["lab_val"],
                               None, outputs(tmp_path))
    check_outputs(outputs(tmp_path), result, "mpt_tiny")
    assert lifters.load_lifter(outputs(tmp_path).model).input_kind == options.get("input", "heatmaps")


def test_train_lifter_from_pretrain_pose_carries_the_prior_compute(apt_pretrained, tiny_world, tmp_path):
    prior = apt_pretrained["metrics"]["compute_total"]
    ft = spec_from_dict(train_lifter.TrainLifterSpec, {"lifter": "apt_tiny", "init": "pretrain_pose", "steps": 10,
                                                        "loop": LOOP})
    result = train_lifter.run(ft, tiny_world["lab_train"], tiny_world["lab_val"], outputs(tmp_path),
                              apt_pretrained["out"].model, apt_pretrained["out"].metrics)
    own = result["compute"]
    for key in ("train_flops", "train_samples", "wall_seconds"):
        assert result["compute_total"][key] == pytest.approx(own[key] + prior[key])
    assert result["init"] == "pretrain_pose" and result["final"]["metric"] == "mpjpe_mm"


def test_a_single_frame_lifter_is_not_pretrained():
    with pytest.raises(ValueError, match="mlp_tiny"):
        spec("mlp_tiny")


def test_unknown_mask_level_is_named():
    with pytest.raises(ValueError, match="elbow"):
        spec("apt_tiny", mask_levels=["joint", "elbow"])
