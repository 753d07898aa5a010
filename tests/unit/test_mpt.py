"""MPT: virtual cameras, heatmap synthesis, the heatmap regression transformer and its pre-training loss."""

import pytest
import torch

from pose_study.data import codecs
from pose_study.lifters import build_lifter, inputs, lifter_flops
from pose_study.data.poses import PoseBatch
from pose_study.lifters.pretraining import mpt_pretrain_loss, random_virtual_cameras, synthesize_heatmaps
from pose_study.predict import crop_to_heatmap
from pose_study.skeletons import CANONICAL


def _poses(b=8, seed=0):
    """Plausible camera-frame poses: a T-ish skeleton scaled and bent at random, 4 m away."""
    g = torch.Generator().manual_seed(seed)
    rel = torch.randn(b, 17, 3, generator=g) * 250
    rel[:, 0] = 0
    return rel + torch.tensor([200.0, 100.0, 4000.0])


# --- heatmap synthesis ----------------------------------------------------------------------------

def test_synthesized_peak_sits_at_the_projected_joint():
    g = torch.Generator().manual_seed(0)
    joints = 8 + 48 * torch.rand(4, 17, 2, generator=g)  # crop px, away from the border
    valid = torch.ones(4, 17, dtype=torch.bool)
    maps = synthesize_heatmaps(joints, valid, 64, 0.75, 0.0, 0.0)
    assert maps.shape == (4, 17, 16, 16) and maps.dtype == torch.float32
    coords, peak = codecs.decode_heatmaps(maps)
    expected = crop_to_heatmap(joints)
    assert (coords - expected).abs().max() < 0.05
    assert torch.equal(maps.flatten(2).argmax(-1), (expected.round()[..., 1] * 16 + expected.round()[..., 0]).long())
    assert (peak > 0.4).all()


def test_masked_and_invalid_joints_get_zero_maps_even_with_noise():
    joints = torch.full((2, 17, 2), 32.0)
    valid = torch.ones(2, 17, dtype=torch.bool)
    valid[0, 3] = False
    mask = torch.zeros(2, 17, dtype=torch.bool)
    mask[1, 7] = mask[0, 9] = True
    maps = synthesize_heatmaps(joints, valid, 64, 0.75, 1.0, 0.1, mask, torch.Generator().manual_seed(0))
    hidden = ~valid | mask
    assert (maps[hidden] == 0).all() and (maps[~hidden].amax((-1, -2)) > 0).all()
    assert (maps >= 0).all()
    with pytest.raises(ValueError, match="divisible"):
        synthesize_heatmaps(joints, valid, 62, 0.75)


def test_jitter_and_noise_perturb_the_maps():
    joints, valid = torch.full((1, 17, 2), 30.0), torch.ones(1, 17, dtype=torch.bool)
    clean = synthesize_heatmaps(joints, valid, 64, 0.75)
    jittered = synthesize_heatmaps(joints, valid, 64, 0.75, 2.0, 0.0, generator=torch.Generator().manual_seed(0))
    shift = (codecs.decode_heatmaps(jittered)[0] - codecs.decode_heatmaps(clean)[0]).norm(dim=-1)
    assert 0.05 < shift.mean() < 2.0  # 2 crop px = 0.5 heatmap px per axis


# --- virtual cameras ------------------------------------------------------------------------------

def test_virtual_cameras_are_rigid_in_front_and_frame_the_crop():
    joints = _poses(32)
    points, intrinsics = random_virtual_cameras(joints, 64, torch.Generator().manual_seed(0))
    assert points.shape == (32, 17, 3) and intrinsics.shape == (32, 3, 3)
    bones = torch.tensor(CANONICAL.bones)
    length = lambda p: (p[:, bones[:, 0]] - p[:, bones[:, 1]]).norm(dim=-1)  # noqa: E731
    assert torch.allclose(length(points), length(joints), atol=1e-2)
    assert torch.allclose(torch.cdist(points, points), torch.cdist(joints, joints), atol=1e-2)
    assert (points[..., 2] > 1500).all()
    assert ((points[:, 0, 2] >= 3000) & (points[:, 0, 2] <= 6000)).all()
    px = inputs.project(points, intrinsics)
    assert (px >= -0.5).all() and (px <= 63.5).all()
    side = (px.amax(1) - px.amin(1)).amax(-1)
    assert torch.allclose(side, torch.full_like(side, 64 / 1.25), atol=1e-3)
    centre = (px.amax(1) + px.amin(1)) / 2
    assert torch.allclose(centre, torch.full_like(centre, 31.5), atol=1e-3)


def test_virtual_cameras_vary_the_view_and_ignore_invalid_joints():
    joints = _poses(1).expand(16, 17, 3)
    valid = torch.ones(16, 17, dtype=torch.bool)
    valid[:, 10] = False
    joints = joints.clone()
    joints[:, 10] = 0  # unlabelled joint: must not affect the framing
    points, intrinsics = random_virtual_cameras(joints, 64, torch.Generator().manual_seed(1), valid)
    px = inputs.project(points, intrinsics)[:, valid[0]]
    assert (px >= -0.5).all() and (px <= 63.5).all()
    directions = points[:, 3] - points[:, 0]  # the same bone seen from 16 directions
    assert directions[:, 0].std() > 50 and directions[:, 2].std() > 50


# --- the regressor --------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"input": "coords"}], ids=["heatmaps", "coords"])
def test_mpt_lifter_shapes_grad_and_flops(options):
    torch.manual_seed(0)
    lifter = build_lifter("mpt_tiny", 17, options)
    if lifter.input_kind == "heatmaps":
        x, valid = torch.rand(3, 17, 16, 16), torch.ones(3, 17, dtype=torch.bool)
    else:
        x, valid = torch.randn(3, 1, 17, 2), torch.ones(3, 1, 17, dtype=torch.bool)
    out = lifter(x, valid)
    assert out.shape == (3, 17, 3) and torch.isfinite(out).all() and (out[:, 0] == 0).all()
    out.square().mean().backward()
    assert all(p.grad is not None for p in lifter.parameters())
    assert lifter_flops(lifter) > 0


@pytest.mark.parametrize("size", [(8, 8), (16, 24), (96, 96)])
def test_mpt_lifter_takes_any_map_size_divisible_by_the_patch(size):
    lifter = build_lifter("mpt_tiny").eval()
    out = lifter(torch.rand(2, 17, *size), torch.ones(2, 17, dtype=torch.bool))
    assert out.shape == (2, 17, 3)
    assert lifter_flops(lifter, map_size=size) > 0
    with pytest.raises(ValueError, match="divisible"):
        lifter(torch.rand(2, 17, 10, 16), torch.ones(2, 17, dtype=torch.bool))


def test_mpt_lifter_ignores_invalid_heatmaps():
    torch.manual_seed(0)
    lifter = build_lifter("mpt_tiny").eval()
    x, valid = torch.rand(1, 17, 16, 16), torch.ones(1, 17, dtype=torch.bool)
    valid[0, 4] = False
    y = x.clone()
    y[0, 4] = 5.0
    assert torch.equal(lifter(x, valid), lifter(y, valid))


# --- pre-training loss ----------------------------------------------------------------------------

def _batch(b=16):
    joints = _poses(b)[:, None]
    valid = torch.ones(b, 1, 17, dtype=torch.bool)
    return PoseBatch(torch.zeros(b, 1, 17, 2), valid, joints, valid, torch.eye(3).expand(b, 1, 3, 3),
                     torch.ones(b, dtype=torch.bool), 64)


@pytest.mark.parametrize("options", [{}, {"input": "coords"}], ids=["heatmaps", "coords"])
def test_mpt_pretrain_loss_is_finite_and_decreases(options):
    torch.manual_seed(0)
    lifter = build_lifter("mpt_tiny", 17, {**options})
    batch = _batch(8)
    opt = torch.optim.Adam(lifter.parameters(), lr=3e-3)
    totals = []
    for _ in range(30):
        loss = mpt_pretrain_loss(lifter, batch, 0.2, 0.75, 0.0, 0.0, 1.0, 0.5, torch.Generator().manual_seed(0))
        assert set(loss) == {"loss_3d", "loss_2d", "total"}
        assert all(torch.isfinite(v) for v in loss.values())
        opt.zero_grad()
        loss["total"].backward()
        opt.step()
        totals.append(loss["total"].item())
    assert totals[-1] < 0.9 * totals[0]


def test_mpt_pretrain_loss_with_noise_runs_and_weights_terms():
    torch.manual_seed(0)
    lifter = build_lifter("mpt_tiny")
    loss = mpt_pretrain_loss(lifter, _batch(4), 0.3, 0.75, 2.0, 0.05, 2.0, 0.25, torch.Generator().manual_seed(2))
    assert loss["total"].item() == pytest.approx(2 * loss["loss_3d"].item() + 0.25 * loss["loss_2d"].item(),
                                                 rel=1e-6)
    two = _batch(2)
    pair = PoseBatch(*(torch.cat([t, t], 1) for t in (two.joints_2d, two.valid_2d, two.joints_3d, two.valid_3d,
                                                        two.intrinsics)), two.is_3d, 64)
    with pytest.raises(ValueError, match="T = 1"):
        mpt_pretrain_loss(lifter, pair, 0.3, 0.75, 0.0, 0.0, 1.0, 1.0)


@pytest.mark.parametrize(("name", "options"), [("apt_tiny", {"fusion": "add"}), ("apt_tiny", {"reprojection": "analytic"}),
                                               ("mpt_tiny", {"input": "coords"}),
                                               ("mpt_tiny", {})])
def test_weight_file_round_trip(tmp_path, name, options):
    from pose_study.lifters import example_input, load_lifter, save_lifter

    torch.manual_seed(0)
    lifter = build_lifter(name, 17, options).eval()
    save_lifter(tmp_path / "model.pt", lifter)
    loaded = load_lifter(tmp_path / "model.pt").eval()
    x, valid = example_input(lifter, 2)
    x = torch.rand_like(x)
    assert loaded.options == options and torch.equal(loaded(x, valid), lifter(x, valid))


# --- the detector's σ and the paper's cameras -----------------------------------------------------

def test_heatmaps_at_the_detectors_sigma_known_peak_and_width():
    """σ = 2 heatmap px (the detector loop's default): peak 1 at the joint, exp(−d²/2σ²) around it."""
    sigma = 2.0
    joints = torch.tensor([[[4 * 8 + 1.5, 4 * 6 + 1.5]]])  # crop px → heatmap px (8, 6) exactly
    assert torch.equal(crop_to_heatmap(joints), torch.tensor([[[8.0, 6.0]]]))
    maps = synthesize_heatmaps(joints.expand(1, 17, 2), torch.ones(1, 17, dtype=torch.bool), 64, sigma)[0, 0]
    assert maps[6, 8].item() == pytest.approx(1.0)
    for dx, dy in [(2, 0), (0, 2), (-3, 0), (2, 2)]:
        assert maps[6 + dy, 8 + dx].item() == pytest.approx(torch.exp(torch.tensor(-(dx**2 + dy**2) / 8)).item())
    ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    weight = maps / maps.sum()
    variance_x = (weight * (xs - 8) ** 2).sum().item()
    assert variance_x == pytest.approx(sigma**2, rel=0.05)  # width: the Gaussian's σ (a slightly cut tail)


def test_plan_gives_pretrain_pose_and_evaluate_the_detector_loops_sigma():
    from pathlib import Path

    from pose_study import config as cfg
    from pose_study._spec import spec_from_dict
    from pose_study.plan import Plan, RunKey
    from pose_study.stages.pretrain_pose import PretrainPoseSpec

    data = cfg.load_config(Path(__file__).resolve().parents[2] / "config" / "synthetic.yaml")
    data["finetune_3d"]["loop"]["heatmap_sigma"] = 1.5
    plan = Plan(data)
    assert plan.detector_heatmap_sigma == 1.5
    key = RunKey(stage="pretrain_pose", lifter="mpt_tiny", dataset_3d="lab")
    spec = spec_from_dict(PretrainPoseSpec, plan.spec(key))
    assert spec.loop.heatmap_sigma == 1.5 and spec.virtual_cameras == "fixed" and spec.lr == pytest.approx(2e-4)
    run = RunKey(stage="finetune_3d", arm="mpt", model="hg1_tiny", dataset_2d="wild_mpii", dataset_3d="lab")
    assert plan.evaluate_spec(run)["heatmap_sigma"] == 1.5


def test_fixed_virtual_cameras_are_the_papers_four_h36m_views():
    from pose_study.lifters.pretraining import H36M_S1_CAMERAS, virtual_cameras

    joints = _poses(1).expand(64, 17, 3).clone()
    points, intrinsics = virtual_cameras(joints, 64, torch.Generator().manual_seed(0))
    depths = sorted({round(d) for d in points[:, 0, 2].tolist()})
    assert depths == sorted(round(d) for _, _, d in H36M_S1_CAMERAS)  # every one of the 4, and only those
    assert torch.allclose(torch.cdist(points, points), torch.cdist(joints, joints), atol=1e-2)  # rigid
    one = torch.zeros(1, 17, 3)
    one[0, :, 2] = 4000.0
    one[0, 1, 0] += 1000.0  # a 1 m bone along the camera's x axis
    for _ in range(8):
        seen, _ = virtual_cameras(one, 64, torch.Generator().manual_seed(_))
        yaw, pitch = next((y, p) for y, p, d in H36M_S1_CAMERAS if round(d) == round(seen[0, 0, 2].item()))
        bone = seen[0, 1] - seen[0, 0]
        yaw_r, pitch_r = torch.deg2rad(torch.tensor(yaw)), torch.deg2rad(torch.tensor(pitch))
        expected = 1000 * torch.stack([yaw_r.cos(), -pitch_r.sin() * -yaw_r.sin(), pitch_r.cos() * -yaw_r.sin()])
        assert torch.allclose(bone, expected, atol=1e-2)
    random, _ = virtual_cameras(joints, 64, torch.Generator().manual_seed(0), mode="random")
    assert len({round(d) for d in random[:, 0, 2].tolist()}) > 32
    with pytest.raises(ValueError, match="virtual_cameras"):
        virtual_cameras(joints, 64, mode="orbit")
