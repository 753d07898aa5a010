import copy
from dataclasses import fields, replace
from pathlib import Path

import pytest
import yaml

from pose_study import config as cfg
from pose_study.models import MODELS
from pose_study.stages._pose_training import pose_loop
from pose_study.train.loop import LoopSpec

ROOT = Path(__file__).resolve().parents[2]
STUDIES = ["synthetic", "smoke"]


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text())


@pytest.mark.parametrize("name", STUDIES)
def test_shipped_configs_validate_and_give_specs(name):
    study = cfg.Study(cfg.load_config(ROOT / "config" / f"{name}.yaml"))
    for model in study.models:
        pre = study.pretrain_spec(model, study.seeds[0])
        assert pre.model == model and pre.loop.seed == study.seeds[0]
        for arm in study.arms:
            assert study.finetune_spec(arm, model, 1).arm == arm
    assert study.splits("lab") == ["train", "val", "test"]
    assert study.splits("occluded") == ["test"]


def test_defaults_are_filled():
    data = cfg.validate_config(load("smoke"))
    assert data["finetune_3d"]["weight_3d"] == 0.1
    assert data["pretrain_2d"]["loop"]["augment"]["flip_prob"] == 0.5
    assert data["evaluate"]["flip_test"] is False


@pytest.mark.parametrize("mutate,message", [
    (lambda c: c.update(sedds=[0]), r"\(top level\): Additional properties.*'sedds'.*allowed keys: \[.*'seeds'"),
    (lambda c: c["finetune_3d"].update(fusion_step=3), r"finetune_3d: .*'fusion_step'.*allowed keys"),
    (lambda c: c["models"].append("hg3_tiny"), r"models.2: 'hg3_tiny' is not one of \[.*'hg1'"),
    (lambda c: c.update(model_settings={"hg3": {}}), r"model_settings: key 'hg3' is not one of \[.*'hg1'"),
    (lambda c: c.update(seeds="zero"), r"seeds: 'zero' is not of type 'array'"),
    (lambda c: c.update(arms=["pretrained_2d", "imagenet"]), r"arms.1: 'imagenet' is not one of"),
    (lambda c: c["datasets"]["lab"].update(world="moon"), r"datasets.lab.world: 'moon' is not one of"),
    (lambda c: c.update(test_3d=["wild_mpii"]), r"test_3d names 'wild_mpii', which has no 3D labels"),
    (lambda c: c.update(train_2d=["mpii"]), r"train_2d names dataset 'mpii', which is not under datasets"),
    (lambda c: c["datasets"].update(mpii={"source": "real", "name": "mpii"}), r"datasets.mpii: 'root' is a required"),
], ids=["misspelled-top", "misspelled-nested", "unknown-preset", "unknown-preset-settings", "wrong-type", "unknown-arm",
        "unknown-world", "3d-test-without-3d", "undefined-dataset", "real-without-root"])
def test_bad_config_names_the_key_and_the_choices(mutate, message):
    data = load("smoke")
    mutate(data)
    with pytest.raises(ValueError, match=message):
        cfg.validate_config(data)


def test_schema_model_enum_equals_the_preset_table():
    assert cfg.check_presets_match_schema() == [], sorted(MODELS)


def test_schema_loop_keys_match_loop_spec_fields():
    loop = cfg.schema()["$defs"]["loop"]["properties"]
    derived = {"seed", "device"}  # set per job by the study, not configurable per stage
    assert set(loop) == {f.name for f in fields(LoopSpec)} - derived


def test_pose_stages_keep_their_loop_defaults_under_a_partial_loop():
    data = load("smoke")
    data["train_lifter"]["loop"] = {"eval_every": 7}
    data.pop("pretrain_pose")
    study = cfg.Study(cfg.validate_config(data))
    lifter = study.train_lifter_spec("mlp_tiny", "scratch", 3).loop
    pose = study.pretrain_pose_spec("apt_tiny", 3).loop
    detector = study.loop_spec("pretrain_2d", "hg1_tiny", 3)
    assert (lifter.eval_every, lifter.batch_size, lifter.grad_clip, lifter.heatmap_sigma, lifter.seed) == \
        (7, 256, 1.0, 0.75, 3)
    assert (pose.batch_size, pose.grad_clip, pose.eval_every, pose.checkpoint_every) == (256, 1.0, 200, 500)
    assert (detector.grad_clip, detector.heatmap_sigma, detector.lr_schedule, detector.warmup) == \
        (None, 2.0, "step", 0.0)
    assert study.evaluate_spec("hg1_tiny", "r", "mpt").heatmap_sigma == 0.75


def test_schema_loop_defaults_equal_the_stage_specs_defaults():
    data = load("smoke")
    for stage in ("pretrain_2d", "finetune_3d", "train_lifter", "pretrain_pose"):
        data[stage].pop("loop")
    study = cfg.Study(cfg.validate_config(data))
    at = {"seed": 1, "device": study.config["device"]}
    assert study.loop_spec("finetune_3d", "hg1_tiny", 1) == replace(LoopSpec(), **at)
    assert study.train_lifter_spec("mlp_tiny", "scratch", 1).loop == replace(pose_loop(), **at)
    assert study.pretrain_pose_spec("apt_tiny", 1).loop == replace(pose_loop(), **at)


def test_per_model_override_changes_only_that_model():
    data = cfg.validate_config(load("smoke"))
    changed = copy.deepcopy(data)
    changed["model_settings"]["hg1_tiny"] = {"pretrain_steps": 99}
    a, b = cfg.Study(data), cfg.Study(changed)
    assert b.pretrain_spec("hg1_tiny", 0).steps == 99
    assert a.pretrain_spec("hg2_tiny", 0) == b.pretrain_spec("hg2_tiny", 0)
    assert a.finetune_spec("scratch", "hg1_tiny", 0) == b.finetune_spec("scratch", "hg1_tiny", 0)


def test_synthetic_data_seed_differs_by_split_but_not_by_training_seed():
    study = cfg.Study(cfg.validate_config(load("smoke")))
    assert study.synthesize_spec("lab", "train")["seed"] != study.synthesize_spec("lab", "test")["seed"]
    assert study.synthesize_spec("lab", "train") == study.synthesize_spec("lab", "train")
