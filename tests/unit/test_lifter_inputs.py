"""Lifter inputs: normalisation, 3D targets, projections, sequence windows, batched lifting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from pose_study.data.poses import sequence_windows
from pose_study.lifters import build_lifter
from pose_study.lifters.inputs import (
    fit_weak_perspective,
    lift,
    lifter_input,
    normalise_2d,
    project,
    relative_3d,
    reproject,
)
from pose_study.skeletons import CANONICAL, ROOT

K = CANONICAL.num_joints


def random_pose_2d(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    joints = torch.rand(n, K, 2, generator=gen) * 64
    valid = torch.rand(n, K, generator=gen) > 0.25
    return joints, valid


def random_scene(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Poses 3-6 m in front of random pinhole cameras: ([n, K, 3] mm, [n, 3, 3] intrinsics)."""
    gen = torch.Generator().manual_seed(seed)
    root = torch.stack([torch.rand(n, generator=gen) * 1000 - 500, torch.rand(n, generator=gen) * 600 - 300,
                        3000 + torch.rand(n, generator=gen) * 3000], -1)
    joints = root[:, None] + (torch.rand(n, K, 3, generator=gen) - 0.5) * 1600
    joints[:, ROOT] = root
    intrinsics = torch.zeros(n, 3, 3)
    intrinsics[:, 0, 0] = 40 + torch.rand(n, generator=gen) * 80
    intrinsics[:, 1, 1] = intrinsics[:, 0, 0] * (0.9 + 0.2 * torch.rand(n, generator=gen))
    intrinsics[:, 0, 2], intrinsics[:, 1, 2] = 31.5 + torch.randn(n, generator=gen), 31.5
    intrinsics[:, 0, 1] = 0.1 * torch.randn(n, generator=gen)
    intrinsics[:, 2, 2] = 1
    return joints, intrinsics


# --- normalise_2d ------------------------------------------------------------------------------


def test_normalise_2d_invariant_to_translation_and_scale():
    joints, valid = random_pose_2d(8)
    moved = joints * 2.7 + torch.tensor([13.0, -4.0])
    torch.testing.assert_close(normalise_2d(moved, valid), normalise_2d(joints, valid), rtol=1e-5, atol=1e-5)


def test_normalise_2d_zeros_invalid_and_has_unit_rms():
    joints, valid = random_pose_2d(8)
    out = normalise_2d(joints, valid)
    assert torch.equal(out[~valid], torch.zeros_like(out[~valid]))
    rms = (out.square().sum((-2, -1)) / valid.sum(-1)).sqrt()
    torch.testing.assert_close(rms, torch.ones(8))


def test_normalise_2d_centre_is_root_else_mean():
    joints = torch.tensor([[[10.0, 10.0], [13.0, 14.0], [7.0, 6.0]]])  # root, +(3, 4), -(3, 4)
    valid = torch.ones(1, 3, dtype=torch.bool)
    unit = torch.tensor([[[0.0, 0.0], [0.6, 0.8], [-0.6, -0.8]]])
    torch.testing.assert_close(normalise_2d(joints, valid), unit * math.sqrt(3 / 2))  # RMS over 3 joints
    no_root = torch.tensor([[False, True, True]])  # centre (10, 10) = mean of the two others, RMS 5
    torch.testing.assert_close(normalise_2d(joints, no_root), unit)


def test_normalise_2d_keeps_leading_dims_and_survives_empty_poses():
    joints, valid = random_pose_2d(6)
    out = normalise_2d(joints.view(2, 3, K, 2), valid.view(2, 3, K))
    torch.testing.assert_close(out.view(6, K, 2), normalise_2d(joints, valid))
    assert torch.equal(normalise_2d(joints, torch.zeros_like(valid)), torch.zeros_like(joints))


# --- 3D targets and projections -------------------------------------------------------------------


def test_relative_3d_metres_root_zero_invalid_zero():
    joints, _ = random_scene(4)
    valid = torch.ones(4, K, dtype=torch.bool)
    valid[0, 5] = False
    valid[1, ROOT] = False
    rel = relative_3d(joints, valid)
    torch.testing.assert_close(rel[2:], (joints[2:] - joints[2:, ROOT : ROOT + 1]) / 1000)
    assert torch.equal(rel[:, ROOT], torch.zeros(4, 3))
    assert torch.equal(rel[0, 5], torch.zeros(3)) and torch.equal(rel[1], torch.zeros(K, 3))


def test_project_known_point():
    intrinsics = torch.tensor([[100.0, 0.0, 32.0], [0.0, 50.0, 16.0], [0.0, 0.0, 1.0]])
    point = torch.tensor([[200.0, -400.0, 2000.0]])
    torch.testing.assert_close(project(point, intrinsics), torch.tensor([[42.0, 6.0]]))


def test_reproject_ground_truth_is_exact():
    joints, intrinsics = random_scene(32, seed=1)
    valid = torch.ones(32, K, dtype=torch.bool)
    joints_2d = project(joints, intrinsics)
    again = reproject(relative_3d(joints, valid), joints[:, ROOT], intrinsics)
    torch.testing.assert_close(again, joints_2d, rtol=0, atol=1e-4)


def test_fit_weak_perspective_recovers_scale_and_translation():
    joints, _ = random_scene(6, seed=2)
    pose = relative_3d(joints, torch.ones(6, K, dtype=torch.bool))
    scale = torch.tensor([20.0, 35.0, 50.0, 12.5, 80.0, 41.0])[:, None, None]
    shift = torch.tensor([[31.5, 30.0], [10.0, 50.0], [0.0, 0.0], [-5.0, 12.0], [64.0, 64.0], [3.0, 2.0]])
    shift = shift[:, None]
    observed = scale * pose[..., :2] + shift
    valid = torch.rand(6, K, generator=torch.Generator().manual_seed(0)) > 0.3
    observed_with_noise_at_invalid = observed + 100.0 * (~valid)[..., None]
    fitted = fit_weak_perspective(pose, observed_with_noise_at_invalid, valid)
    torch.testing.assert_close(fitted, observed, rtol=0, atol=1e-4)


def test_fit_weak_perspective_degenerate_pose():
    pose = torch.zeros(1, K, 3)
    joints_2d = torch.full((1, K, 2), 7.0)
    fitted = fit_weak_perspective(pose, joints_2d, torch.ones(1, K, dtype=torch.bool))
    assert torch.equal(fitted, joints_2d)


# --- sequence windows -----------------------------------------------------------------------------


def test_sequence_windows_shuffled_clips_with_edge_replication():
    clip = np.array(["a"] * 4 + ["b"] * 3, dtype=object)
    frame = np.array([0, 1, 2, 3, 10, 11, 12])
    order = np.random.default_rng(0).permutation(7)
    windows = sequence_windows(clip[order], frame[order], 3)
    expected_by_frame = {("a", 0): (0, 0, 1), ("a", 1): (0, 1, 2), ("a", 2): (1, 2, 3), ("a", 3): (2, 3, 3),
                         ("b", 10): (10, 10, 11), ("b", 11): (10, 11, 12), ("b", 12): (11, 12, 12)}
    assert windows.shape == (7, 3) and windows.dtype == np.int64
    for row, (c, f) in enumerate(zip(clip[order], frame[order], strict=True)):
        assert all(clip[order][windows[row]] == c)
        assert tuple(frame[order][windows[row]]) == expected_by_frame[(c, f)]
    assert np.array_equal(windows[:, 1], np.arange(7))


def test_sequence_windows_longer_than_clip_and_length_one():
    windows = sequence_windows(["x", "x"], [5, 4], 5)
    assert windows.tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 0, 0]]  # row 1 (frame 4) comes first
    assert sequence_windows(["x", "y"], [0, 0], 1).tolist() == [[0], [1]]


@pytest.mark.parametrize("length", [0, 2, -1])
def test_sequence_windows_rejects_even_length(length):
    with pytest.raises(ValueError, match="odd"):
        sequence_windows(["a"], [0], length)


# --- lifter_input and lift ------------------------------------------------------------------------


def test_lifter_input_single_frame():
    lifter = build_lifter("mlp_tiny")
    joints, valid = random_pose_2d(5)
    x, v = lifter_input(lifter, joints, valid)
    assert x.shape == (5, 1, K, 2) and v.shape == (5, 1, K) and v.dtype == torch.bool
    torch.testing.assert_close(x[:, 0], normalise_2d(joints, valid))


def test_lift_shape_and_batch_size_invariance():
    torch.manual_seed(0)
    lifter = build_lifter("graph_tiny")
    lifter.train()
    joints, valid = random_pose_2d(10, seed=3)
    small, large = lift(lifter, joints, valid, batch_size=3), lift(lifter, joints, valid, batch_size=1024)
    assert small.shape == (10, K, 3) and lifter.training
    torch.testing.assert_close(small, large, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(large, lifter.eval()(*lifter_input(lifter, joints, valid)))


class FrameStub(nn.Module):
    """A stand-in sequence or heatmap lifter: returns its input's frames summed with weights 1, 10, 100, …
    (coords) or each map's total (heatmaps), so tests can read back what it was given."""

    def __init__(self, input_kind: str, frames: int) -> None:
        super().__init__()
        self.input_kind, self.frames, self.preset_name = input_kind, frames, "stub"
        self.unit = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if self.input_kind == "heatmaps":
            return torch.stack([x.sum((-2, -1)), valid.float(), torch.zeros_like(valid, dtype=x.dtype)], -1)
        weights = 10.0 ** torch.arange(self.frames, dtype=x.dtype)
        summed = (x * weights[:, None, None]).sum(1) * self.unit
        return torch.cat([summed, (valid * weights[:, None]).sum(1)[..., None]], -1)


def test_lifter_input_and_lift_gather_windows():
    joints, valid = random_pose_2d(7, seed=4)
    windows = torch.as_tensor(sequence_windows(["a"] * 4 + ["b"] * 3, [3, 2, 1, 0, 0, 1, 2], 3))
    stub = FrameStub("coords", 3)
    x, v = lifter_input(stub, joints, valid, windows=windows)
    normalised = normalise_2d(joints, valid)
    assert x.shape == (7, 3, K, 2) and torch.equal(x, normalised[windows]) and torch.equal(v, valid[windows])
    assert torch.equal(x[0, 1], normalised[0]) and torch.equal(x[0, 0], normalised[1])  # frame 3 follows 2
    expected = stub(x, v).detach()
    torch.testing.assert_close(lift(stub, joints, valid, windows=windows, batch_size=2), expected)
    with pytest.raises(ValueError, match="windows"):
        lift(stub, joints, valid)
    with pytest.raises(ValueError, match="windows"):
        lifter_input(stub, joints, valid, windows=windows[:, :1])


def test_lifter_input_and_lift_heatmaps():
    joints, valid = random_pose_2d(5, seed=5)
    heatmaps = torch.rand(5, K, 4, 4)
    stub = FrameStub("heatmaps", 1)
    x, v = lifter_input(stub, joints, valid, heatmaps=heatmaps)
    assert x is heatmaps and torch.equal(v, valid)
    lifted = lift(stub, joints, valid, heatmaps=heatmaps, batch_size=2)
    torch.testing.assert_close(lifted[..., 0], heatmaps.sum((-2, -1)))
    with pytest.raises(ValueError, match="heatmaps"):
        lift(stub, joints, valid)


def test_lift_rejects_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        lift(build_lifter("mlp_tiny"), *random_pose_2d(2), batch_size=0)
