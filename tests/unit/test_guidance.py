"""3D guidance through lifters (L2D-Pose): known answers for the loss pieces, and gradient flow."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pose_study import models
from pose_study.data import codecs
from pose_study.data.transforms import Batch
from pose_study.lifters import build_lifter
from pose_study.lifters.inputs import normalise_2d
from pose_study.predict import heatmap_to_crop
from pose_study.train import guidance, losses
from pose_study.train.guidance import GuidanceSpec
from pose_study.train.objective import (DetectorWithLifter, EndToEndObjective, GuidedObjective, HeatmapObjective,
                                        freeze, lift_heatmaps)

K = 17


class StandInLifter(nn.Module):
    """A coords lifter: [B, 1, K, 2] → [B, K, 3]; remembers its last input."""

    preset_name, options, input_kind, frames = "stand_in", {}, "coords", 1

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2 * K, 3 * K)
        self.seen: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        self.seen = x.detach()
        return self.linear(x.flatten(1)).view(len(x), K, 3)


def one_hot_maps(coords: torch.Tensor, size: int = 16) -> torch.Tensor:
    """[B, K, size, size] with a 1 at each integer (x, y) of ``coords`` [B, K, 2]."""
    b, k = coords.shape[:2]
    maps = torch.zeros(b, k, size, size)
    for i in range(b):
        for j in range(k):
            x, y = coords[i, j].long().tolist()
            maps[i, j, y, x] = 1.0
    return maps


def synthetic_batch(n: int = 4, crop: int = 64, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    joints_3d = torch.randn(n, K, 3, generator=g) * 200 + torch.tensor([0.0, 0.0, 4000.0])
    return Batch(images=torch.randn(n, 3, crop, crop, generator=g),
                 joints_2d=torch.rand(n, K, 2, generator=g) * (crop - 8) + 4,
                 valid_2d=torch.ones(n, K, dtype=torch.bool), joints_3d=joints_3d,
                 valid_3d=torch.ones(n, K, dtype=torch.bool), intrinsics=torch.eye(3).expand(n, 3, 3).clone(),
                 is_3d=torch.ones(n, dtype=torch.bool))


# --- soft-argmax ----------------------------------------------------------------------------------


def test_soft_argmax_of_a_one_hot_map_is_its_pixel():
    coords = torch.tensor([[[5.0, 3.0], [0.0, 15.0], [12.0, 7.0]]])
    decoded = codecs.soft_argmax(one_hot_maps(coords), beta=100.0)
    assert torch.allclose(decoded, coords, atol=1e-3)


def test_guided_path_feeds_the_lifter_the_soft_argmax_of_each_map():
    coords = torch.randint(0, 16, (2, K, 2)).float()
    lifter = StandInLifter()
    lift_heatmaps(lifter, one_hot_maps(coords), beta=100.0)
    valid = torch.ones(2, 1, K, dtype=torch.bool)
    expected = normalise_2d(heatmap_to_crop(coords)[:, None], valid)
    assert lifter.seen.shape == (2, 1, K, 2)
    assert torch.allclose(lifter.seen, expected, atol=1e-3)


# --- OHKLM ----------------------------------------------------------------------------------------


def test_hard_keypoints_are_exactly_the_top_k_by_3d_error():
    errors = torch.rand(5, K, generator=torch.Generator().manual_seed(1))
    picked = guidance.hard_keypoints(errors, torch.ones(5, K, dtype=torch.bool), top_k=10)
    assert picked.sum(1).tolist() == [10] * 5
    for row, err in zip(picked, errors):
        assert set(row.nonzero().flatten().tolist()) == set(err.argsort(descending=True)[:10].tolist())


def test_hard_keypoints_skip_invalid_joints_and_take_fewer_when_fewer_are_valid():
    errors = torch.arange(K, dtype=torch.float32).expand(2, K)
    valid = torch.ones(2, K, dtype=torch.bool)
    valid[0, K - 3:] = False  # the three largest errors of sample 0 are unannotated
    valid[1, 4:] = False  # sample 1 has only 4 valid joints
    picked = guidance.hard_keypoints(errors, valid, top_k=5)
    assert picked[0].nonzero().flatten().tolist() == list(range(K - 8, K - 3))
    assert picked[1].nonzero().flatten().tolist() == [0, 1, 2, 3]


def test_ohklm_loss_is_the_heatmap_loss_of_the_hard_joints_only():
    target = torch.zeros(1, K, 4, 4)
    pred = torch.zeros(1, K, 4, 4)
    pred[0, :3] = 1.0  # joints 0-2 are wrong in 2D (per-map MSE 1)
    errors = torch.zeros(1, K)
    errors[0, [0, 5]] = 1.0  # ... but joints 0 and 5 are the worst in 3D
    loss = guidance.ohklm_loss(pred, target, torch.ones(1, K, dtype=torch.bool), errors, top_k=2)
    assert loss.item() == pytest.approx(0.5)  # joint 0: 1, joint 5: 0


# --- 3D losses ------------------------------------------------------------------------------------


def test_lifted_3d_losses_known_answer():
    target = torch.zeros(1, 2, 3)
    pred = torch.tensor([[[0.1, 0.0, 0.2], [9.0, 9.0, 9.0]]])
    valid = torch.tensor([[True, False]])
    xy, z, errors = guidance.lifted_3d_losses(pred, target, valid)
    assert xy.item() == pytest.approx(0.01 / 2)
    assert z.item() == pytest.approx(0.04)
    assert errors.tolist()[0] == pytest.approx([math.sqrt(0.05), 0.0])


# --- Dynamic Weight Average -----------------------------------------------------------------------


def test_dwa_weights_are_one_over_m_until_two_losses_are_known():
    dwa = guidance.DynamicWeightAverage(4)
    assert dwa.weights().tolist() == [0.25] * 4
    dwa.update(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert dwa.weights().tolist() == [0.25] * 4


def test_dwa_equal_loss_ratios_give_equal_weights():
    dwa = guidance.DynamicWeightAverage(3, temperature=2.0)
    dwa.update(torch.tensor([1.0, 2.0, 4.0]))
    dwa.update(torch.tensor([0.5, 1.0, 2.0]))  # every loss halved
    assert torch.allclose(dwa.weights(), torch.full((3,), 1 / 3))


def test_dwa_unequal_ratios_known_answer_and_exact_state_round_trip():
    dwa = guidance.DynamicWeightAverage(2, temperature=2.0)
    dwa.update(torch.tensor([1.0, 1.0]))
    dwa.update(torch.tensor([2.0, 1.0]))  # r = (2, 1)
    e1, e2 = math.exp(2 / 2), math.exp(1 / 2)
    assert dwa.weights().tolist() == pytest.approx([e1 / (e1 + e2), e2 / (e1 + e2)])
    assert dwa.weights().sum().item() == pytest.approx(1.0)  # the paper's eq. 5, not M
    copy = guidance.DynamicWeightAverage(2, temperature=2.0)
    copy.load_state_dict(dwa.state_dict())
    assert torch.equal(copy.weights(), dwa.weights())


# --- lifter dropout -------------------------------------------------------------------------------


def test_lifter_dropout_always_keeps_one_and_follows_the_generator():
    g = torch.Generator().manual_seed(0)
    masks = [guidance.lifter_dropout(3, 0.99, g) for _ in range(200)]
    assert all(m.sum() >= 1 for m in masks)
    assert all(guidance.lifter_dropout(3, 0.0, g).all() for _ in range(5))
    a, b = (guidance.lifter_dropout(4, 0.5, torch.Generator().manual_seed(7)) for _ in range(2))
    assert torch.equal(a, b)


# --- multi-lifter loss ----------------------------------------------------------------------------

MULTI = {"lambda_xy": 0.02, "lambda_z": 0.04, "lambda_local": 0.03, "lambda_global": 0.01}


def test_multi_lifter_loss_of_identical_lifters_has_no_local_term():
    target = torch.zeros(2, K, 3)
    pred = torch.full((2, K, 3), 0.1)
    valid = torch.ones(2, K, dtype=torch.bool)
    out = guidance.multi_lifter_loss([pred, pred.clone()], target, valid, torch.full((2,), 0.5),
                                     torch.tensor([True, True]), **MULTI)
    assert out["local"].item() == 0.0
    assert out["global"].item() == pytest.approx(0.01)
    per = 0.02 * 0.01 + 0.04 * 0.01
    assert out["single"].item() == pytest.approx(per)  # weights 0.5 + 0.5
    assert out["consistency"].item() == pytest.approx(0.01 * 0.01)


def test_multi_lifter_loss_known_answer_for_opposite_lifters_and_dropout():
    target = torch.zeros(1, K, 3)
    a, b = torch.zeros(1, K, 3), torch.zeros(1, K, 3)
    a[..., 0], b[..., 0] = 0.1, -0.1  # mean prediction is exact; the lifters disagree by 0.2 in x
    valid = torch.ones(1, K, dtype=torch.bool)
    weights = torch.tensor([0.75, 0.25])
    both = guidance.multi_lifter_loss([a, b], target, valid, weights, torch.tensor([True, True]), **MULTI)
    assert both["global"].item() == pytest.approx(0.0, abs=1e-9)
    assert both["local"].item() == pytest.approx(0.04 / 3)  # one pair: per-coordinate MSE (0.2² in x only)
    per = 0.02 * 0.01 / 2
    assert both["single"].item() == pytest.approx(per)
    assert both["per_lifter"].tolist() == pytest.approx([per, per])
    assert both["consistency"].item() == pytest.approx(0.03 * 0.04 / 3)
    one = guidance.multi_lifter_loss([a, b], target, valid, weights, torch.tensor([False, True]), **MULTI)
    assert one["local"].item() == 0.0
    assert one["global"].item() == pytest.approx(0.01 / 3)
    assert one["single"].item() == pytest.approx(0.25 * per)


def test_local_consistency_sums_over_unordered_pairs():
    target, valid = torch.zeros(1, K, 3), torch.ones(1, K, dtype=torch.bool)
    preds = [torch.full((1, K, 3), v) for v in (0.0, 0.1, 0.3)]
    out = guidance.multi_lifter_loss(preds, target, valid, torch.full((3,), 1 / 3), torch.ones(3, dtype=torch.bool),
                                     **MULTI)
    assert out["local"].item() == pytest.approx(0.1**2 + 0.3**2 + 0.2**2)


def test_multi_lifter_objective_is_eq_8_of_the_paper(detector):
    """L_multi = 0.8·(λ_H·H + λ_O·O + Σ_m w_m (λ_xy·xy_m + λ_z·z_m)) + 0.03·local + 0.01·global."""
    spec = GuidanceSpec(lifter_dropout=0.0)
    objective = GuidedObjective(frozen_guides(), spec)
    batch = synthetic_batch()
    with torch.no_grad():
        terms = objective(detector(batch.images), batch, 1.0, torch.Generator().manual_seed(0))
    single = 0.5 * terms["heatmap"] + 0.3 * terms["ohklm"] + terms["single"]
    expected = 0.8 * single + 0.03 * terms["local"] + 0.01 * terms["global"]
    assert terms["total"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert terms["local"].item() > 0 and terms["global"].item() > 0


def test_guidance_spec_defaults_are_the_papers_and_bad_values_name_the_key():
    spec = GuidanceSpec()
    assert (spec.beta, spec.top_k, spec.lambda_heatmap, spec.lambda_ohklm, spec.lambda_xy, spec.lambda_z,
            spec.lambda_single, spec.lambda_local, spec.lambda_global, spec.dwa_temperature,
            spec.heatmap_factor) == (100.0, 10, 0.5, 0.3, 0.02, 0.04, 0.8, 0.03, 0.01, 2.0, 0.5)
    with pytest.raises(ValueError, match="lambda_single"):
        GuidanceSpec(lambda_single=1.5)
    with pytest.raises(ValueError, match="lifter_dropout"):
        GuidanceSpec(lifter_dropout=1.0)
    with pytest.raises(ValueError, match="lambda_local"):
        GuidanceSpec(lambda_local=-1.0)
    with pytest.raises(ValueError, match="heatmap_factor"):
        GuidanceSpec(heatmap_factor=0.0)


# --- gradients through frozen lifters ------------------------------------------------------------


@pytest.fixture(scope="module")
def detector() -> nn.Module:
    torch.manual_seed(0)
    return models.build_model("hg1_tiny")


def frozen_guides() -> list[nn.Module]:
    torch.manual_seed(1)
    return [freeze(build_lifter("mlp_tiny"), torch.device("cpu")), freeze(StandInLifter(), torch.device("cpu"))]


def detector_grads(detector: nn.Module) -> float:
    return sum(p.grad.abs().sum().item() for p in detector.parameters() if p.grad is not None)


@pytest.mark.parametrize("num_lifters", [1, 2], ids=["single", "multi"])
def test_3d_loss_reaches_the_detector_and_never_the_frozen_lifters(detector, num_lifters):
    guides = frozen_guides()[:num_lifters]
    objective = GuidedObjective(guides, GuidanceSpec(lifter_dropout=0.0))
    batch = synthetic_batch()
    detector.zero_grad(set_to_none=True)
    terms = objective(detector(batch.images), batch, sigma=1.0, generator=torch.Generator().manual_seed(0))
    assert set(objective.terms) | {"total"} == set(terms)
    (terms["xy"] + terms["z"]).backward()  # the 3D terms alone
    assert detector_grads(detector) > 0
    for lifter in guides:
        assert all(not p.requires_grad and (p.grad is None or not p.grad.any()) for p in lifter.parameters())
        assert not lifter.training


def test_guided_objective_keeps_its_dwa_history_and_needs_the_generator(detector):
    objective = GuidedObjective(frozen_guides(), GuidanceSpec())
    batch, g = synthetic_batch(), torch.Generator().manual_seed(0)
    with torch.no_grad():
        outputs = detector(batch.images)
        for _ in range(3):
            objective(outputs, batch, 1.0, g)
        with pytest.raises(ValueError, match="generator"):
            objective(outputs, batch, 1.0)
    again = GuidedObjective(frozen_guides(), GuidanceSpec())
    again.load_state_dict(objective.state_dict())
    assert torch.equal(again.dwa.weights(), objective.dwa.weights())


def test_heatmap_objective_is_the_stacked_heatmap_loss(detector):
    batch = synthetic_batch()
    with torch.no_grad():
        outputs = detector(batch.images)
    terms = HeatmapObjective()(outputs, batch, 1.0)
    target = codecs.encode_heatmaps((batch.joints_2d + 0.5) / 4 - 0.5, batch.valid_2d, (16, 16), 1.0)
    expected = sum(losses.heatmap_loss(h, target, batch.valid_2d) for h, _ in outputs["stacks"])
    assert terms["total"].item() == pytest.approx(expected.item())


def test_guided_term_magnitudes_at_initialisation_known_answer():
    """A detector that outputs zeros (the scale at initialisation) and a lifter that outputs zeros.

    Heatmap term: ½ · mean over pixels of the target² = ½ · Σ exp(−d²/σ²) / (H·W), which is
    ½ · π σ² / (H·W) for a Gaussian away from the border. 3D terms: the per-coordinate MSE of the
    root-relative truth, in metres.
    """
    size, sigma = 64, 2.0
    coords = torch.tensor([[[20.0, 30.0], [40.0, 25.0]]])  # heatmap px, far from the border
    valid = torch.ones(1, 2, dtype=torch.bool)
    target = codecs.encode_heatmaps(coords, valid, (size, size), sigma)
    zero = torch.zeros_like(target)
    half_mse = GuidanceSpec().heatmap_factor * losses.heatmap_loss(zero, target, valid)
    assert half_mse.item() == pytest.approx(0.5 * math.pi * sigma**2 / size**2, rel=1e-3)
    truth = torch.tensor([[[0.0, 0.0, 0.0], [0.3, -0.4, 0.2]]])  # metres, root first
    xy, z, _ = guidance.lifted_3d_losses(torch.zeros_like(truth), truth, valid)
    assert (xy.item(), z.item()) == pytest.approx(((0.09 + 0.16) / 4, 0.04 / 2))


def test_end_to_end_loss_trains_detector_and_lifter_together(detector):
    torch.manual_seed(2)
    lifter = build_lifter("mpt_tiny")
    net = DetectorWithLifter(detector, lifter)
    batch = synthetic_batch()
    net.zero_grad(set_to_none=True)
    terms = EndToEndObjective(lifter, lambda_3d=1.0)(net(batch.images), batch, 1.0)
    terms["lift_l1"].backward()
    assert detector_grads(detector) > 0
    assert sum(p.grad.abs().sum().item() for p in lifter.parameters() if p.grad is not None) > 0


def test_guide_lifters_must_take_single_frame_coords():
    with pytest.raises(ValueError, match="single-frame coords"):
        GuidedObjective([build_lifter("mpt_tiny")], GuidanceSpec())
