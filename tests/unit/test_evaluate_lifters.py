"""The evaluate stage with lifters: every lifter on detected and on ground-truth 2D, the primary lifter,
sequence windows over clips, heatmap lifters, and the --lifter flag checks."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pose_study import models
from pose_study.data import codecs
from pose_study.data.formats import PoseSplit, SplitInfo, write_split
from pose_study.lifters import build_lifter, save_lifter
from pose_study.data.poses import sequence_windows
from pose_study.lifters.inputs import normalise_2d, relative_3d
from pose_study.metrics import mpjpe
from pose_study.skeletons import CANONICAL, ROOT
from pose_study.stages import evaluate
from pose_study.stages.evaluate import EvaluateSpec

CROP, N, K, MODEL = 64, 12, CANONICAL.num_joints, "hg1_tiny"
FOCAL = 120.0


class Oracle(nn.Module):
    """A stand-in lifter that knows the test split: it looks each input pose up among the true 2D poses
    (nearest normalised coordinates, or nearest soft-argmax peaks for heatmaps) and returns that sample's
    root-relative 3D, taken from window position ``pick`` for sequences."""

    def __init__(self, gt_2d: torch.Tensor, gt_3d_mm: torch.Tensor, frames: int = 1, input_kind: str = "coords",
                 pick: int | None = None) -> None:
        super().__init__()
        valid = torch.ones(gt_2d.shape[:2], dtype=torch.bool)
        self.register_buffer("keys", normalise_2d(gt_2d, valid).flatten(1))
        self.register_buffer("peaks", gt_2d.flatten(1))
        self.register_buffer("poses", relative_3d(gt_3d_mm, valid))
        self.weight = nn.Parameter(torch.zeros(()))  # lift() reads the device of the first parameter
        self.frames, self.input_kind, self.preset_name = frames, input_kind, "oracle"
        self.pick = frames // 2 if pick is None else pick
        self.seen_frames: list[int] = []

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if self.input_kind == "heatmaps":
            crop = (codecs.soft_argmax(x) + 0.5) * 4 - 0.5
            return self.poses[torch.cdist(crop.flatten(1), self.peaks).argmin(1)]
        self.seen_frames.append(x.shape[1])
        return self.poses[torch.cdist(x[:, self.pick].flatten(1), self.keys).argmin(1)]


def _poses(rng: np.random.Generator) -> np.ndarray:
    """[N, K, 3] mm: a random walk per clip (3 clips of 4 frames), stored in shuffled order."""
    base = rng.normal(0, 250, (3, 1, K, 3)) + rng.normal(0, 40, (3, 4, K, 3)).cumsum(1)
    poses = base.reshape(N, K, 3)
    poses[..., 2] += 4000
    return poses


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("evaluate_lifters")
    rng = np.random.default_rng(0)
    order = rng.permutation(N)
    joints_3d = _poses(rng)[order]
    clip = np.array([f"c{i // 4}" for i in range(N)], dtype=object)[order]
    frame = np.tile(np.arange(4), 3)[order]
    intrinsics = np.tile(np.array([[FOCAL, 0, CROP / 2], [0, FOCAL, CROP / 2], [0, 0, 1]]), (N, 1, 1))
    uvw = np.einsum("nij,nkj->nki", intrinsics, joints_3d)
    joints_2d = uvw[..., :2] / uvw[..., 2:]
    valid = np.ones((N, K), bool)
    split = PoseSplit(info=SplitInfo("lab", "test", "h36m17", "synthetic", "test"),
                      images=rng.integers(0, 255, (N, CROP, CROP, 3), dtype=np.uint8),
                      joints_2d=joints_2d.astype(np.float32), joints_2d_valid=valid,
                      center=np.full((N, 2), CROP / 2, np.float32), scale=np.full(N, CROP, np.float32),
                      joints_3d=joints_3d.astype(np.float32), joints_3d_valid=valid.copy(),
                      intrinsics=intrinsics.astype(np.float32), clip=clip, frame=frame)
    write_split(tmp / "lab" / "test.h5", split)
    torch.manual_seed(0)
    model = models.build_model(MODEL).eval()
    weights = tmp / "model.pt"
    torch.save({"preset": MODEL, "state_dict": model.state_dict()}, weights)
    gt_2d = torch.as_tensor(split.joints_2d)
    gt_3d = torch.as_tensor(split.joints_3d)
    return {"tmp": tmp, "test": tmp / "lab" / "test.h5", "model": model, "weights": weights, "split": split,
            "gt_2d": gt_2d, "gt_3d": gt_3d}


def _evaluate(setup: dict, lifters: dict[str, nn.Module], primary: str | None = None) -> dict:
    spec = EvaluateSpec(model=MODEL, run="finetune_3d/x", batch_size=5, device="cpu", lifters=tuple(lifters),
                        primary=primary)
    return evaluate.evaluate_split(setup["model"], spec, setup["test"], None, None, "lab_test", lifters=lifters)


def test_an_exact_lifter_scores_zero_on_ground_truth_2d(setup):
    oracle = Oracle(setup["gt_2d"], setup["gt_3d"])
    doc = _evaluate(setup, {"oracle/scratch": oracle})
    scores = doc["lifters"]["oracle/scratch"]
    assert set(scores) == {"detected", "gt_2d", "detected_argmax_refined"}
    assert scores["gt_2d"]["mpjpe"] == pytest.approx(0.0, abs=1e-3)
    assert scores["gt_2d"]["pck3d"] == pytest.approx(1.0) and "error_2d_px" not in scores["gt_2d"]
    assert scores["detected"]["mpjpe"] > 1.0  # an untrained detector: its 2D is not the truth
    assert doc["metrics"]["mpjpe"]["value"] > 0 and "gt_2d_lifting" in doc["baselines"]


def test_the_primary_lifter_is_the_runs_own_prediction(setup):
    oracle = Oracle(setup["gt_2d"], setup["gt_3d"])
    plain = _evaluate(setup, {"oracle/scratch": oracle})
    doc = _evaluate(setup, {"oracle/scratch": oracle}, primary="oracle/scratch")
    assert doc["baselines"]["gt_2d_lifting"]["mpjpe"] == pytest.approx(0.0, abs=1e-3)
    assert doc["metrics"]["mpjpe"]["value"] == pytest.approx(doc["lifters"]["oracle/scratch"]["detected"]["mpjpe"])
    assert doc["metrics"]["mpjpe"]["value"] != pytest.approx(plain["metrics"]["mpjpe"]["value"])
    assert doc["metrics"]["error_2d_px"] == plain["metrics"]["error_2d_px"]  # 2D stays the standard decode


def test_sequence_lifters_read_windows_within_the_clip(setup):
    centre, previous = (Oracle(setup["gt_2d"], setup["gt_3d"], frames=3, pick=p) for p in (1, 0))
    doc = _evaluate(setup, {"seq/centre": centre, "seq/previous": previous})
    assert set(centre.seen_frames) == {3}
    assert doc["lifters"]["seq/centre"]["gt_2d"]["mpjpe"] == pytest.approx(0.0, abs=1e-3)
    split = setup["split"]
    before = sequence_windows(split.clip, split.frame, 3)[:, 0]
    truth = split.joints_3d.astype(np.float64)
    shifted = truth[before] - truth[before][:, ROOT:ROOT + 1] + truth[:, ROOT:ROOT + 1]
    want = mpjpe(shifted, truth, split.joints_3d_valid).value
    assert want > 10 and doc["lifters"]["seq/previous"]["gt_2d"]["mpjpe"] == pytest.approx(want, abs=1e-2)


class FlatNet(nn.Module):
    """A detector whose heatmaps and depth maps are all zero: soft-argmax reads the map centre."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, images: torch.Tensor) -> dict:
        maps = torch.zeros(len(images), K, CROP // 4, CROP // 4) + self.weight
        return {"heatmaps": maps, "depth": maps, "stacks": [(maps, maps)]}


def test_every_arm_gets_both_2d_decoders_scored(setup):
    spec = EvaluateSpec(model=MODEL, run="finetune_3d/x", batch_size=5, device="cpu")
    doc = evaluate.evaluate_split(FlatNet().eval(), spec, setup["test"], None, None, "lab_test")
    assert doc["decoder"] == "argmax_refined" and set(doc["decoders"]) == {"argmax_refined", "soft_argmax"}
    assert doc["decoders"]["argmax_refined"]["error_2d_px"] == doc["metrics"]["error_2d_px"]["value"]
    centre = np.full(2, (CROP // 4 - 1) / 2 * 4 + 1.5)  # heatmap px 7.5 → crop px 31.5
    want = np.linalg.norm(setup["split"].joints_2d - centre, axis=-1).mean()
    assert want > 5 and doc["decoders"]["soft_argmax"]["error_2d_px"] == pytest.approx(want, abs=1e-3)
    assert doc["decoders"]["argmax_refined"]["error_2d_px"] != pytest.approx(want, abs=1.0)


def test_heatmap_lifters_get_gaussian_maps_of_the_true_joints(setup):
    oracle = Oracle(setup["gt_2d"], setup["gt_3d"], input_kind="heatmaps")
    doc = _evaluate(setup, {"maps/zero_shot": oracle})
    assert doc["lifters"]["maps/zero_shot"]["gt_2d"]["mpjpe"] == pytest.approx(0.0, abs=1e-3)


def test_gt_heatmaps_peak_at_the_joint():
    maps = evaluate.gt_heatmaps(np.array([[[21.5, 41.5]]]), np.array([[True]]), (16, 16), 0.75)
    assert maps.shape == (1, 1, 16, 16) and np.unravel_index(maps.argmax(), maps.shape[-2:]) == (10, 5)
    assert maps.max() == pytest.approx(1.0)


def test_lifter_flag_names_must_match_the_spec(setup):
    spec = EvaluateSpec(model=MODEL, run="x", device="cpu", lifters=("a/scratch", "b/scratch"))
    given = [("b/scratch", Path("b.pt")), ("a/scratch", Path("a.pt"))]
    with pytest.raises(ValueError, match=r"--lifter names \['b/scratch', 'a/scratch'\] must be spec.lifters"):
        evaluate.load_lifters(spec, setup["weights"], given, torch.device("cpu"))
    with pytest.raises(ValueError, match="--lifter names"):
        evaluate.load_lifters(spec, setup["weights"], [], torch.device("cpu"))
    with pytest.raises(ValueError, match="spec.primary 'c/scratch' must be one of spec.lifters"):
        EvaluateSpec(model=MODEL, run="x", lifters=("a/scratch",), primary="c/scratch")


def test_command_line_with_a_real_lifter(setup):
    torch.manual_seed(0)
    lifter = build_lifter("mlp_tiny")
    save_lifter(setup["tmp"] / "mlp.pt", lifter)
    parser = argparse.ArgumentParser()
    evaluate.configure(parser)
    out = setup["tmp"] / "out" / "lab_test.json"
    spec = '{"model": "hg1_tiny", "run": "r", "device": "cpu", "lifters": ["mlp_tiny/scratch"]}'
    args = parser.parse_args(["--spec", spec, "--weights", str(setup["weights"]), "--test", str(setup["test"]),
                              "--out", str(out), "--lifter", f"mlp_tiny/scratch={setup['tmp'] / 'mlp.pt'}"])
    evaluate.main(args)
    doc = json.loads(out.read_text())
    assert set(doc["lifters"]) == {"mlp_tiny/scratch"} and doc["lifters"]["mlp_tiny/scratch"]["gt_2d"]["mpjpe"] > 0
    with pytest.raises(SystemExit):
        parser.parse_args(["--spec", spec, "--weights", "w", "--test", "t", "--out", "o", "--lifter", "no-path"])
