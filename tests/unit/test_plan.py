"""The study's plan: runs, upstream runs, test sets, inputs and specs from a validated config."""

from __future__ import annotations

import copy
import shlex
from pathlib import Path

import pytest
import yaml

from pose_study import config as cfg
from pose_study._spec import spec_from_dict
from pose_study.arms import ARMS
from pose_study.plan import FLAGS, RUN_PATTERNS, Plan, RunKey, input_args
from pose_study.stages.evaluate import EvaluateSpec
from pose_study.stages.finetune_3d import Finetune3DSpec
from pose_study.stages.pretrain_2d import Pretrain2DSpec
from pose_study.stages.pretrain_pose import PretrainPoseSpec
from pose_study.stages.train_lifter import TrainLifterSpec
from tests.fixtures.results_tree import fixture_config

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.stem for p in (ROOT / "config").glob("*.yaml"))
SPEC_CLASSES = {"pretrain_2d": Pretrain2DSpec, "finetune_3d": Finetune3DSpec, "train_lifter": TrainLifterSpec,
                "pretrain_pose": PretrainPoseSpec, "evaluate_finetune_3d": EvaluateSpec,
                "evaluate_pretrain_2d": EvaluateSpec}


def shipped(name: str) -> dict:
    return cfg.load_config(ROOT / "config" / f"{name}.yaml")


@pytest.mark.parametrize("name", SHIPPED)
def test_every_job_spec_of_a_shipped_config_builds_its_stage_spec(name):
    plan = Plan(shipped(name))
    jobs = [job for job in plan.jobs() if job.rule in SPEC_CLASSES]
    assert jobs
    for job in jobs:
        spec = spec_from_dict(SPEC_CLASSES[job.rule], job.spec, where=job.rule)
        if isinstance(spec, EvaluateSpec):
            assert spec.run == job.key.path and spec.model == job.key.model
        else:
            assert spec.loop.seed == job.key.seed
            assert getattr(spec, "model", None) in (job.key.model, None) or job.key.lifter


def test_splits_and_data_seeds():
    plan = Plan(shipped("smoke"))
    assert plan.splits("lab") == ["train", "val", "test"] and plan.splits("occluded") == ["test"]
    seeds = {job.spec["seed"] for job in plan.data_jobs()}
    assert len(seeds) == len(plan.data_jobs())  # every split its own data seed
    again = copy.deepcopy(plan.config)
    again["seeds"] = [5, 6]  # training seeds do not change the data
    assert [j.spec for j in Plan(again).data_jobs()] == [j.spec for j in plan.data_jobs()]


def test_per_model_override_changes_only_that_model():
    data = shipped("smoke")
    changed = copy.deepcopy(data)
    changed["model_settings"]["hg1_tiny"] = {"pretrain_steps": 99}
    a, b = Plan(data), Plan(changed)

    def spec(plan: Plan, stage: str, model: str) -> dict:
        arm = "" if stage == "pretrain_2d" else "fusion_scratch"
        return plan.spec(RunKey(stage=stage, arm=arm, model=model, dataset_2d="wild_mpii", dataset_3d="lab"))

    assert spec(b, "pretrain_2d", "hg1_tiny")["steps"] == 99
    assert spec(a, "pretrain_2d", "hg2_tiny") == spec(b, "pretrain_2d", "hg2_tiny")
    assert spec(a, "finetune_3d", "hg1_tiny") == spec(b, "finetune_3d", "hg1_tiny")


def test_run_key_paths_round_trip_through_wildcards():
    for key in Plan(fixture_config(arms=list(ARMS))).runs():
        assert RunKey.from_wildcards(key.stage, key.wildcards) == key
        assert key.path == RUN_PATTERNS[key.stage].format(**key.wildcards)
    lifter = RunKey(stage="train_lifter", lifter="apt_tiny", init="pretrain_pose", dataset_2d="wild_mpii",
                    dataset_3d="lab", seed=1)
    assert lifter.path == "train_lifter/apt_tiny/pretrain_pose/wild_mpii/lab/seed1"
    assert lifter.fields()["lifter"] == "apt_tiny" and lifter.fields()["arm"] == lifter.fields()["model"] == ""


def test_runs_without_a_pretrained_arm():
    plan = Plan({**fixture_config(), "arms": ["fusion_scratch"]})
    runs = plan.runs()
    assert {r.stage for r in runs} == {"finetune_3d"} and len(runs) == 2 * 2
    assert RunKey(stage="pretrain_2d", model="hg1_tiny", dataset_2d="wild_mpii", seed=3).path == \
        "pretrain_2d/hg1_tiny/wild_mpii/seed3"


def test_runs_with_every_arm():
    plan = Plan(fixture_config(arms=list(ARMS)))
    runs = plan.runs()
    lifter_runs = [r.path for r in runs if r.stage in ("pretrain_pose", "train_lifter")]
    # a lifter run's path names its 2D set: only the sequence lifter's pose pre-training reads one
    want = [f"pretrain_pose/{lifter}/lab/seed{s}" for lifter in ("apt_tiny/wild_mpii", "mpt_tiny/none")
            for s in (0, 1)]
    want += [f"train_lifter/{lifter}/lab/seed{s}" for lifter in (
        "mlp_tiny/scratch/none", "graph_tiny/scratch/none", "transformer_tiny/scratch/none", "apt_tiny/scratch/none",
        "apt_tiny/pretrain_pose/wild_mpii", "apt_tiny/scratch_total/none") for s in (0, 1)]
    assert lifter_runs == want
    stages = [r.stage for r in runs]
    assert stages.count("pretrain_2d") == 4 and stages.count("finetune_3d") == len(ARMS) * 2 * 2
    assert stages == sorted(stages, key=["pretrain_2d", "pretrain_pose", "train_lifter", "finetune_3d"].index)
    assert all(plan.test_sets_of(r) == [] for r in runs if r.stage in ("pretrain_pose", "train_lifter"))


def test_lifter_runs_follow_the_arms_present():
    def lifter_paths(arms: list[str]) -> set[str]:
        runs = Plan({**fixture_config(arms=arms), "seeds": [0]}).runs()
        return {r.path.rsplit("/", 2)[0] for r in runs if r.stage in ("pretrain_pose", "train_lifter")}

    guides = {f"train_lifter/{lifter}/scratch/none" for lifter in ("mlp_tiny", "graph_tiny", "transformer_tiny")}
    assert lifter_paths(["3d_only", "pretrained_2d"]) == set()
    assert lifter_paths(["3d_only", "ft_2d"]) == guides
    assert lifter_paths(["3d_only", "mpt"]) == guides | {"pretrain_pose/mpt_tiny/none"}
    assert lifter_paths(["apt_pose"]) == guides | {"pretrain_pose/apt_tiny/wild_mpii", "train_lifter/apt_tiny/scratch/none",
                                                   "train_lifter/apt_tiny/pretrain_pose/wild_mpii",
                                                   "train_lifter/apt_tiny/scratch_total/none"}


def test_evaluation_lifters_primaries_and_upstream_runs():
    plan = Plan(fixture_config(arms=list(ARMS)))
    assert [name for name, _ in plan.evaluation_lifters()] == [
        "mlp_tiny/scratch", "graph_tiny/scratch", "transformer_tiny/scratch", "apt_tiny/scratch",
        "apt_tiny/pretrain_pose", "apt_tiny/scratch_total", "mpt_tiny/zero_shot"]
    primaries = {arm: plan.primary_lifter(arm) for arm in ARMS}
    assert primaries == {"3d_only": None, "fusion_scratch": None, "pretrained_2d": None, "ft_2d": "mlp_tiny/scratch",
                         "l2d_single": "mlp_tiny/scratch", "l2d_multi": "mlp_tiny/scratch",
                         "apt_pose": "apt_tiny/pretrain_pose", "mpt": "end_to_end"}

    def upstream(arm: str) -> list[str]:
        key = RunKey(stage="finetune_3d", arm=arm, model="hg1_tiny", dataset_2d="wild_mpii", dataset_3d="lab")
        return [k.path for k in plan.upstream(key)]

    assert upstream("fusion_scratch") == upstream("3d_only") == []
    assert upstream("l2d_multi") == ["pretrain_2d/hg1_tiny/wild_mpii/seed0",
                                     "train_lifter/mlp_tiny/scratch/none/lab/seed0",
                                     "train_lifter/graph_tiny/scratch/none/lab/seed0"]
    assert upstream("apt_pose") == ["pretrain_2d/hg1_tiny/wild_mpii/seed0", "pretrain_pose/apt_tiny/wild_mpii/lab/seed0",
                                    "train_lifter/apt_tiny/pretrain_pose/wild_mpii/lab/seed0"]
    assert upstream("mpt") == ["pretrain_2d/hg1_tiny/wild_mpii/seed0", "pretrain_pose/mpt_tiny/none/lab/seed0"]


@pytest.mark.parametrize("arm", list(ARMS))
def test_finetune_inputs_carry_exactly_the_upstream_runs_of_the_arm(arm):
    """Weights and compute priors follow the arms table; a lifter from pose pre-training carries its prior."""
    plan = Plan(fixture_config(arms=list(ARMS)))
    key = RunKey(stage="finetune_3d", arm=arm, model="hg1_tiny", dataset_2d="wild_mpii", dataset_3d="lab", seed=1)
    job = plan.training_job(key)
    upstream = plan.upstream(key)
    R = "results/fixture"
    assert ("init_weights" in job.inputs) == (ARMS[arm].detector_init == "pretrain_2d")
    carried = {u.lifter for u in upstream if u.init == "pretrain_pose"}
    want = [f"{R}/{u.path}/metrics.json" for u in upstream if not (u.stage == "pretrain_pose" and u.lifter in carried)]
    assert job.inputs.get("prior_metrics", []) == want
    assert set(job.inputs) - {"train_3d", "val_3d", "train_2d"} <= set(FLAGS)
    flags = shlex.split(job.args)
    assert flags.count("--prior-metrics") == len(want) and flags.count("--guide-lifter") == len(
        job.inputs.get("guide_lifters", []))


def test_input_arguments_come_from_one_table():
    args = input_args({"train_3d": "a b.h5", "guide_lifters": ["x.pt", "y.pt"], "tests": ["t.h5"]})
    assert shlex.split(args) == ["--train-3d", "a b.h5", "--guide-lifter", "x.pt", "--guide-lifter", "y.pt"]


def test_evaluation_job_pairs_every_test_set_with_its_output():
    plan = Plan(fixture_config(arms=["mpt"]))
    key = next(k for k in plan.runs() if k.stage == "finetune_3d")
    job = plan.evaluation_job(key)
    args = shlex.split(job.args)
    tests = [args[i + 1] for i, a in enumerate(args) if a == "--test"]
    outs = [args[i + 1] for i, a in enumerate(args) if a == "--out"]
    assert outs == list(job.outputs) and len(tests) == len(outs) == len(plan.test_sets())
    assert [Path(o).stem for o in outs] == [Path(t).parent.name + "_" + Path(t).stem for t in tests]
    lifters = [a.split("=", 1)[0] for i, a in enumerate(args) if i and args[i - 1] == "--lifter"]
    assert lifters == job.spec["lifters"] and job.spec["primary"] == "end_to_end"


def test_plan_parses_without_torch():
    """The modules the Snakefile imports pull in no torch (Snakemake parses the workflow per job)."""
    import subprocess
    import sys

    code = ("import sys; import pose_study.config, pose_study.plan, pose_study.presets, pose_study.arms, "
            "pose_study.resources; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout


def test_study_yaml_is_plain_data():
    """Specs are JSON-able plain data: what travels in params equals what the stage reads back."""
    plan = Plan(shipped("smoke"))
    for job in plan.jobs():
        if job.spec is not None:
            assert yaml.safe_load(yaml.safe_dump(job.spec)) == job.spec


def _loop(plan: Plan, key: RunKey, cls: type) -> object:
    return spec_from_dict(cls, plan.spec(key), where=key.stage).loop


LIFTER = RunKey(stage="train_lifter", lifter="mlp_tiny", init="scratch", dataset_3d="lab", seed=3)
POSE = RunKey(stage="pretrain_pose", lifter="apt_tiny", dataset_3d="lab", seed=3)
DETECTOR = RunKey(stage="pretrain_2d", model="hg1_tiny", dataset_2d="wild_mpii", seed=3)


def test_pose_stages_keep_their_loop_defaults_under_a_partial_loop():
    data = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    data["train_lifter"]["loop"] = {"eval_every": 7}
    data.pop("pretrain_pose")
    plan = Plan(cfg.validate_config(data))
    lifter, pose = _loop(plan, LIFTER, TrainLifterSpec), _loop(plan, POSE, PretrainPoseSpec)
    detector = _loop(plan, DETECTOR, Pretrain2DSpec)
    assert (lifter.eval_every, lifter.batch_size, lifter.grad_clip, lifter.heatmap_sigma, lifter.seed) == \
        (7, 256, 1.0, 2.0, 3)  # pose stages read heatmaps at the detector's σ
    assert (pose.batch_size, pose.grad_clip, pose.eval_every, pose.checkpoint_every) == (256, 1.0, 200, 500)
    assert (detector.grad_clip, detector.heatmap_sigma, detector.lr_schedule, detector.warmup) == \
        (None, 2.0, "step", 0.0)


def test_schema_loop_defaults_equal_the_stage_specs_defaults():
    from dataclasses import replace

    from pose_study.stages._pose_training import pose_loop
    from pose_study.train.loop import LoopSpec

    data = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    for stage in ("pretrain_2d", "finetune_3d", "train_lifter", "pretrain_pose"):
        data[stage].pop("loop")
    plan = Plan(cfg.validate_config(data))
    at = {"seed": 3, "device": plan.config["device"]}
    assert _loop(plan, DETECTOR, Pretrain2DSpec) == replace(LoopSpec(), **at)
    assert _loop(plan, LIFTER, TrainLifterSpec) == replace(pose_loop(), **at)
    assert _loop(plan, POSE, PretrainPoseSpec) == replace(pose_loop(), **at)


def test_every_arm_runs_the_seed_steps_and_only_depth_arms_have_a_geometric_phase():
    plan = Plan(shipped("smoke"))
    s = plan.config["finetune_3d"]
    for arm in ARMS:
        spec = plan.spec(RunKey(stage="finetune_3d", arm=arm, model="hg1_tiny", dataset_2d="wild_mpii",
                                dataset_3d="lab"))
        assert spec["steps"] == s["fusion_steps"] + s["geometric_steps"]
        assert spec["geometric_steps"] == (s["geometric_steps"] if ARMS[arm].objective == "depth" else 0)
    with pytest.raises(ValueError, match="has no geometric phase"):
        spec_from_dict(Finetune3DSpec, {"model": "hg1_tiny", "arm": "ft_2d", "steps": 6, "geometric_steps": 2})


def test_imagenet_backbones_are_downloaded_and_start_every_resnet_run_alike():
    plan = Plan(shipped("paper"))
    resnets = [m for m in plan.models if m.startswith("resnet")]
    assert plan.weight_entries() == [f"imagenet_{m}" for m in resnets]
    downloads = {job.outputs[0]: job.spec for job in plan.data_jobs() if job.rule == "download"}
    manifest = "results/paper/data/imagenet_resnet50/download.json"
    assert downloads[manifest] == {"dataset": "imagenet_resnet50", "root": "data/weights/imagenet_resnet50"}
    for key in plan.runs():
        if key.model not in resnets or (key.stage == "finetune_3d" and ARMS[key.arm].detector_init != "scratch"):
            continue
        job = plan.training_job(key)
        assert job.spec["pretrained_backbone"] == "data/weights/imagenet_resnet50/resnet50-0676ba61.pth" \
            or key.model != "resnet50"
        assert job.inputs["backbone"] == f"results/paper/data/imagenet_{key.model}/download.json"
    hourglass = RunKey(stage="pretrain_2d", model="hg2", dataset_2d="mpii")
    assert plan.spec(hourglass)["pretrained_backbone"] is None


def test_imagenet_weights_only_for_resnets():
    data = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    data["model_settings"] = {"hg1_tiny": {"pretrained_backbone": "imagenet"}}
    with pytest.raises(ValueError, match=r"model_settings.hg1_tiny.pretrained_backbone is 'imagenet'.*ResNet"):
        cfg.validate_config(data)


def test_the_baseline_reads_no_2d_data_and_its_budget_is_the_compared_runs_totals():
    plan = Plan(fixture_config(arms=["3d_only", "fusion_scratch", "pretrained_2d"]))
    key = RunKey(stage="finetune_3d", arm="3d_only", model="hg1_tiny", dataset_2d="wild_mpii", dataset_3d="lab",
                 seed=1)
    job = plan.training_job(key)
    assert "train_2d" not in job.inputs and "--train-2d" not in shlex.split(job.args)
    assert job.inputs["budget_metrics"] == [f"results/fixture/finetune_3d/{arm}/hg1_tiny/wild_mpii/lab/seed1/metrics.json"
                                            for arm in ("fusion_scratch", "pretrained_2d")]
    assert shlex.split(job.args).count("--budget-metrics") == 2
    assert job.spec["budget"] == "compute_matched" and "baseline_budget" not in job.spec
    for arm in ("fusion_scratch", "pretrained_2d"):
        other = plan.training_job(RunKey(**{**key.__dict__, "arm": arm}))
        assert other.spec["budget"] == "steps" and "budget_metrics" not in other.inputs and "train_2d" in other.inputs

    by_steps = copy.deepcopy(plan.config)
    by_steps["finetune_3d"]["baseline_budget"] = "steps"
    job = Plan(by_steps).training_job(key)
    assert job.spec["budget"] == "steps" and "budget_metrics" not in job.inputs
    alone = Plan(fixture_config(arms=["3d_only"]))  # nothing to match: it runs its steps
    assert alone.spec(key)["budget"] == "steps" and alone.compared_runs(key) == []


def test_costlier_models_train_first():
    # the study's jobs start with its longest chains: hg4 before hg3 before hg2, whatever the config's order
    data = cfg.load_config(Path(__file__).resolve().parents[2] / "config" / "synthetic.yaml")
    data["models"] = ["hg4_small", "hg2_small", "hg3_small"]
    plan = Plan(data)
    assert [plan.priority(m) for m in ("hg2_small", "hg3_small", "hg4_small")] == [1, 2, 3]
    data["models"] = ["resnet18", "hg2", "resnet152", "resnet50"]
    plan = Plan(data)
    assert sorted(data["models"], key=plan.priority) == ["resnet18", "resnet50", "hg2", "resnet152"]
