"""Known answers for pose_study.train.losses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pose_study.skeletons import CANONICAL
from pose_study.train.losses import (
    BONE_GROUPS,
    FOREARM_WEIGHT,
    SHANK_WEIGHT,
    bone_ratio_loss,
    depth_loss,
    heatmap_loss,
    over_stacks,
)

K = CANONICAL.num_joints
J = CANONICAL.index


def random_maps(batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, K, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_heatmap_loss_perfect_prediction_is_zero() -> None:
    target = random_maps()
    assert heatmap_loss(target.clone(), target, torch.ones(2, K, dtype=torch.bool)).item() == 0.0


def test_heatmap_loss_known_value() -> None:
    target = torch.zeros(1, 2, 4, 4)
    pred = target.clone()
    pred[0, 0] += 0.5
    assert heatmap_loss(pred, target, torch.ones(1, 2, dtype=torch.bool)).item() == pytest.approx(0.125)


def test_heatmap_loss_ignores_masked_joints() -> None:
    target, pred = random_maps(seed=0), random_maps(seed=1)
    valid = torch.ones(2, K, dtype=torch.bool)
    valid[1, 4] = False
    changed = pred.clone()
    changed[1, 4] = 100.0
    assert heatmap_loss(changed, target, valid).item() == heatmap_loss(pred, target, valid).item()


def test_heatmap_loss_without_valid_joints_is_zero() -> None:
    loss = heatmap_loss(random_maps(seed=1), random_maps(seed=0), torch.zeros(2, K, dtype=torch.bool))
    assert loss.item() == 0.0


def test_losses_are_fp32_under_autocast() -> None:
    target, pred = random_maps(seed=0), random_maps(seed=1)
    valid = torch.ones(2, K, dtype=torch.bool)
    reference = heatmap_loss(pred, target, valid)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = heatmap_loss(pred.bfloat16(), target=target, valid=valid)
        bones = bone_ratio_loss(torch.rand(2, K, 2), torch.rand(2, K), valid, torch.ones(2, dtype=torch.bool))
    assert loss.dtype == torch.float32 and bones.dtype == torch.float32
    assert loss.item() == pytest.approx(reference.item(), rel=1e-2)


def test_depth_loss_perfect_prediction_is_zero() -> None:
    target = torch.randn(2, K)
    assert depth_loss(target.clone(), target, torch.ones(2, K, dtype=torch.bool)).item() == 0.0


@pytest.mark.parametrize("error, per_joint", [(0.5, 0.125), (3.0, 2.5)], ids=["quadratic", "linear"])
def test_depth_loss_known_value(error: float, per_joint: float) -> None:
    target = torch.zeros(1, K)
    mask = torch.zeros(1, K, dtype=torch.bool)
    mask[0, :2] = True
    pred = target.clone()
    pred[0, 0] = error
    assert depth_loss(pred, target, mask).item() == pytest.approx(per_joint / (2 + 1e-4))


def test_depth_loss_ignores_masked_joints() -> None:
    pred, target = torch.randn(2, K), torch.randn(2, K)
    mask = torch.rand(2, K, generator=torch.Generator().manual_seed(0)) > 0.5
    changed_pred, changed_target = pred.clone(), target.clone()
    changed_pred[~mask], changed_target[~mask] = 1e6, float("nan")
    assert depth_loss(changed_pred, changed_target, mask).item() == depth_loss(pred, target, mask).item()


def test_depth_loss_gradient_only_on_masked_entries() -> None:
    pred = torch.randn(2, K, requires_grad=True)
    mask = torch.zeros(2, K, dtype=torch.bool)
    mask[0, 3] = True
    depth_loss(pred, torch.zeros(2, K), mask).backward()
    assert pred.grad[~mask].abs().sum().item() == 0.0 and pred.grad[0, 3].item() != 0.0


def equal_ratio_pose() -> np.ndarray:
    """[K, 3] pose whose weighted bone lengths are equal within every bone group."""
    pose = np.zeros((K, 3))
    thigh, upper_arm = 0.2, 0.15
    for side, sign in (("r", -1), ("l", 1)):
        pose[J(f"{side}_hip")] = (0.05 * sign, 0.0, 0.0)
        pose[J(f"{side}_knee")] = pose[J(f"{side}_hip")] + (0.0, thigh, 0.0)
        pose[J(f"{side}_ankle")] = pose[J(f"{side}_knee")] + (0.0, thigh / SHANK_WEIGHT, 0.0)
        pose[J(f"{side}_shoulder")] = (0.08 * sign, -0.25, 0.0)
        pose[J(f"{side}_elbow")] = pose[J(f"{side}_shoulder")] + (0.0, upper_arm, 0.0)
        pose[J(f"{side}_wrist")] = pose[J(f"{side}_elbow")] + (0.0, upper_arm / FOREARM_WEIGHT, 0.0)
    pose[J("neck")] = (0.0, -0.25, 0.0)
    pose[J("spine")], pose[J("nose")], pose[J("head_top")] = (0, -0.1, 0.02), (0, -0.3, -0.05), (0, -0.4, 0)
    angle = 0.7  # rotation about the vertical axis: bone lengths unchanged, depth now varies
    cos, sin = math.cos(angle), math.sin(angle)
    rotation = np.array([[cos, 0, sin], [0, 1, 0], [-sin, 0, cos]])
    return pose @ rotation.T + (0.5, 0.5, 0.0)


def bone_inputs(pose: np.ndarray, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    xyz = torch.tensor(pose, dtype=torch.float32).expand(batch, K, 3)
    return xyz[..., :2].clone(), xyz[..., 2].clone()


ALL_VALID = torch.ones(1, K, dtype=torch.bool)
IS_2D = torch.ones(1, dtype=torch.bool)


def test_bone_ratio_loss_zero_for_equal_ratio_pose() -> None:
    joints_2d, depth = bone_inputs(equal_ratio_pose())
    assert bone_ratio_loss(joints_2d, depth, ALL_VALID, IS_2D).item() == pytest.approx(0.0, abs=1e-10)


def test_bone_ratio_loss_positive_otherwise() -> None:
    joints_2d, depth = bone_inputs(equal_ratio_pose())
    depth[0, J("l_elbow")] += 0.1
    assert bone_ratio_loss(joints_2d, depth, ALL_VALID, IS_2D).item() > 1e-5


def test_bone_ratio_loss_ignores_missing_joints() -> None:
    joints_2d, depth = bone_inputs(equal_ratio_pose())
    joints_2d[0, J("r_wrist")], depth[0, J("r_wrist")] = 0.0, 0.0  # a missing joint stored at (0, 0)
    valid = ALL_VALID.clone()
    valid[0, J("r_wrist")] = False
    assert bone_ratio_loss(joints_2d, depth, valid, IS_2D).item() == pytest.approx(0.0, abs=1e-10)
    assert bone_ratio_loss(joints_2d, depth, ALL_VALID, IS_2D).item() > 1e-5


def test_bone_ratio_loss_skips_3d_samples_but_counts_them_in_batch() -> None:
    pose = equal_ratio_pose()
    pose[J("r_knee"), 2] += 0.1
    joints_2d, depth = bone_inputs(pose, batch=2)
    valid = ALL_VALID.expand(2, K)
    single = bone_ratio_loss(joints_2d[:1], depth[:1], valid[:1], IS_2D)
    mixed = bone_ratio_loss(joints_2d, depth, valid, torch.tensor([True, False]))
    assert mixed.item() == pytest.approx(single.item() / 2)


def seed_var_loss(xy: np.ndarray, z: np.ndarray, valid: np.ndarray,
                  is_2d: np.ndarray) -> tuple[float, np.ndarray]:
    """Loop reference of the seed's VarLoss forward and hand-written backward (§4.3), valid-masked."""
    loss, grad = 0.0, np.zeros_like(z)
    for b in np.flatnonzero(is_2d):
        for group in BONE_GROUPS.values():
            bones = [(a, c, w) for a, c, w in group if valid[b, a] and valid[b, c]]
            lengths = [w * np.sqrt(((xy[b, a] - xy[b, c]) ** 2).sum() + (z[b, a] - z[b, c]) ** 2)
                       for a, c, w in bones]
            if not bones:
                continue
            mean = np.mean(lengths)
            for (a, c, w), length in zip(bones, lengths):
                loss += (length - mean) ** 2 / (2 * len(bones) * len(z))
                step = w**2 * (length - mean) * (z[b, a] - z[b, c]) / (len(bones) * length * len(z))
                grad[b, a] += step
                grad[b, c] -= step
    return loss, grad


def test_bone_ratio_loss_matches_seed_loss_and_gradient() -> None:
    generator = torch.Generator().manual_seed(0)
    joints_2d = torch.rand(4, K, 2, generator=generator, requires_grad=True)
    depth = (0.2 * torch.randn(4, K, generator=generator)).requires_grad_()
    valid = torch.rand(4, K, generator=generator) > 0.2
    is_2d = torch.tensor([True, True, False, True])
    loss = bone_ratio_loss(joints_2d, depth, valid, is_2d)
    loss.backward()
    expected, grad = seed_var_loss(joints_2d.detach().double().numpy(), depth.detach().double().numpy(),
                                   valid.numpy(), is_2d.numpy())
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(depth.grad.numpy(), grad, rtol=1e-4, atol=1e-7)
    assert joints_2d.grad is None  # gradient flows only into depth


def test_over_stacks_sums_every_stack() -> None:
    target = random_maps()
    valid = torch.ones(2, K, dtype=torch.bool)
    stacks = [(random_maps(seed=s), torch.zeros(2, K, 8, 8)) for s in (1, 2, 3)]
    total = over_stacks(stacks, lambda hm, _: heatmap_loss(hm, target, valid))
    assert total.item() == pytest.approx(sum(heatmap_loss(hm, target, valid).item() for hm, _ in stacks))
