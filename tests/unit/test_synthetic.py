"""The synthetic pose world: determinism, label geometry, joint sets, flips, body and face cue."""

import numpy as np
import pytest

from pose_study.data.synthetic import body as body_mod
from pose_study.data.synthetic.generate import Chunk, synthesize_chunk
from pose_study.data.synthetic.poses import FAMILIES, clip_poses, draw_poses
from pose_study.data.synthetic.render import PARTS, figure_points, paint_body, part_radii
from pose_study.data.synthetic.worlds import WORLD_DEFS, SynthesizeSpec
from pose_study.skeletons import CANONICAL, FLIC11, LSP14, MPII16, provided_joints

N = 48
VARIANTS = {  # id -> (world, joint_set)
    "wild-mpii16": ("wild", "mpii16"), "wild-lsp14": ("wild", "lsp14"), "wild-flic11": ("wild", "flic11"),
    "lab": ("lab", ""), "occluded": ("occluded", ""), "outdoor": ("outdoor", ""),
}
WORLDS_3D = ("lab", "occluded", "outdoor")
J = {name: i for i, name in enumerate(CANONICAL.joints)}


def _spec(variant: str, **kw) -> SynthesizeSpec:
    world, joint_set = VARIANTS[variant]
    return SynthesizeSpec(**{"world": world, "split": "train", "num_samples": N, "joint_set": joint_set,
                             "seed": 7, **kw})


_CACHE: dict[tuple, Chunk] = {}


def render(variant: str, **kw) -> Chunk:
    """Render (and cache) all N samples of a variant."""
    key = (variant, tuple(sorted(kw.items())))
    if key not in _CACHE:
        _CACHE[key] = synthesize_chunk(_spec(variant, **kw), 0, N)
    return _CACHE[key]


def _arrays(c: Chunk) -> dict[str, np.ndarray]:
    names = ("images", "joints_2d", "joints_2d_valid", "joints_3d", "intrinsics", "center", "scale",
             "head_box")
    return {n: getattr(c, n) for n in names if getattr(c, n) is not None}


# --- determinism --------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_same_seed_gives_identical_arrays(variant):
    again = synthesize_chunk(_spec(variant), 0, N)
    for name, value in _arrays(render(variant)).items():
        np.testing.assert_array_equal(getattr(again, name), value, err_msg=name)
    assert list(again.clip) == list(render(variant).clip)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_different_seed_gives_different_data(variant):
    other = synthesize_chunk(_spec(variant, seed=8), 0, N)
    assert not np.array_equal(other.images, render(variant).images)
    assert not np.allclose(other.joints_2d, render(variant).joints_2d)


@pytest.mark.parametrize("variant", ["wild-mpii16", "lab", "outdoor"])
def test_chunking_does_not_change_the_data(variant):
    full = render(variant)
    parts = [synthesize_chunk(_spec(variant), a, b) for a, b in ((0, 1), (1, 13), (13, N))]
    for name, value in _arrays(full).items():
        np.testing.assert_array_equal(np.concatenate([getattr(p, name) for p in parts]), value, err_msg=name)


# --- label geometry -------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", WORLDS_3D)
def test_projecting_joints_3d_reproduces_joints_2d(variant):
    c = render(variant)
    uvw = np.einsum("nij,nkj->nki", c.intrinsics.astype(np.float64), c.joints_3d.astype(np.float64))
    err = np.abs(uvw[..., :2] / uvw[..., 2:] - c.joints_2d)[c.joints_2d_valid]
    assert c.joints_2d_valid.all() and err.max() < 0.5


def _on_body(joints: np.ndarray, valid: np.ndarray, body: np.ndarray, occluder: np.ndarray) -> np.ndarray:
    """Bool per checked joint: the body mask is set at the joint's pixel (unoccluded, in-crop joints)."""
    size = body.shape[1]
    px = np.round(joints).astype(int)
    check = valid & ((px >= 0) & (px < size)).all(-1)
    n, k = np.nonzero(check)
    n, k = n[~occluder[n, px[n, k, 1], px[n, k, 0]]], k[~occluder[n, px[n, k, 1], px[n, k, 0]]]
    assert len(n) > 0
    return body[n, px[n, k, 1], px[n, k, 0]]


@pytest.mark.parametrize("crop_size", [64, 97], ids=["64px", "97px"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_labels_land_on_the_person(variant, crop_size):
    c = render(variant, crop_size=crop_size)
    assert _on_body(c.joints_2d, c.joints_2d_valid, c.body_mask, c.occluder_mask).all()


def test_occluded_world_covers_some_labelled_joints():
    c = render("occluded")
    px = np.clip(np.round(c.joints_2d).astype(int), 0, 63)
    covered = c.occluder_mask[np.arange(N)[:, None], px[..., 1], px[..., 0]]
    assert covered.any() and c.joints_2d_valid[covered].all()


def test_wild_truncates_some_joints_and_has_no_3d():
    c = render("wild-mpii16")
    assert c.joints_3d is None and c.intrinsics is None
    provided = np.broadcast_to(provided_joints(MPII16), c.joints_2d_valid.shape)
    assert 0.5 < c.joints_2d_valid.sum() / provided.sum() < 1.0
    assert (c.joints_2d[~c.joints_2d_valid] == 0).all()


# --- flips ----------------------------------------------------------------------------------------


def hflip(images: np.ndarray, joints: np.ndarray, valid: np.ndarray, *masks: np.ndarray) -> tuple:
    """Mirror images [N,S,S,...] and labels: x -> S-1-x, then swap left/right joints."""
    size, perm = images.shape[2], CANONICAL.flip_permutation()
    flipped = joints.copy()
    flipped[..., 0] = np.where(valid, size - 1 - joints[..., 0], 0.0)
    return (images[:, :, ::-1], flipped[:, perm], valid[:, perm], *(m[:, :, ::-1] for m in masks))


@pytest.mark.parametrize("variant", ["wild-lsp14", "wild-flic11", "lab", "occluded"])
def test_flip_swaps_sides_keeps_masks_and_lands_on_the_flipped_body(variant):
    c = render(variant)
    images, joints, valid, body, occ = hflip(c.images, c.joints_2d, c.joints_2d_valid, c.body_mask,
                                             c.occluder_mask)
    perm = CANONICAL.flip_permutation()
    assert CANONICAL.joints[perm[J["l_wrist"]]] == "r_wrist"
    np.testing.assert_array_equal(valid[:, J["l_knee"]], c.joints_2d_valid[:, J["r_knee"]])
    assert valid.sum() == c.joints_2d_valid.sum()
    assert _on_body(joints, valid, body, occ).all()
    back = hflip(images, joints, valid)
    np.testing.assert_array_equal(back[0], c.images)
    np.testing.assert_allclose(back[1], c.joints_2d, atol=1e-4)


# --- joint sets -------------------------------------------------------------------------------------


def test_flic11_has_no_leg_joints():
    valid = render("wild-flic11").joints_2d_valid
    legs = [J[n] for n in ("r_knee", "r_ankle", "l_knee", "l_ankle")]
    assert not valid[:, legs].any()
    assert valid[:, ~provided_joints(FLIC11)].sum() == 0 and valid[:, J["l_shoulder"]].any()


def test_lsp14_masks_pelvis_spine_nose():
    c = render("wild-lsp14")
    assert not c.joints_2d_valid[:, [J["pelvis"], J["spine"], J["nose"]]].any()
    assert c.head_box is None and provided_joints(LSP14).sum() == 14


def test_mpii16_writes_a_head_box_around_the_head():
    c = render("wild-mpii16")
    box = c.head_box
    assert box.shape == (N, 4) and np.isfinite(box).all() and (box[:, 2:] > box[:, :2]).all()
    top, ok = c.joints_2d[:, J["head_top"]], c.joints_2d_valid[:, J["head_top"]]
    inside = (top >= box[:, :2] - 1).all(1) & (top <= box[:, 2:] + 1).all(1)
    assert inside[ok].all()
    size = 0.6 * np.linalg.norm(box[:, 2:] - box[:, :2], axis=1)  # PCKh head size
    both = ok & c.joints_2d_valid[:, J["neck"]]
    neck_to_top = np.linalg.norm(c.joints_2d[both, J["head_top"]] - c.joints_2d[both, J["neck"]], axis=1)
    assert 0.5 < np.median(size[both] / neck_to_top) < 2.0


# --- 3D worlds --------------------------------------------------------------------------------------


def test_lab_train_and_test_share_no_subject():
    spec = dict(world="lab", num_samples=160, clip_length=4)
    train = synthesize_chunk(SynthesizeSpec(split="train", **spec), 0, 160).subject
    test = synthesize_chunk(SynthesizeSpec(split="test", **spec), 0, 160).subject
    assert set(train) <= {"S1", "S5", "S6", "S7", "S8"} and set(test) <= {"S9", "S11"}
    assert not set(train) & set(test) and len(set(train)) > 1


@pytest.mark.parametrize("world", list(WORLD_DEFS))
def test_world_subject_pools_are_disjoint_across_splits(world):
    pools = [set(WORLD_DEFS[world].subjects.get(s, ())) for s in ("train", "val", "test")]
    assert not (pools[0] & pools[1] or pools[0] & pools[2] or pools[1] & pools[2])


@pytest.mark.parametrize("variant", WORLDS_3D)
def test_joints_3d_are_plausible_millimetres(variant):
    j = render(variant).joints_3d
    assert (j[..., 2] > 1500).all()  # in front of the camera, metres away
    assert np.abs(j[..., 2] - j[:, :1, 2]).max() < 1000
    bone = lambda a, b: np.linalg.norm(j[:, J[a]] - j[:, J[b]], axis=-1)  # noqa: E731
    chain = sum(bone(a, b) for a, b in (("r_ankle", "r_knee"), ("r_knee", "r_hip"), ("pelvis", "spine"),
                                        ("spine", "neck"), ("neck", "head_top")))
    height = chain / 0.96  # the ankle sits ~4 % of standing height above the floor
    assert 1400 < height.min() and height.max() < 2000


def test_clips_move_smoothly_and_share_metadata():
    c = render("lab")
    assert list(c.frame[:8]) == list(range(8)) and len(set(c.clip[:8])) == 1 and c.clip[8] != c.clip[0]
    rel = c.joints_3d - c.joints_3d[:, :1]
    step = np.linalg.norm(rel[1:8] - rel[:7], axis=-1).mean(axis=1)
    jump = np.linalg.norm(rel[8] - rel[7], axis=-1).mean()
    assert step.max() < 150 and len(set(c.subject[:8])) == 1 and len(set(c.action[:8])) == 1
    assert set(c.action) <= {f.name for f in FAMILIES} and jump > 0


# --- body and painter ---------------------------------------------------------------------------------


def _bodies(n: int = 4) -> tuple:
    shape = body_mod.body_shape(np.random.default_rng(0).random((n, body_mod.SHAPE_UNIFORMS)))
    posed = body_mod.forward_kinematics(np.zeros((n, body_mod.P)), shape)
    return shape, posed


def test_body_shapes_have_human_heights_and_bone_lengths():
    shape, posed = _bodies(64)
    assert (shape.height >= 1500).all() and (shape.height <= 1900).all()
    p = posed.points
    thigh = np.linalg.norm(p[:, J["l_knee"]] - p[:, J["l_hip"]], axis=1)
    np.testing.assert_allclose(thigh, shape.length("thigh"))
    assert (p[:, J["head_top"], 1] > p[:, J["neck"], 1]).all() and (p[:, J["l_ankle"], 1] < 0).all()
    assert (p[:, J["l_shoulder"], 0] > 0).all() and (p[:, J["r_shoulder"], 0] < 0).all()  # x = person's left


def test_subject_ids_fix_the_body():
    def shape(subject: str) -> body_mod.BodyShape:
        return body_mod.body_shape(body_mod.subject_uniforms(subject, body_mod.SHAPE_UNIFORMS)[None])

    a, b, c = shape("S1"), shape("S1"), shape("S9")
    np.testing.assert_array_equal(a.lengths, b.lengths)
    assert not np.allclose(a.lengths, c.lengths)


@pytest.mark.parametrize("family", range(len(FAMILIES)), ids=[f.name for f in FAMILIES])
def test_family_poses_respect_joint_limits(family):
    rng = np.random.default_rng(family)
    fam = np.full(32, family)
    start = draw_poses(fam, rng.random((32, body_mod.P)), rng.random(32) < 0.5, widen=1.5)
    pose = clip_poses(fam, start, start[::-1], rng.random(32), np.arange(32) % 8, 8)
    lo, hi = body_mod.LIMITS_DEG.T
    assert (pose >= lo).all() and (pose <= hi).all()


def _paint(facing_camera: bool) -> np.ndarray:
    """Part index map of upright bodies 4 m in front of a 64 px camera, facing it or facing away."""
    shape, posed = _bodies(2)
    pts = figure_points(posed, shape)
    sign = 1.0 if facing_camera else -1.0  # body (left, up, fwd) -> camera (x right, y down, z fwd)
    cam = np.stack([sign * pts[..., 0], 200.0 - pts[..., 1], 4000.0 - sign * pts[..., 2]], -1)
    focal = np.full(2, 100.0)
    xy = cam[..., :2] / cam[..., 2:] * focal[:, None, None] + 31.5
    radii = part_radii(shape) * 100.0 / 4000.0
    light = np.tile([0.0, -0.5, -0.8], (2, 1))
    return paint_body(xy, cam[..., 2], radii, focal, light / np.linalg.norm(light[0]), 64).part


def test_face_cue_shows_eyes_from_the_front_and_hair_from_the_back():
    slot = [p.slot for p in PARTS]
    eyes = [i for i, s in enumerate(slot) if s == "eyes"]
    hair = slot.index("hair")
    head = next(i for i, p in enumerate(PARTS) if p.a == p.b == "head_center")
    front, back = _paint(True), _paint(False)
    assert np.isin(front, eyes).sum() > 0 and np.isin(back, eyes).sum() == 0
    assert (back == hair).sum() > (back == head).sum() and (front == head).sum() > (front == hair).sum()


@pytest.mark.parametrize("field,value,match", [
    ("world", "moon", "world must be one of"), ("split", "dev", "split must be one of"),
    ("crop_size", 32, "crop_size"), ("num_samples", 0, "num_samples"), ("seed", -1, "seed"),
    ("joint_set", "h36m17", "joint_set"), ("image_encoding", "png", "image_encoding"),
    ("clip_length", 0, "clip_length"),
], ids=lambda v: str(v))
def test_spec_rejects_bad_values_naming_the_field(field, value, match):
    kw = {"world": "wild", "split": "train", "num_samples": 4, field: value}
    with pytest.raises(ValueError, match=match):
        SynthesizeSpec(**kw)


def test_spec_resolves_defaults():
    assert SynthesizeSpec("lab", "train", 1).joint_set == "h36m17"
    wild = SynthesizeSpec("wild", "val", 1, joint_set="lsp14")
    assert wild.dataset == "synth_wild_lsp14" and wild.frames_per_clip == 1
    with pytest.raises(ValueError, match="joint_set must be one of .* for world 'lab'"):
        SynthesizeSpec("lab", "train", 1, joint_set="mpii16")
