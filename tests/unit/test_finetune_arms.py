"""Every arm's ``finetune_3d`` run on the tiny synthetic world: outputs, compute, inputs, resume."""

from __future__ import annotations

import argparse
import dataclasses
import csv
import json
import os
import signal
from pathlib import Path

import pytest
import torch

from pose_study import models
from pose_study._io import write_json
from pose_study._spec import spec_from_dict
from pose_study.arms import ARMS
from pose_study.lifters import build_lifter, load_lifter, save_lifter
from pose_study.stages import _training, finetune_3d
from pose_study.train import loop
from pose_study.train.checkpoint import load_weights, save_weights

LOOP = {"batch_size": 8, "eval_every": 3, "log_every": 3, "checkpoint_every": 3, "eval_samples": 16}
LIFTER_ARMS = [a for a in ARMS if ARMS[a].objective != "depth"]
PRIOR_FLOPS = {"pre": 1e9, "mlp_tiny": 2e8, "graph_tiny": 3e8, "mpt_tiny": 4e8}


def spec(arm: str, steps: tuple[int, int] = (4, 2), **loop_settings) -> finetune_3d.Finetune3DSpec:
    return spec_from_dict(finetune_3d.Finetune3DSpec, {
        "model": "hg1_tiny", "arm": arm, "steps": steps[0] + steps[1],
        "geometric_steps": steps[1] if getattr(ARMS.get(arm), "objective", "depth") == "depth" else 0, "lr": 1e-3,
        "loop": {**LOOP, **loop_settings}})


def outputs(root: Path) -> _training.TrainOutputs:
    return _training.TrainOutputs(root / "model.pt", root / "metrics.json", root / "curve.csv", root / "ckpt")


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> dict[str, Path]:
    """Untrained stand-ins for the upstream runs: weight files and metrics.json with compute totals."""
    root = tmp_path_factory.mktemp("upstream")
    torch.manual_seed(0)
    save_weights(root / "pre.pt", models.build_model("hg1_tiny"), "hg1_tiny")
    paths = {"pre": root / "pre.pt"}
    for name in ("mlp_tiny", "graph_tiny", "mpt_tiny"):
        save_lifter(root / f"{name}.pt", build_lifter(name))
        paths[name] = root / f"{name}.pt"
    for name, flops in PRIOR_FLOPS.items():
        paths[f"{name}_metrics"] = root / f"{name}.json"
        write_json(paths[f"{name}_metrics"], {"compute_total": {
            "wall_seconds": 1.0, "train_samples": 10, "train_flops": flops, "device_hours": 0.5}})
    return paths


def arm_inputs(arm: str, up: dict[str, Path]) -> dict:
    """``finetune_3d.run`` keyword arguments of ``arm``, as the workflow gives them."""
    a = ARMS[arm]
    guides = {"guided": ["mlp_tiny", "graph_tiny"] if a.guides == "all" else ["mlp_tiny"],
              "heatmap": ["mlp_tiny"]}.get(a.objective, [])
    lifter_init = "mpt_tiny" if a.objective == "end_to_end" else None
    pre = a.detector_init == "pretrain_2d"
    priors = (["pre"] if pre else []) + guides + ([lifter_init] if lifter_init else [])
    return {"init_weights": up["pre"] if pre else None, "guide_lifters": [up[g] for g in guides],
            "lifter_init": up[lifter_init] if lifter_init else None,
            "prior_metrics": [up[f"{p}_metrics"] for p in priors], "_priors": priors, "_guides": guides}


def run_arm(arm: str, world: dict, up: dict, root: Path, steps: tuple[int, int] = (4, 2), **loop_settings) -> dict:
    kwargs = {k: v for k, v in arm_inputs(arm, up).items() if not k.startswith("_")}
    train_2d = world["wild_train"] if ARMS[arm].uses_2d else None
    return finetune_3d.run(spec(arm, steps, **loop_settings), world["lab_train"], world["lab_val"],
                           train_2d, outputs(root), **kwargs)


@pytest.fixture(scope="module")
def runs(tiny_world, upstream, tmp_path_factory) -> dict[str, Path]:
    out = {}
    for arm in ARMS:
        out[arm] = tmp_path_factory.mktemp(arm)
        run_arm(arm, tiny_world, upstream, out[arm])
    return out


def read_curve(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("arm", list(ARMS))
def test_every_arm_writes_model_metrics_and_curve(runs, upstream, arm):
    root = runs[arm]
    metrics = json.loads((root / "metrics.json").read_text())
    expected = arm_inputs(arm, upstream)
    assert metrics["arm"] == arm and metrics["final"]["metric"] == "mpjpe_mm"
    assert metrics["lifters"] == expected["_guides"]
    assert metrics["compute"]["steps"] == 6
    phases = [row["phase"] for row in read_curve(root / "curve.csv")]
    if not ARMS[arm].uses_2d:
        assert phases[0] == "exclusive" and phases[-1] == "exclusive_low_lr"
    elif ARMS[arm].objective == "depth":
        assert phases[0] == "fusion" and phases[-1] == "geometric"
    else:
        assert set(phases) == {ARMS[arm].objective}
    assert load_weights(root / "model.pt", models.build_model("hg1_tiny"), "hg1_tiny") is None
    assert json.loads((root / "spec.json").read_text())["arm"] == arm


@pytest.mark.parametrize("arm", list(ARMS))
def test_compute_total_adds_every_prior_run(runs, upstream, arm):
    metrics = json.loads((runs[arm] / "metrics.json").read_text())
    priors = arm_inputs(arm, upstream)["_priors"]
    own, total = metrics["compute"], metrics["compute_total"]
    assert total["train_flops"] == pytest.approx(own["train_flops"] + sum(PRIOR_FLOPS[p] for p in priors))
    assert total["train_samples"] == own["train_samples"] + 10 * len(priors)


def test_lifters_in_the_loss_count_in_the_training_flops(runs):
    flops = {arm: json.loads((runs[arm] / "metrics.json").read_text())["forward_flops_per_image"]
             for arm in ("ft_2d", "l2d_single", "l2d_multi", "mpt")}
    assert flops["ft_2d"] < flops["l2d_single"] < flops["l2d_multi"]
    assert flops["mpt"] > flops["ft_2d"]  # the end-to-end lifter is part of the network


def test_mpt_model_holds_the_trained_lifter(runs, upstream):
    trained = load_lifter(runs["mpt"] / "model.pt")
    initial = load_lifter(upstream["mpt_tiny"])
    assert trained.preset_name == "mpt_tiny"
    changed = [k for k, v in trained.state_dict().items() if not torch.equal(v, initial.state_dict()[k])]
    assert changed, "the end-to-end lifter was not trained"
    with pytest.raises(ValueError, match="holds no lifter"):
        load_lifter(runs["l2d_single"] / "model.pt")


# --- inputs each arm needs ------------------------------------------------------------------------

P = Path("x.pt")


@pytest.mark.parametrize(("arm", "init", "guides", "lifter_init", "flag"), [
    ("pretrained_2d", None, [], None, "needs --init-weights"),
    ("fusion_scratch", P, [], None, "takes no --init-weights"),
    ("fusion_scratch", None, [P], None, "takes no --guide-lifter"),
    ("ft_2d", P, [], None, "needs exactly one --guide-lifter"),
    ("apt_pose", P, [P, P], None, "needs exactly one --guide-lifter"),
    ("l2d_single", P, [P, P], None, "needs exactly one --guide-lifter"),
    ("l2d_multi", P, [], None, "needs at least one --guide-lifter"),
    ("mpt", P, [], None, "needs --lifter-init"),
    ("mpt", P, [P], P, "takes no --guide-lifter"),
    ("l2d_multi", P, [P], P, "takes no --lifter-init"),
])
def test_missing_or_extra_inputs_name_the_flag(arm, init, guides, lifter_init, flag):
    with pytest.raises(ValueError, match=flag):
        finetune_3d.check_inputs(ARMS[arm], init, guides, lifter_init, train_2d=P)


def test_l2d_multi_accepts_a_single_guide_lifter():
    finetune_3d.check_inputs(ARMS["l2d_multi"], P, [P], None, train_2d=P)


@pytest.mark.parametrize(("arm", "train_2d", "budget", "budget_metrics", "flag"), [
    ("3d_only", P, "steps", [], "3d_only' takes no --train-2d"),
    ("fusion_scratch", None, "steps", [], "needs --train-2d"),
    ("3d_only", None, "compute_matched", [], "needs --budget-metrics"),
    ("3d_only", None, "steps", [P], "takes no .* --budget-metrics"),
])
def test_the_baseline_takes_no_2d_data_and_its_budget_needs_the_compared_runs(arm, train_2d, budget,
                                                                             budget_metrics, flag):
    with pytest.raises(ValueError, match=flag):
        finetune_3d.check_inputs(ARMS[arm], None, [], None, train_2d, budget, budget_metrics)
    finetune_3d.check_inputs(ARMS["3d_only"], None, [], None, None, "compute_matched", [P])


def test_run_checks_its_inputs_before_training(tiny_world, tmp_path):
    with pytest.raises(ValueError, match="--guide-lifter"):
        finetune_3d.run(spec("l2d_multi"), tiny_world["lab_train"], tiny_world["lab_val"], tiny_world["wild_train"],
                        outputs(tmp_path), init_weights=P)
    assert not (tmp_path / "spec.json").exists()


def test_unknown_arm_names_the_choices():
    with pytest.raises(ValueError, match="arm must be one of"):
        spec("pretrain_2d")


def test_cli_flags_are_repeatable():
    parser = argparse.ArgumentParser()
    finetune_3d.configure(parser)
    args = parser.parse_args(["--spec", "{}", "--train-3d", "a", "--val-3d", "b", "--train-2d", "c",
                              "--guide-lifter", "g1", "--guide-lifter", "g2", "--prior-metrics", "m1",
                              "--prior-metrics", "m2", "--lifter-init", "l", "--init-weights", "w",
                              "--model-out", "o", "--metrics-out", "o", "--curve-out", "o", "--checkpoint-dir", "o"])
    assert args.guide_lifter == [Path("g1"), Path("g2")] and args.prior_metrics == [Path("m1"), Path("m2")]
    assert args.lifter_init == Path("l") and args.init_weights == Path("w")


# --- resume ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("arm", ["l2d_multi", "mpt"])
def test_interrupted_lifter_arm_resumes_and_matches_the_uninterrupted_run(tiny_world, upstream, tmp_path,
                                                                           monkeypatch, arm):
    settings = {"steps": (8, 4), "eval_every": 4, "log_every": 2, "checkpoint_every": 4}
    whole = run_arm(arm, tiny_world, upstream, tmp_path / "whole", **settings)
    real_log = loop._log_step

    def sigterm_at_step_6(phase, progress, *args):
        real_log(phase, progress, *args)
        if progress.step == 6:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(loop, "_log_step", sigterm_at_step_6)
    with pytest.raises(loop.TrainingInterrupted, match="SIGTERM at step 6"):
        run_arm(arm, tiny_world, upstream, tmp_path / "cut", **settings)
    monkeypatch.setattr(loop, "_log_step", real_log)
    state = torch.load(tmp_path / "cut" / "ckpt" / "last.pt", weights_only=True)
    assert state["progress"]["step"] == 6 and len(state["tasks"]) == 1
    resumed = run_arm(arm, tiny_world, upstream, tmp_path / "cut", **settings)
    curves = [[float(r["val_value"]) for r in read_curve(tmp_path / d / "curve.csv")] for d in ("whole", "cut")]
    assert curves[1] == pytest.approx(curves[0], rel=1e-6)
    assert len(curves[0]) == 3 and resumed["compute"]["steps"] == 12
    assert resumed["final"]["value"] == pytest.approx(whole["final"]["value"], rel=1e-6)
    a, b = (torch.load(tmp_path / d / "model.pt", weights_only=True) for d in ("whole", "cut"))
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    if "lifter" in a:
        assert all(torch.equal(a["lifter"]["state_dict"][k], v) for k, v in b["lifter"]["state_dict"].items())


# --- the 3d_only baseline: 3D data alone, trained to the compared arms' compute ---------------------


def test_3d_only_batches_hold_only_3d_samples(tiny_world):
    """Every phase of the baseline draws its whole batch from the 3D training set."""
    data = _training.load_data(tiny_world["lab_val"], torch.device("cpu"), train_3d=tiny_world["lab_train"])
    phases = spec("3d_only", (4, 2)).phases(data)
    assert [(p.name, p.steps) for p in phases] == [("exclusive", 4), ("exclusive_low_lr", 2)]
    assert [p.task.objective.weights for p in phases] == [finetune_3d.LossWeights(1.0), finetune_3d.LossWeights(0.1)]
    generator = torch.Generator().manual_seed(0)
    for phase in phases:
        batch = phase.task.draw(generator)
        assert batch.is_3d.all() and batch.valid_3d.any(dim=1).all()


@pytest.mark.parametrize(("budget", "per_step", "steps", "geometric"), [
    (1000.0, 10.0, 100, 20), (1001.0, 10.0, 101, 20), (35.0, 10.0, 4, 1)])
def test_a_compute_matched_run_takes_the_fewest_steps_that_reach_its_budget(budget, per_step, steps, geometric):
    base = spec("3d_only", (8, 2))  # the planned proportion: a fifth of the run in the low-LR phase
    matched = base.matched(budget, per_step)
    assert (matched.steps, matched.geometric_steps, matched.budget_flops) == (steps, geometric, budget)
    assert matched.steps * per_step >= budget > (matched.steps - 1) * per_step


def test_the_baseline_trains_until_its_curve_reaches_every_compared_runs_total(tiny_world, upstream, runs,
                                                                               tmp_path):
    """``--budget-metrics`` of the other arms: the baseline's curve ends at or past the largest total."""
    compared = [runs[arm] / "metrics.json" for arm in ARMS if arm != "3d_only"]
    totals = [json.loads(p.read_text())["compute_total"]["train_flops"] for p in compared]
    matched = spec_from_dict(finetune_3d.Finetune3DSpec, {**spec_record_of(spec("3d_only")), "budget": "compute_matched"})
    metrics = finetune_3d.run(matched, tiny_world["lab_train"], tiny_world["lab_val"], None, outputs(tmp_path),
                              budget_metrics=compared)
    per_step = 3 * metrics["forward_flops_per_image"] * LOOP["batch_size"]
    curve = read_curve(tmp_path / "curve.csv")
    assert float(curve[-1]["flops_total"]) >= max(totals) > float(curve[-1]["flops_total"]) - per_step
    assert all(float(row["flops_total"]) < max(totals) for row in curve[:-1])
    written = json.loads((tmp_path / "spec.json").read_text())
    assert written["budget_flops"] == max(totals) and written["steps"] == metrics["compute"]["steps"] > 6


def spec_record_of(s: finetune_3d.Finetune3DSpec) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(s)))
