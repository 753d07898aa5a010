from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from pose_study import config as cfg
from pose_study.models import MODELS
from pose_study.train.loop import LoopSpec

ROOT = Path(__file__).resolve().parents[2]


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text())


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
