"""The pose-only data role (``train_pose``): config checks, the plan's keys and inputs, the pose
pre-training stage on a pose-only pool, and the apt_pose detector validated through its own lifter."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pose_study import config as cfg
from pose_study import lifters, models
from pose_study._spec import spec_from_dict
from pose_study.data.batches import SplitTensors
from pose_study.data.formats import read_split
from pose_study.data.poses import PoseBatch, sequence_windows
from pose_study.data.synthetic.worlds import SynthesizeSpec
from pose_study.lifters import inputs, pretraining
from pose_study.plan import NO_2D, Plan, RunKey
from pose_study.stages import _training, pretrain_pose, synthesize
from pose_study.train import detection

ROOT = Path(__file__).resolve().parents[2]
LOOP = {"batch_size": 8, "eval_every": 2, "eval_samples": 32, "log_every": 2, "checkpoint_every": 2, "device": "cpu"}


def smoke() -> dict:
    return yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())


def two_2d_sets() -> dict:
    """The smoke study with a second 2D training set (LSP-like joints)."""
    data = smoke()
    data["datasets"]["wild_lsp"] = {"source": "synthetic", "world": "wild", "joint_set": "lsp14",
                                    "samples": {"train": 32, "val": 16}}
    data["train_2d"] = ["wild_mpii", "wild_lsp"]
    return cfg.validate_config(data)


# --- config -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("change,message", [
    (lambda d: d.update(train_3d=["mocap"]), r"train_3d names 'mocap', a pose-only dataset.*train_pose instead"),
    (lambda d: d.update(test_3d=["lab", "mocap"]), r"test_3d names 'mocap', a pose-only dataset"),
    (lambda d: d.update(train_pose=["lab"]), r"train_pose names 'lab', which is not pose-only"),
    (lambda d: d.update(train_pose=["pool"]), r"train_pose names dataset 'pool', which is not under datasets"),
    (lambda d: d["datasets"].update(none={"source": "synthetic", "world": "lab"}), r"datasets.none: the id 'none'"),
], ids=["pose-only-as-3d", "pose-only-as-test", "images-as-pose", "unknown", "reserved-id"])
def test_pose_only_role_errors_name_the_key(change, message):
    data = smoke()
    change(data)
    with pytest.raises(ValueError, match=message):
        cfg.validate_config(data)


def test_pose_sets_are_not_made_without_a_pose_pretraining_arm():
    data = smoke()
    data["arms"] = ["3d_only", "pretrained_2d", "ft_2d"]  # e.g. --config 'arms=[...]' on the smoke study
    plan = Plan(cfg.validate_config(data))
    assert plan.splits("mocap") == [] and not [j for j in plan.data_jobs() if "/mocap/" in j.outputs[0]]


def test_a_real_pose_set_on_a_test_sets_root_is_refused():
    data = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    data["datasets"]["cmu_mocap"]["root"] = data["datasets"]["h36m"]["root"]
    with pytest.raises(ValueError, match=r"train_pose set 'cmu_mocap' and test set 'h36m' share the root"):
        cfg.validate_config(data)


def test_real_pose_sets_have_a_train_split_only():
    data = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    data["datasets"]["cmu_mocap"]["splits"] = ["train"]
    cfg.validate_config(data)
    assert cfg.is_pose_only({"source": "real", "name": "amass"}) and not cfg.is_pose_only(
        {"source": "synthetic", "world": "lab"})


# --- plan ---------------------------------------------------------------------------------------------

def test_pose_pretraining_reads_the_pool_and_only_its_own_2d_set():
    plan = Plan(two_2d_sets())
    pose = {k.path: plan.training_job(k).inputs for k in plan.runs() if k.stage == "pretrain_pose" and k.seed == 0}
    pool = ["results/smoke/data/mocap/train.h5"]
    assert pose == {
        "pretrain_pose/apt_tiny/wild_mpii/lab/seed0": {"train_pose": pool, "val_3d": "results/smoke/data/lab/val.h5",
                                                       "train_2d": ["results/smoke/data/wild_mpii/train.h5"]},
        "pretrain_pose/apt_tiny/wild_lsp/lab/seed0": {"train_pose": pool, "val_3d": "results/smoke/data/lab/val.h5",
                                                      "train_2d": ["results/smoke/data/wild_lsp/train.h5"]},
        "pretrain_pose/mpt_tiny/none/lab/seed0": {"train_pose": pool, "val_3d": "results/smoke/data/lab/val.h5"}}
    job = plan.training_job(RunKey(stage="pretrain_pose", lifter="mpt_tiny", dataset_2d=NO_2D, dataset_3d="lab"))
    assert job.args == ("--train-pose results/smoke/data/mocap/train.h5 --val-3d results/smoke/data/lab/val.h5")
    synth = [j.spec for j in plan.data_jobs() if j.outputs[0].endswith("/mocap/train.h5")]
    assert [(s["world"], s["num_samples"]) for s in synth] == [("mocap", 128)]
    assert plan.splits("mocap") == ["train"]


def test_without_pose_sets_pose_pretraining_reads_the_3d_train_split():
    data = smoke()
    del data["train_pose"], data["datasets"]["mocap"]
    plan = Plan(cfg.validate_config(data))
    key = RunKey(stage="pretrain_pose", lifter="mpt_tiny", dataset_2d=NO_2D, dataset_3d="lab")
    assert plan.training_job(key).inputs == {"train_3d": "results/smoke/data/lab/train.h5",
                                             "val_3d": "results/smoke/data/lab/val.h5"}
    fine = RunKey(stage="finetune_3d", arm="mpt", model="hg1_tiny", dataset_2d="wild_mpii", dataset_3d="lab")
    assert plan.fairness(fine)["data"] == {"2d": {"wild_mpii": 64}, "3d": {"lab": 64}, "pose": {}}


def test_a_runs_upstream_runs_saw_its_own_2d_set():
    plan = Plan(two_2d_sets())
    for key in plan.runs():
        if key.stage != "finetune_3d":
            continue
        for run in plan.upstream(key):
            assert run.dataset_2d in (key.dataset_2d, NO_2D), (key.path, run.path)
            assert plan.data_read(run)["2d"] in ([], [key.dataset_2d])
    apt = RunKey(stage="finetune_3d", arm="apt_pose", model="hg1_tiny", dataset_2d="wild_lsp", dataset_3d="lab")
    assert plan.training_job(apt).inputs["guide_lifters"] == [
        "results/smoke/train_lifter/apt_tiny/pretrain_pose/wild_lsp/lab/seed0/model.pt"]  # its own lifter validates


def test_scratch_total_lifter_runs_the_pretrained_lifters_total_steps():
    plan = Plan(cfg.load_config(ROOT / "config" / "smoke.yaml"))
    key = RunKey(stage="train_lifter", lifter="apt_tiny", init="scratch_total", dataset_2d=NO_2D, dataset_3d="lab")
    spec = plan.spec(key)
    assert (spec["init"], spec["steps"]) == ("scratch", 6 + 4)  # train_lifter.steps + pretrain_pose.steps
    assert plan.upstream(key) == [] and "init_weights" not in plan.training_job(key).inputs
    assert ("apt_tiny/scratch_total", RunKey(stage="train_lifter", lifter="apt_tiny", init="scratch_total")) in \
        plan.evaluation_lifters()


def test_fairness_counts_steps_data_and_upstream_runs_once():
    plan = Plan(cfg.load_config(ROOT / "config" / "smoke.yaml"))
    key = RunKey(stage="finetune_3d", arm="apt_pose", model="hg1_tiny", dataset_2d="wild_mpii", dataset_3d="lab")
    f = plan.fairness(key)
    # own 4 + 2; 2D pre-training 6; pose pre-training 4; the sequence lifter from it 6
    assert (f["steps"], f["upstream_steps"], f["total_steps"]) == (6, 6 + 4 + 6, 22)
    assert f["data"] == {"2d": {"wild_mpii": 64}, "3d": {"lab": 64}, "pose": {"mocap": 128}}
    assert f["upstream"] == ["pretrain_2d/hg1_tiny/wild_mpii/seed0", "pretrain_pose/apt_tiny/wild_mpii/lab/seed0",
                             "train_lifter/apt_tiny/pretrain_pose/wild_mpii/lab/seed0"]
    paper = Plan(cfg.load_config(ROOT / "config" / "paper.yaml"))
    mpt = RunKey(stage="finetune_3d", arm="mpt", model="hg2", dataset_2d="mpii", dataset_3d="h36m")
    assert paper.fairness(mpt)["data"] == {"2d": {"mpii": None}, "3d": {"h36m": None}, "pose": {"cmu_mocap": None}}


def test_shipped_pose_pretraining_uses_mpts_optimiser_and_fixed_cameras():
    for name in ("paper", "smoke", "synthetic_arms"):
        s = cfg.load_config(ROOT / "config" / f"{name}.yaml")["pretrain_pose"]
        assert (s["lr"], s["loop"]["warmup"], s["loop"]["lr_schedule"], s["virtual_cameras"]) == \
            (2e-4, 0.1, "linear", "fixed"), name
        assert cfg.load_config(ROOT / "config" / f"{name}.yaml")["train_pose"], name


# --- the stage on a pose-only pool ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pool") / "mocap_train.h5"
    synthesize.run(SynthesizeSpec(world="mocap", split="train", num_samples=256, seed=7, dataset="mocap"), path)
    return path


def test_viewed_sequences_project_through_one_camera_per_sequence():
    torch.manual_seed(0)
    b, t, k = 3, 5, 17
    joints = torch.randn(b, t, k, 3) * 300.0
    valid = torch.ones(b, t, k, dtype=torch.bool)
    batch = PoseBatch(torch.zeros(b, t, k, 2), torch.zeros(b, t, k, dtype=torch.bool), joints, valid,
                      torch.eye(3).expand(b, t, 3, 3), torch.ones(b, dtype=torch.bool), 0)
    out = pretraining.view_sequences(batch, 64, torch.Generator().manual_seed(1), "fixed")
    assert out.crop_size == 64 and out.valid_2d.all()
    assert torch.allclose(out.joints_2d, inputs.project(out.joints_3d, out.intrinsics), atol=1e-3)
    rel_in = joints - joints[:, :, :1]
    rel_out = out.joints_3d - out.joints_3d[:, :, :1]
    for i in range(b):  # one rotation maps every frame of a sequence: R = argmin over all its frames
        a, c = rel_in[i].reshape(-1, 3).double(), rel_out[i].reshape(-1, 3).double()
        rotation = torch.linalg.lstsq(a, c).solution
        assert torch.allclose(a @ rotation, c, atol=1e-2)
        assert torch.allclose(rotation.T @ rotation, torch.eye(3, dtype=torch.float64), atol=1e-4)
    assert ((out.joints_2d >= -0.5) & (out.joints_2d <= 63.5)).all()  # every joint inside its crop


@pytest.mark.parametrize("lifter", ["apt_tiny", "mpt_tiny"])
def test_pose_pretraining_runs_on_the_pool(pool, tiny_world, tmp_path, lifter):
    spec = spec_from_dict(pretrain_pose.PretrainPoseSpec, {"lifter": lifter, "steps": 4, "loop": LOOP})
    out = _training.TrainOutputs(tmp_path / "model.pt", tmp_path / "metrics.json", tmp_path / "curve.csv",
                                 tmp_path / "ckpt")
    train_2d = [tiny_world["wild_train"]] if lifter == "apt_tiny" else None
    result = pretrain_pose.run(spec, None, tiny_world["lab_val"], train_2d, out, train_pose=[pool])
    assert result["datasets_pose"] == ["mocap"] and result["pose_samples"] == 256
    assert result["dataset_3d"] == "lab" and math.isfinite(result["final"]["value"])


def test_pose_pretraining_without_poses_is_named(tiny_world, tmp_path):
    spec = spec_from_dict(pretrain_pose.PretrainPoseSpec, {"lifter": "mpt_tiny", "steps": 2, "loop": LOOP})
    out = _training.TrainOutputs(tmp_path / "m.pt", tmp_path / "m.json", tmp_path / "c.csv", tmp_path / "ckpt")
    with pytest.raises(ValueError, match="--train-3d .* or --train-pose"):
        pretrain_pose.run(spec, None, tiny_world["lab_val"], None, out)


# --- apt_pose validated through its sequence lifter ------------------------------------------------------

def test_sequence_validation_equals_lifting_every_detected_frame(tiny_world):
    torch.manual_seed(0)
    model, lifter = models.build_model("hg1_tiny").eval(), lifters.build_lifter("apt_tiny").eval()
    val = SplitTensors.load(tiny_world["lab_val"], torch.device("cpu"))
    split = read_split(tiny_world["lab_val"], images=False)
    windows = torch.as_tensor(sequence_windows(split.clip, split.frame, lifter.frames))
    name, value = detection.validate(model, val, 27, 16, lifter, 100.0, windows)
    # by hand: detect every frame, lift every window, score the centres validate picks (27 // 9 = 3 samples)
    from pose_study.data import codecs
    from pose_study.metrics import mpjpe
    from pose_study.predict import heatmap_to_crop

    with torch.no_grad():
        detected = heatmap_to_crop(codecs.soft_argmax(model(val.gather(torch.arange(len(val))).images)["heatmaps"]))
    pose = inputs.lift(lifter, detected, torch.ones(detected.shape[:2], dtype=torch.bool), windows=windows) * 1000.0
    centres = np.unique(np.linspace(0, len(val) - 1, 3).astype(np.int64))
    truth = val.gather(torch.as_tensor(centres))
    want = mpjpe(pose[centres].numpy(), truth.joints_3d.numpy(), truth.valid_3d.numpy()).value
    assert name == "mpjpe_mm" and value == pytest.approx(want, rel=1e-4)


def test_apt_pose_finetune_validates_through_its_sequence_lifter(tiny_world, tmp_path):
    from pose_study.lifters import save_lifter
    from pose_study.stages import finetune_3d
    from pose_study.train.checkpoint import save_weights

    torch.manual_seed(0)
    save_weights(tmp_path / "pre.pt", models.build_model("hg1_tiny"), "hg1_tiny")
    save_lifter(tmp_path / "apt.pt", lifters.build_lifter("apt_tiny"))
    spec = spec_from_dict(finetune_3d.Finetune3DSpec, {"model": "hg1_tiny", "arm": "apt_pose", "steps": 2,
                                                       "geometric_steps": 0, "loop": {**LOOP, "eval_every": 2}})
    out = _training.TrainOutputs(tmp_path / "model.pt", tmp_path / "metrics.json", tmp_path / "curve.csv",
                                 tmp_path / "ckpt")
    result = finetune_3d.run(spec, tiny_world["lab_train"], tiny_world["lab_val"], tiny_world["wild_train"], out,
                             init_weights=tmp_path / "pre.pt", guide_lifters=[tmp_path / "apt.pt"])
    assert result["lifters"] == ["apt_tiny"] and result["final"]["metric"] == "mpjpe_mm"
    assert math.isfinite(result["final"]["value"])

