"""APTPose: anatomical mask levels, the sequence lifter, reprojection and the pose objectives."""

import math

import pytest
import torch

from pose_study.lifters import LifterPreset, apt, build_lifter, inputs, lifter_flops
from pose_study.lifters.apt import reproject_2d
from pose_study.data.poses import PoseBatch
from pose_study.lifters.masks import MASK_LEVELS, group_matrix, mask_groups, sample_mask, sample_temporal_mask
from pose_study.lifters.pretraining import apt_pretrain_loss, sequence_pose_loss, sequences_from_images
from pose_study.skeletons import CANONICAL, MPII16

SKELETONS = [CANONICAL, MPII16]


def _ids(skeleton, names):
    return tuple(skeleton.index(n) for n in names)


# --- masks ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("skeleton", SKELETONS, ids=lambda s: s.name)
def test_joint_and_bone_groups(skeleton):
    assert mask_groups(skeleton, "joint") == tuple((j,) for j in range(skeleton.num_joints))
    bones = mask_groups(skeleton, "bone")
    assert len(bones) == skeleton.num_joints - 1
    assert all(skeleton.parents[j] == p for j, p in bones)


@pytest.mark.parametrize("skeleton", SKELETONS, ids=lambda s: s.name)
def test_limb_groups_are_the_named_chains(skeleton):
    expected = {_ids(skeleton, [f"{side}_{part}" for part in chain])
                for side in "lr" for chain in (("shoulder", "elbow", "wrist"), ("hip", "knee", "ankle"))}
    assert set(mask_groups(skeleton, "limb")) == expected and len(mask_groups(skeleton, "limb")) == 4


@pytest.mark.parametrize("skeleton", SKELETONS, ids=lambda s: s.name)
def test_side_groups_are_the_left_and_right_joints(skeleton):
    left, right = mask_groups(skeleton, "side")
    names = [[skeleton.joints[j] for j in group] for group in (left, right)]
    expected = [sorted(n for n in skeleton.joints if n.startswith(p)) for p in ("l_", "r_")]
    assert [sorted(n) for n in names] == expected
    assert {(a, b) for a, b in skeleton.flip_pairs} <= {(a, b) for a in left + right for b in left + right}


def test_known_canonical_groups():
    assert mask_groups(CANONICAL, "limb") == ((11, 12, 13), (4, 5, 6), (14, 15, 16), (1, 2, 3))
    assert mask_groups(CANONICAL, "side") == ((4, 5, 6, 11, 12, 13), (1, 2, 3, 14, 15, 16))
    assert mask_groups(MPII16, "limb") == ((13, 14, 15), (3, 4, 5), (12, 11, 10), (2, 1, 0))
    with pytest.raises(ValueError, match="mask level"):
        mask_groups(CANONICAL, "torso")


@pytest.mark.parametrize("skeleton", SKELETONS, ids=lambda s: s.name)
@pytest.mark.parametrize("level", MASK_LEVELS)
def test_sample_mask_hides_whole_groups_near_the_ratio(skeleton, level):
    groups = mask_groups(skeleton, level)
    k = skeleton.num_joints
    mask = sample_mask(groups, (64, 3, k), 0.3, torch.Generator().manual_seed(0))
    assert mask.shape == (64, 3, k) and mask.dtype == torch.bool
    member = group_matrix(groups, k)  # [G, K]
    # The mask is a union of groups: every masked joint lies in a group that is masked entirely.
    whole = (member[None, None] & ~mask[:, :, None]).sum(-1) == 0  # [B, T, G] group fully masked
    covered = (whole[..., None] & member[None, None]).any(2)
    assert torch.equal(covered, mask)
    target = round(0.3 * k)
    counts = mask.sum(-1)
    largest = max(len(g) for g in groups)
    assert (counts >= min(target, member.any(0).sum())).all() and (counts < target + largest).all()
    assert (mask.float().mean() - 0.3).abs() < 0.15


def test_sample_mask_zero_ratio_and_randomness():
    groups = mask_groups(CANONICAL, "joint")
    assert not sample_mask(groups, (4, 2, 17), 0.0).any()
    a = sample_mask(groups, (8, 2, 17), 0.3, torch.Generator().manual_seed(1))
    b = sample_mask(groups, (8, 2, 17), 0.3, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and (a.sum(-1) == 5).all()
    assert not torch.equal(a[:, 0], a[:, 1])  # independent per frame


# --- lifter ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [{"fusion": "multiply"}, {"fusion": "add"}, {"reprojection": "analytic"}],
                         ids=["multiply", "add", "analytic"])
def test_apt_lifter_shapes_grad_and_flops(options):
    torch.manual_seed(0)
    lifter = build_lifter("apt_tiny", 17, options)
    t = lifter.frames
    x, valid = torch.randn(3, t, 17, 2), torch.ones(3, t, 17, dtype=torch.bool)
    valid[0, :, 5] = False
    masks = {level: sample_mask(mask_groups(CANONICAL, level), (3, t, 17), 0.3, torch.Generator().manual_seed(0))
             for level in MASK_LEVELS}
    out = lifter.forward_sequence(x, valid, masks)
    seq, centre = out["sequence"], out["centre"]
    assert seq.shape == (3, t, 17, 3) and centre.shape == (3, 17, 3) and torch.isfinite(seq).all()
    assert (seq[..., 0, :] == 0).all() and (centre[:, 0] == 0).all()
    learned = options.get("reprojection", "learned") == "learned"
    assert (out["reprojected"].shape == (3, t, 17, 2)) if learned else out["reprojected"] is None
    (seq.square().mean() + centre.square().mean() + (out["reprojected"].square().mean() if learned else 0)).backward()
    no_grad = {name for name, p in lifter.named_parameters() if p.grad is None}
    assert no_grad == {"padding"}  # the temporal padding embedding serves masked frames only
    lifter.zero_grad()
    frames = sample_temporal_mask((3, t), 0.5, torch.Generator().manual_seed(0))
    lifter(x, valid, sequence=True, temporal_mask=frames)["sequence"].square().mean().backward()
    assert lifter.padding.grad is not None and lifter.padding.grad.abs().sum() > 0
    lifter.eval()
    assert torch.allclose(lifter(x, valid), lifter.forward_sequence(x, valid)["centre"], atol=1e-6)
    assert lifter(x, valid, masks=masks, sequence=True)["sequence"].shape == (3, t, 17, 3)
    assert lifter_flops(lifter) > 0


def test_apt_lifter_features_are_per_joint_and_fused_per_joint():
    """F^level ∈ R^{K×d} per frame; the fusion multiplies the levels joint by joint."""
    torch.manual_seed(0)
    lifter = build_lifter("apt_tiny").eval()
    x, valid = torch.randn(2, 9, 17, 2), torch.ones(2, 9, 17, dtype=torch.bool)
    features = [lifter.encoders[level](x, ~valid) for level in MASK_LEVELS]
    d = 64 // apt.JOINT_DIM_DIVISOR
    assert all(f.shape == (2, 9, 17, d) for f in features)
    product = features[0] * features[1] * features[2] * features[3]
    expected = lifter.frame_embed(lifter.fuse_norm(product).flatten(-2))
    assert torch.allclose(lifter._fuse(features), expected, atol=1e-6)


def test_temporal_aggregator_folds_powers_of_three_to_one_frame():
    for frames, stages in ((1, 0), (9, 2), (27, 3), (243, 5)):
        agg = apt.TemporalAggregator(frames, 8, 17, 0.0).eval()
        assert len(agg.stages) == stages
        shapes = []
        h = torch.randn(2, frames, 8)
        for stage in agg.stages:
            h = stage(h)
            shapes.append(h.shape[1])
        assert shapes == [frames // 3 ** (i + 1) for i in range(stages)]
        assert agg(torch.randn(2, frames, 8)).shape == (2, 17, 3)
    with pytest.raises(ValueError, match="power of 3"):
        apt.TemporalAggregator(5, 8, 17, 0.0)
    with pytest.raises(ValueError, match="power of 3"):
        LifterPreset("apt", frames=7)


def test_temporal_mask_known_answers():
    mask = sample_temporal_mask((64, 9), 0.5, torch.Generator().manual_seed(0))
    assert mask.shape == (64, 9) and mask.dtype == torch.bool
    assert (mask.sum(-1) == 4).all()  # round(0.5 · 9) = 4 frames per window
    assert len({tuple(row.tolist()) for row in mask}) > 32  # positions differ between windows
    assert not sample_temporal_mask((3, 9), 0.0).any()
    assert (sample_temporal_mask((3, 9), 0.99).sum(-1) == 8).all()  # at least one frame stays
    again = sample_temporal_mask((64, 9), 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(mask, again)
    with pytest.raises(ValueError, match="temporal mask ratio"):
        sample_temporal_mask((3, 9), 1.0)


def test_padding_decoder_fills_masked_frames_from_the_unmasked_ones():
    torch.manual_seed(0)
    lifter = build_lifter("apt_tiny").eval()
    x, valid = torch.randn(2, 9, 17, 2), torch.ones(2, 9, 17, dtype=torch.bool)
    frames = sample_temporal_mask((2, 9), 0.5, torch.Generator().manual_seed(1))
    encoded, order = lifter.encode(x, valid, temporal_mask=frames)
    assert encoded.shape == (2, 5, 64) and order.shape == (2, 5)
    assert torch.equal(order, torch.stack([torch.nonzero(~row).flatten() for row in frames]))
    out = lifter(x, valid, sequence=True, temporal_mask=frames)
    assert out["sequence"].shape == (2, 9, 17, 3) and out["centre"] is None
    # the masked frames' 2D never reaches the encoder: changing it changes nothing
    y = x.clone()
    y[frames] = torch.randn_like(y[frames])
    assert torch.equal(lifter(y, valid, sequence=True, temporal_mask=frames)["sequence"], out["sequence"])
    assert not torch.allclose(lifter(y, valid, sequence=True)["sequence"], lifter(x, valid, sequence=True)["sequence"])
    with pytest.raises(ValueError, match="temporal_mask"):
        lifter(x, valid, sequence=True, temporal_mask=torch.ones(2, 9, dtype=torch.bool))


def test_apt_tiny_stays_small_for_cpu():
    lifter = build_lifter("apt_tiny")
    params = sum(p.numel() for p in lifter.parameters())
    assert params < 300_000 and lifter_flops(lifter) < 30e6, (params, lifter_flops(lifter))


def test_apt_lifter_masks_change_the_output_and_unknown_levels_fail():
    torch.manual_seed(0)
    lifter = build_lifter("apt_tiny").eval()
    x, valid = torch.randn(2, 9, 17, 2), torch.ones(2, 9, 17, dtype=torch.bool)
    mask = torch.zeros(2, 9, 17, dtype=torch.bool)
    mask[:, :, 13] = True
    assert not torch.allclose(lifter.forward_sequence(x, valid, {"joint": mask})["sequence"],
                              lifter.forward_sequence(x, valid)["sequence"])
    with pytest.raises(ValueError, match="mask level"):
        lifter.forward_sequence(x, valid, {"torso": mask})


def test_apt_lifter_is_deterministic_given_the_seed():
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        outs.append(build_lifter("apt_tiny").eval()(torch.ones(1, 9, 17, 2), torch.ones(1, 9, 17, dtype=torch.bool)))
    assert torch.equal(*outs)


# --- reprojection ---------------------------------------------------------------------------------

def _camera_batch(b=4, t=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    rel = torch.randn(b, t, 17, 3, generator=g) * 300
    rel[..., 0, :] = 0
    root = torch.tensor([100.0, -50.0, 4500.0]) + torch.randn(b, t, 1, 3, generator=g) * 100
    joints_3d = rel + root
    f = 150 + 20 * torch.rand(b, t, generator=g)
    intrinsics = torch.zeros(b, t, 3, 3)
    intrinsics[..., 0, 0], intrinsics[..., 1, 1], intrinsics[..., 2, 2] = f, f, 1
    intrinsics[..., 0, 2], intrinsics[..., 1, 2] = 31.5, 30.0
    return joints_3d, intrinsics


def test_ground_truth_reprojects_exactly_with_the_camera():
    joints_3d, intrinsics = _camera_batch()
    valid = torch.ones(joints_3d.shape[:-1], dtype=torch.bool)
    joints_2d = inputs.project(joints_3d, intrinsics)
    out = reproject_2d(inputs.relative_3d(joints_3d, valid), joints_2d, valid, joints_3d[..., 0, :], intrinsics)
    assert (out - joints_2d).abs().max() < 1e-4


def test_weak_perspective_path_reproduces_a_scaled_shifted_pose():
    rel = torch.randn(2, 17, 3)
    joints_2d = 40 * rel[..., :2] + torch.tensor([30.0, 28.0])
    out = reproject_2d(rel, joints_2d, torch.ones(2, 17, dtype=torch.bool))
    assert (out - joints_2d).abs().max() < 1e-3


# --- objectives -----------------------------------------------------------------------------------

def test_sequence_pose_loss_known_answers():
    target = torch.randn(2, 5, 17, 3)
    valid = torch.ones(2, 5, 17, dtype=torch.bool)
    zero = sequence_pose_loss(target, target, valid)
    assert set(zero) == {"pose_sequence", "pose_centre", "bone_sequence", "bone_centre", "total"}
    assert all(v.item() == 0 for v in zero.values())
    # Shift joint 12 (l_elbow; parent 11, child 13) by d, |d| = 0.5: two of 16 bones change by |d|.
    pred = target.clone()
    pred[..., 12, :] += torch.tensor([0.3, 0.0, 0.4])
    loss = sequence_pose_loss(pred, target, valid)
    for span in ("sequence", "centre"):
        assert loss[f"pose_{span}"].item() == pytest.approx(0.5 / 17, rel=1e-5)
        assert loss[f"bone_{span}"].item() == pytest.approx(2 * 0.5 / 16, rel=1e-5)
    assert loss["total"].item() == pytest.approx(2 * 0.5 / 17 + 2 * 2 * 0.5 / 16, rel=1e-5)
    assert loss["total"].dtype == torch.float32


def test_sequence_pose_loss_centre_frame_and_validity():
    target = torch.zeros(1, 3, 17, 3)
    pred = target.clone()
    pred[:, 0, 3, 0] = 1.0  # off-centre frame only
    valid = torch.ones(1, 3, 17, dtype=torch.bool)
    loss = sequence_pose_loss(pred, target, valid)
    assert loss["pose_centre"].item() == 0 and loss["bone_centre"].item() == 0
    assert loss["pose_sequence"].item() == pytest.approx(1 / 51)
    valid[:, 0, 3] = False  # invalid joint: neither its pose nor its bone counts
    assert sequence_pose_loss(pred, target, valid)["total"].item() == 0


def _pose_batch(b=6, t=9, two_d_only=2, seed=0):
    joints_3d, intrinsics = _camera_batch(b, t, seed)
    valid = torch.ones(b, t, 17, dtype=torch.bool)
    is_3d = torch.arange(b) >= two_d_only
    joints_2d = inputs.project(joints_3d, intrinsics)
    valid_3d = valid & is_3d[:, None, None]
    joints_3d = joints_3d * valid_3d[..., None]
    intrinsics = torch.where(is_3d[:, None, None, None], intrinsics, torch.eye(3))
    return PoseBatch(joints_2d, valid, joints_3d, valid_3d, intrinsics, is_3d, 64)


def test_apt_pretrain_loss_terms_and_gradients():
    torch.manual_seed(0)
    lifter = build_lifter("apt_tiny")
    batch = _pose_batch()
    loss = apt_pretrain_loss(lifter, batch, MASK_LEVELS, 0.3, 1.0, 0.5, torch.Generator().manual_seed(0))
    assert {"loss_3d", "loss_2d", "total"} <= set(loss)
    assert loss["total"].item() == pytest.approx(loss["loss_3d"].item() + 0.5 * loss["loss_2d"].item(), rel=1e-6)
    assert all(torch.isfinite(v) and v.dtype == torch.float32 for v in loss.values())
    loss["total"].backward()
    assert all(torch.isfinite(p.grad).all() for p in lifter.parameters() if p.grad is not None)
    two_d = PoseBatch(batch.joints_2d, batch.valid_2d, batch.joints_3d * 0, batch.valid_3d & False,
                      torch.eye(3).expand_as(batch.intrinsics), batch.is_3d & False, 64)
    only_2d = apt_pretrain_loss(lifter, two_d, ("limb",), 0.3, 1.0, 0.5, torch.Generator().manual_seed(0))
    assert only_2d["loss_3d"].item() == 0 and only_2d["loss_2d"].item() > 0


def test_apt_pretrain_loss_reprojection_term_is_zero_for_ground_truth():
    """A model that outputs the ground truth has zero loss: exact camera path and weak perspective."""
    batch = _pose_batch()
    target = inputs.relative_3d(batch.joints_3d, batch.valid_3d)

    class Oracle(torch.nn.Module):
        def forward(self, x, valid, masks=None, sequence=False, temporal_mask=None):
            fake_2d = torch.where(batch.is_3d[:, None, None, None], target, _lift_2d_only(batch))
            return {"sequence": fake_2d, "centre": None, "reprojected": None}  # the analytic reprojection

    loss = apt_pretrain_loss(Oracle(), batch, ("joint",), 0.3, 1.0, 1.0)
    assert loss["loss_3d"].item() < 1e-6 and loss["loss_2d"].item() < 1e-5


def test_apt_pretrain_loss_with_temporal_masks_and_the_learned_reprojection():
    batch = _pose_batch()
    target = inputs.relative_3d(batch.joints_3d, batch.valid_3d)
    seen = {}

    class Oracle(torch.nn.Module):
        def forward(self, x, valid, masks=None, sequence=False, temporal_mask=None):
            seen["frames"] = temporal_mask
            return {"sequence": target, "centre": None,
                    "reprojected": inputs.normalise_2d(batch.joints_2d, batch.valid_2d) + 0.1 * seen.get("shift", 0)}

    loss = apt_pretrain_loss(Oracle(), batch, ("joint",), 0.3, 1.0, 1.0, torch.Generator().manual_seed(0),
                             temporal_ratio=0.5)
    assert loss["loss_3d"].item() < 1e-6 and loss["loss_2d"].item() < 1e-6
    assert seen["frames"].shape == (6, 9) and (seen["frames"].sum(-1) == 4).all()
    assert loss["frame_fraction"].item() == pytest.approx(4 / 9)
    seen["shift"] = torch.tensor([0.3, 0.4])  # every reprojected joint 0.1 · 0.5 off, in normalise_2d units
    shifted = apt_pretrain_loss(Oracle(), batch, ("joint",), 0.3, 1.0, 2.0, temporal_ratio=0.0)
    assert seen["frames"] is None and shifted["loss_2d"].item() == pytest.approx(0.05, rel=1e-5)
    assert shifted["total"].item() == pytest.approx(2 * 0.05, rel=1e-4)


def test_apt_pretrain_loss_trains_a_real_lifter_under_temporal_masks():
    torch.manual_seed(0)
    lifter = build_lifter("apt_tiny")
    batch = _pose_batch()
    opt = torch.optim.Adam(lifter.parameters(), lr=3e-3)
    totals = []
    for step in range(30):
        loss = apt_pretrain_loss(lifter, batch, MASK_LEVELS, 0.3, 1.0, 0.5, torch.Generator().manual_seed(step),
                                 temporal_ratio=0.5)
        opt.zero_grad()
        loss["total"].backward()
        opt.step()
        totals.append(loss["total"].item())
    assert all(map(math.isfinite, totals)) and sum(totals[-5:]) < 0.92 * sum(totals[:5]), totals


def _lift_2d_only(batch):
    """A 3D pose whose x, y are the 2D joints (so weak perspective fits them exactly)."""
    xy = batch.joints_2d - batch.joints_2d[..., :1, :]
    return torch.cat([xy / 100, torch.zeros_like(xy[..., :1])], dim=-1)


def test_sequences_from_images_repeat_with_noise_only():
    single = _pose_batch(b=3, t=1)
    clean = sequences_from_images(single, 5, 0.0, 0.0, torch.Generator().manual_seed(0))
    assert clean.joints_2d.shape == (3, 5, 17, 2) and clean.frames == 5
    assert torch.equal(clean.joints_2d, single.joints_2d.expand(3, 5, 17, 2))
    for name in ("valid_2d", "joints_3d", "valid_3d", "intrinsics"):
        assert torch.equal(getattr(clean, name), getattr(single, name).expand_as(getattr(clean, name)))
    noisy = sequences_from_images(single, 5, 1.0, 2.0, torch.Generator().manual_seed(0))
    diff = noisy.joints_2d - single.joints_2d
    assert not torch.equal(noisy.joints_2d[:, 0], noisy.joints_2d[:, 1])
    jitter = diff.mean(2)  # per-frame shift (the per-joint noise averages out)
    assert 0.5 < jitter.std().item() < 4 and 0.5 < (diff - diff.mean(2, keepdim=True)).std().item() < 1.5
    with pytest.raises(ValueError, match="T = 1"):
        sequences_from_images(clean, 5, 0.0, 0.0)
