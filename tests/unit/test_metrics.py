"""Known-answer tests for pose_study.metrics (protocols: reference/datasets.md §10, seed_system.md §5)."""

import numpy as np
import pytest
from scipy.io import loadmat, savemat
from scipy.spatial.transform import Rotation

from pose_study import metrics as m
from pose_study.skeletons import CANONICAL, MPII16

K = CANONICAL.num_joints
J = CANONICAL.index


# --- fixtures (kept here: this file owns them) ----------------------------------------------------

def _poses_3d(n: int, seed: int = 0) -> np.ndarray:
    """[n, 17, 3] integer-valued mm poses (exact arithmetic for hand-computed answers)."""
    return np.random.default_rng(seed).integers(-500, 500, (n, K, 3)).astype(float)


def _bone_sum(pose: np.ndarray) -> np.ndarray:
    bones = np.asarray(m.SEED_BONES)
    return np.linalg.norm(pose[:, bones[:, 0]] - pose[:, bones[:, 1]], axis=-1).sum(axis=1)


def _seed_scaled(pose: np.ndarray) -> np.ndarray:
    """Root-relative poses rescaled to the seed's 4000 mm bone sum."""
    rel = pose - pose[:, :1]
    return rel * (m.SEED_BONE_LENGTH_SUM_MM / _bone_sum(rel))[:, None, None]


def _noisy_2d(n: int = 6, seed: int = 1):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0, 200, (n, K, 2))
    return gt + rng.normal(0, 8, gt.shape), gt


def _noisy_3d(n: int = 6, seed: int = 2):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(-400, 400, (n, K, 3))
    return gt + rng.normal(0, 80, gt.shape), gt


HEAD_BOX = np.array([0.0, 0.0, 30.0, 40.0])  # diagonal 50 -> head size 0.6 * 50 = 30

# Every metric as f(pred, gt, valid) on data of its dimension.
METRICS = {
    "pckh": (2, lambda p, g, v: m.pckh(p, g, v, np.tile(HEAD_BOX, (len(p), 1)))),
    "pck_lsp": (2, lambda p, g, v: m.pck(p, g, v)),
    "pck_flic": (2, lambda p, g, v: m.pck(p, g, v, joints=m.FLIC_PCK_JOINTS)),
    "mpjpe": (3, m.mpjpe),
    "p_mpjpe": (3, m.p_mpjpe),
    "n_mpjpe": (3, m.n_mpjpe),
    "pck3d": (3, m.pck3d),
    "auc": (3, m.auc),
}


def _data(dim: int):
    return _noisy_2d() if dim == 2 else _noisy_3d()


def _assert_same_score(a: m.Score, b: m.Score) -> None:
    assert a.value == b.value or (np.isnan(a.value) and np.isnan(b.value))
    np.testing.assert_array_equal(a.per_joint, b.per_joint)
    np.testing.assert_array_equal(a.per_sample, b.per_sample)
    np.testing.assert_array_equal(a.joint_count, b.joint_count)
    assert (a.count, a.empty_samples, a.joints) == (b.count, b.empty_samples, b.joints)


# --- MPJPE family ---------------------------------------------------------------------------------

@pytest.mark.parametrize("metric", [m.mpjpe, m.p_mpjpe, m.n_mpjpe], ids=["mpjpe", "p_mpjpe", "n_mpjpe"])
def test_identical_poses_score_zero(metric):
    gt = _seed_scaled(_poses_3d(4))
    score = metric(gt, gt, np.ones((4, K), bool))
    assert score.value == pytest.approx(0.0, abs=1e-9)
    assert (score.count, score.empty_samples) == (4 * K, 0)


def test_similarity_transform_is_absorbed_by_p_mpjpe_only():
    gt = _poses_3d(5)
    rotation = Rotation.random(5, random_state=3).as_matrix()
    pred = 1.7 * np.einsum("nij,nkj->nki", rotation, gt) + np.array([100.0, -250.0, 3000.0])
    valid = np.ones((5, K), bool)
    assert m.p_mpjpe(pred, gt, valid).value == pytest.approx(0.0, abs=1e-8)
    assert m.mpjpe(pred, gt, valid).value > 100


def test_reflection_is_not_absorbed_by_p_mpjpe():
    gt = _poses_3d(3)
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    assert m.p_mpjpe(mirrored, gt, np.ones((3, K), bool)).value > 50


def test_one_joint_moved_by_10_mm_gives_10_over_17():
    gt = _poses_3d(1)
    pred = gt.copy()
    pred[0, J("l_wrist"), 2] += 10.0
    score = m.mpjpe(pred, gt, np.ones((1, K), bool))
    assert score.value == 10 / 17
    assert score.per_joint[J("l_wrist")] == 10.0 and score.per_joint[0] == 0.0
    assert score.per_sample[0] == 10 / 17


def test_p_mpjpe_fits_on_valid_joints_only():
    pred, gt = _noisy_3d(4)
    keep = np.array([j for j in range(K) if j not in (J("l_wrist"), J("r_knee"))])
    valid = np.zeros((4, K), bool)
    valid[:, keep] = True
    subset = m.p_mpjpe(pred[:, keep], gt[:, keep], np.ones((4, len(keep)), bool), joints=range(len(keep)))
    assert m.p_mpjpe(pred, gt, valid).value == pytest.approx(subset.value, rel=1e-10)


def test_n_mpjpe_ignores_prediction_scale():
    gt = _seed_scaled(_poses_3d(3))
    assert m.n_mpjpe(0.001 * gt + 5.0, gt, np.ones((3, K), bool)).value == pytest.approx(0.0, abs=1e-9)


def test_n_mpjpe_rescales_prediction_to_reference_not_gt():
    # gt's bone sum is 4000 mm; with a reference of 8000 mm the prediction becomes 2 * gt, so every
    # joint's error is its root-relative distance |gt_j - gt_root|.
    gt = _seed_scaled(_poses_3d(2))
    score = m.n_mpjpe(gt, gt, np.ones((2, K), bool), reference_mm=8000.0)
    assert score.value == pytest.approx(np.linalg.norm(gt, axis=-1).mean(), rel=1e-12)


def test_n_mpjpe_sample_with_masked_bone_endpoint_is_empty():
    gt = _seed_scaled(_poses_3d(2))
    valid = np.ones((2, K), bool)
    valid[0, J("nose")] = False  # not a seed bone: still scored
    valid[1, J("head_top")] = False  # endpoint of bone 8-10: scale undefined
    score = m.n_mpjpe(gt, gt, valid)
    assert score.empty_samples == 1 and np.isnan(score.per_sample[1])
    assert score.count == K - 1


def test_mpjpe_sample_with_masked_root_is_empty():
    pred, gt = _noisy_3d(3)
    valid = np.ones((3, K), bool)
    valid[2, m.ROOT] = False
    score = m.mpjpe(pred, gt, valid)
    assert score.empty_samples == 1
    assert score.value == pytest.approx(m.mpjpe(pred[:2], gt[:2], valid[:2]).value, rel=1e-12)


# --- MPI-INF-3DHP ---------------------------------------------------------------------------------

def _offset(error_mm: float, n: int = 2):
    """gt and a prediction whose every non-root joint is off by error_mm along x (root exact)."""
    gt = _poses_3d(n)
    pred = gt.copy()
    pred[:, 1:, 0] += error_mm
    return pred, gt, np.ones((n, K), bool)


@pytest.mark.parametrize(
    "error_mm, expected",
    [(149.5, 1.0), (150.0, 0.0), (150.5, 0.0)],
    ids=["below", "exactly_150_is_wrong", "above"],
)
def test_pck3d_threshold_is_strict(error_mm, expected):
    score = m.pck3d(*_offset(error_mm))
    assert score.value == expected
    assert score.count == 2 * len(m.MPI3DHP_PCK_JOINTS)


@pytest.mark.parametrize(
    "error_mm, expected",
    [(0.0, 30 / 31), (77.5, 15 / 31), (150.0, 0.0), (400.0, 0.0)],
    ids=["perfect_is_30_of_31", "midway", "at_150", "all_above_150"],
)
def test_auc_over_0_to_150_mm_in_5_mm_steps(error_mm, expected):
    # Strict "<" at every threshold, 0 mm included (mpii_compute_3d_pck.m): an exact prediction
    # fails only the 0 mm threshold.
    assert m.auc(*_offset(error_mm)).value == pytest.approx(expected, abs=1e-12)


def test_auc_with_zero_excluded_gives_1_for_perfect_prediction():
    assert m.auc(*_offset(0.0), thresholds=np.arange(5, 151, 5)).value == 1.0


def test_mpi3dhp_table_groups():
    pred, gt, valid = _offset(0.0)
    pred[:, J("l_knee"), 0] += 200.0
    table = m.table(m.pck3d(pred, gt, valid), m.MPI3DHP_PCK_COLUMNS)
    assert table["Knee"] == 0.5 and table["Head"] == 1.0
    assert table["Total"] == pytest.approx(13 / 14)


# --- 2D: PCKh and PCK -----------------------------------------------------------------------------

def test_pckh_hand_case_with_inclusive_threshold():
    gt = np.random.default_rng(0).uniform(50, 150, (1, K, 2))
    pred = gt.copy()
    pred[0, J("l_wrist")] += (9.0, 12.0)  # 15 px = 0.5 * 30: correct (<=)
    pred[0, J("r_knee")] += (0.0, 15.5)  # wrong
    pred[0, J("pelvis")] += 99.0  # not scored
    pred[0, J("nose")] += 99.0  # not an MPII joint
    score = m.pckh(pred, gt, np.ones((1, K), bool), HEAD_BOX[None])
    assert score.value == pytest.approx(13 / 14)
    assert score.count == 14 and score.joints == m.PCKH_JOINTS
    assert score.per_joint[J("l_wrist")] == 1.0 and score.per_joint[J("r_knee")] == 0.0
    assert np.isnan(score.per_joint[J("pelvis")])


def _mpii_official_fixture(path):
    """gt_valid.mat-style arrays for 2 samples, MPII-16 order, 1-based pixels."""
    rng = np.random.default_rng(4)
    gt = rng.uniform(100, 300, (16, 2, 2)).round()
    pred = gt.copy()
    missing = np.zeros((16, 2))
    r_ankle, r_knee, pelvis, thorax, head_top, l_wrist = (MPII16.index(j) for j in (
        "r_ankle", "r_knee", "pelvis", "thorax", "head_top", "l_wrist"))
    # sample 0: head box (10,20)-(40,60), diagonal 50 -> threshold 0.5 * 30 = 15 px
    pred[r_ankle, :, 0] += (9.0, 12.0)  # 15: correct
    pred[r_knee, :, 0] += (0.0, 16.0)  # wrong
    pred[l_wrist, :, 0] += 100.0
    missing[l_wrist, 0] = 1  # ... but missing in GT: ignored
    pred[[pelvis, thorax], :, 0] += 100.0  # not scored
    # sample 1: head box (1,1)-(61,81), diagonal 100 -> threshold 30 px
    pred[r_knee, :, 1] += (29.0, 0.0)  # correct
    pred[head_top, :, 1] += (0.0, 31.0)  # wrong
    boxes = np.zeros((2, 2, 2))
    boxes[:, :, 0] = [[10, 20], [40, 60]]
    boxes[:, :, 1] = [[1, 1], [61, 81]]
    savemat(path, {"pos_gt_src": gt, "jnt_missing": missing, "headboxes_src": boxes})
    return pred


def test_mpii_pckh_on_official_layout_round_trip(tmp_path):
    pred = _mpii_official_fixture(tmp_path / "gt_valid.mat")
    mat = loadmat(tmp_path / "gt_valid.mat")
    score = m.mpii_pckh(pred, mat["pos_gt_src"], mat["jnt_missing"], mat["headboxes_src"])
    expected = {"r_ankle": 1.0, "r_knee": 0.5, "head_top": 0.5, "l_wrist": 1.0, "neck": 1.0}
    assert {j: score.per_joint[J(j)] for j in expected} == expected
    assert score.joint_count[J("l_wrist")] == 1 and score.joint_count[J("r_knee")] == 2
    assert (score.count, score.empty_samples) == (27, 0)
    assert score.value == pytest.approx(25 / 27)
    table = m.table(score, m.MPII_PCKH_COLUMNS)
    assert (table["Head"], table["Knee"], table["Ankle"]) == (0.75, 0.75, 1.0)
    assert table["Total"] == score.value


def test_mpii_ubody_pools_the_six_arm_joints_over_annotated_instances():
    """computePCK.m: UBody = correct arm entries / annotated arm entries; no neck or head top."""
    gt = np.random.default_rng(6).uniform(50, 150, (3, K, 2))
    pred, valid = gt.copy(), np.ones((3, K), bool)
    boxes = np.tile([0.0, 0.0, 60.0, 80.0], (3, 1))  # diagonal 100 -> threshold 0.5 * 60 = 30 px
    pred[0, J("l_shoulder")] += (0.0, 31.0)  # l_shoulder 2/3
    pred[[0, 1], J("r_elbow")] += (31.0, 0.0)  # r_elbow 1/3
    valid[[1, 2], J("l_wrist")] = False
    pred[:, J("l_wrist")] += 99.0  # l_wrist 0/1 (the masked ones do not count)
    pred[:, [J("neck"), J("head_top")]] += 99.0  # head wrong everywhere: not part of UBody
    table = m.table(m.pckh(pred, gt, valid, boxes), m.MPII_PCKH_COLUMNS)
    # arm entries: 3 + 3 + 3 + 3 + 1 + 3 = 16 annotated, 2 + 3 + 3 + 1 + 0 + 3 = 12 correct
    assert table["UBody"] == pytest.approx(12 / 16)  # per-joint equal weight would give 4/6
    assert table["Head"] == 0.0 and table["Wrist"] == pytest.approx(0.5)
    assert table["Total"] == pytest.approx((12 + 3 * 6) / (16 + 3 * 8))


def test_pooled_column_of_joints_without_entries_is_nan():
    gt = np.zeros((1, K, 2))
    valid = np.zeros((1, K), bool)
    valid[0, J("r_knee")] = True
    score = m.pckh(gt, gt, valid, np.array([[0.0, 0.0, 60.0, 80.0]]))
    assert np.isnan(m.table(score, m.MPII_PCKH_COLUMNS)["UBody"])


def test_pck_torso_normalised_hand_case():
    gt = np.random.default_rng(5).uniform(50, 150, (1, K, 2))
    gt[0, J("l_shoulder")] = (100.0, 100.0)
    gt[0, J("r_hip")] = (130.0, 140.0)  # torso 50 px -> threshold 0.2 * 50 = 10 px
    pred = gt.copy()
    pred[0, J("l_ankle")] += (6.0, 8.0)  # 10 px: correct (<=, eval_pck.m)
    pred[0, J("r_elbow")] += (0.0, 10.5)  # wrong
    score = m.pck(pred, gt, np.ones((1, K), bool))
    assert score.value == pytest.approx(13 / 14) and score.count == 14


def test_pck_flic_scores_elbows_and_wrists_only():
    pred, gt = _noisy_2d()
    valid = np.ones(gt.shape[:2], bool)
    before = m.pck(pred, gt, valid, joints=m.FLIC_PCK_JOINTS)
    pred[:, [J("l_shoulder"), J("r_hip"), J("head_top")]] += 500.0
    after = m.pck(pred, gt, valid, joints=m.FLIC_PCK_JOINTS)
    _assert_same_score(before, after)
    assert after.count == 4 * len(gt) and after.joints == tuple(sorted(m.FLIC_PCK_JOINTS))


def test_pck_sample_without_torso_is_reported_not_scored():
    pred, gt = _noisy_2d(3)
    valid = np.ones((3, K), bool)
    valid[1, J("r_hip")] = False
    score = m.pck(pred, gt, valid)
    assert score.empty_samples == 1 and np.isnan(score.per_sample[1])
    assert score.value == m.pck(pred[[0, 2]], gt[[0, 2]], valid[[0, 2]]).value


# --- masks, for every metric ---------------------------------------------------------------------

@pytest.mark.parametrize("name", list(METRICS))
def test_masked_joint_prediction_never_contributes(name):
    dim, metric = METRICS[name]
    pred, gt = _data(dim)
    valid = np.ones(gt.shape[:2], bool)
    valid[0, J("l_wrist")] = valid[1, J("nose")] = valid[2, J("r_knee")] = False
    before = metric(pred, gt, valid)
    pred[~valid] = np.nan
    gt[~valid] = 1e6
    _assert_same_score(before, metric(pred, gt, valid))


@pytest.mark.parametrize("name", list(METRICS))
def test_sample_without_valid_joint_is_reported_and_not_averaged(name):
    dim, metric = METRICS[name]
    pred, gt = _data(dim)
    valid = np.ones(gt.shape[:2], bool)
    base = metric(pred, gt, valid)
    valid = np.concatenate([valid, np.zeros((1, K), bool)])
    score = metric(np.concatenate([pred, pred[:1]]), np.concatenate([gt, gt[:1]]), valid)
    assert score.empty_samples == base.empty_samples + 1 and np.isnan(score.per_sample[-1])
    assert score.value == pytest.approx(base.value, rel=1e-12) and score.count == base.count


@pytest.mark.parametrize("name", list(METRICS))
def test_no_valid_entry_gives_nan_not_zero(name):
    dim, metric = METRICS[name]
    pred, gt = _data(dim)
    score = metric(pred, gt, np.zeros(gt.shape[:2], bool))
    assert np.isnan(score.value) and score.count == 0 and score.empty_samples == len(gt)
    assert np.isnan(score.per_joint).all()


# --- user errors ----------------------------------------------------------------------------------

def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 17, 3\).*\(2, 16, 3\)"):
        m.mpjpe(np.zeros((2, 17, 3)), np.zeros((2, 16, 3)), np.ones((2, 17), bool))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: m.mpjpe(np.zeros((2, K, 3)), np.zeros((2, K, 3)), np.ones((2, 16))), r"valid.*\(2, 16\)"),
        (lambda: m.pckh(np.zeros((2, K, 2)), np.zeros((2, K, 2)), np.ones((2, K)), np.zeros(4)), "head_box"),
        (lambda: m.pck(np.zeros((1, K, 2)), np.zeros((1, K, 2)), np.ones((1, K)), joints=[3, 17]), "17"),
        (lambda: m.mpjpe(np.zeros((1, K, 2)), np.zeros((1, K, 2)), np.ones((1, K))), r"\[N, K, 3\]"),
        (lambda: m.mpjpe(np.zeros((1, K, 3)), np.full((1, K, 3), np.nan), np.ones((1, K))), "non-finite"),
        (lambda: m.mpii_pckh(np.zeros((16, 2, 3)), np.zeros((16, 2, 3)), np.zeros((3, 16)),
                             np.zeros((2, 2, 3))), r"jnt_missing.*\(16, 3\).*\(3, 16\)"),
        (lambda: m.auc(np.zeros((1, K, 3)), np.zeros((1, K, 3)), np.ones((1, K)), thresholds=[]),
         "thresholds"),
        (lambda: m.n_mpjpe(np.zeros((1, K, 3)), np.zeros((1, K, 3)), np.ones((1, K)), reference_mm=0),
         "reference_mm"),
    ],
    ids=["valid_shape", "head_box_shape", "joint_out_of_range", "dim", "nan_gt", "mpii_layout", "thresholds",
         "reference"],
)
def test_bad_input_raises_value_error_naming_it(call, message):
    with pytest.raises(ValueError, match=message):
        call()
