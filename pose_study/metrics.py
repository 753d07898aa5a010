"""Pose metrics, one pure function per evaluation protocol (numpy in, numbers out).

Every function takes poses in the canonical joint set (``skeletons.CANONICAL``) with a validity
mask, and returns a ``Score``. Shapes use N (samples) and K (joints). The mask is honoured
everywhere: a masked joint never contributes, whatever its prediction, and a sample that cannot
be scored (no valid scored joint, or its normaliser - root, torso, head box, bones - is missing)
is counted in ``Score.empty_samples``, never averaged in as zero error.

Aggregation: ``Score.value`` is the mean over all valid (sample, joint) entries, which is how the
official toolkits compute "Total"/"Mean" (MPII ``jnt_ratio`` weighting; MPI-INF-3DHP
joint-count-weighted total). PCK-family values (PCKh, PCK, 3DPCK, AUC) are fractions in [0, 1];
multiply by 100 for tables. Distances are in the units of the input: pixels for 2D, mm for 3D.

Protocol sources are in ``reference/datasets.md`` (§1.4, §2.3, §3.2, §4.6, §5.4, §10) and
``reference/seed_system.md`` §5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pose_study.skeletons import CANONICAL, MPII16, ROOT, to_canonical

_J = CANONICAL.index

# --- per-protocol joint subsets, as canonical indices ---------------------------------------------

# MPII PCKh "Total": the 14 joints of the official matrix (legs, arms, upper_neck, head_top);
# pelvis and thorax are excluded (thorax has no canonical joint).
PCKH_JOINTS = tuple(
    _J(n) for n in ("r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "neck", "head_top",
                    "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist")
)
LSP_PCK_JOINTS = PCKH_JOINTS  # all 14 LSP joints (neck, head_top, limbs) map onto the same set
FLIC_PCK_JOINTS = tuple(_J(n) for n in ("l_elbow", "l_wrist", "r_elbow", "r_wrist"))
H36M_JOINTS = tuple(range(CANONICAL.num_joints))  # all 17, root included (its error is 0)
# MPI-INF-3DHP 3DPCK/AUC: 14 joints, pelvis, spine and head (canonical nose) excluded.
MPI3DHP_PCK_JOINTS = tuple(
    _J(n) for n in ("head_top", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow",
                    "l_wrist", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle")
)
TORSO = (_J("l_shoulder"), _J("r_hip"))  # LSP/FLIC PCK normaliser (bearpaw/eval_pose, MODEC)



@dataclass(frozen=True)
class Pooled:
    """A table column pooled over all valid entries of its joints (entry-weighted, not per joint).

    Attributes:
        joints: Canonical indices of the pooled joints.
    """

    joints: tuple[int, ...]


# Official table columns: name -> joints (unweighted mean of per-joint values: limbs average left
# and right) or ``Pooled`` joints; "Total" is ``Score.value``.
_LIMBS = {part.capitalize(): (_J(f"l_{part}"), _J(f"r_{part}"))
          for part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")}
# evalMPII ``computePCK.m``: "UBody" is the PCKh of rows 7:12 of the toolkit's 14-joint matrix, the
# six arm joints (wrists, elbows, shoulders), pooled over all their non-NaN (annotated) entries with
# ``<=``; neck and head top (rows 13, 14) are not part of it.
MPII_PCKH_COLUMNS = {
    "Head": (_J("neck"), _J("head_top")),
    **_LIMBS,
    "UBody": Pooled(tuple(_J(n) for n in ("l_shoulder", "r_shoulder", "l_elbow", "r_elbow",
                                          "l_wrist", "r_wrist"))),
}
MPI3DHP_PCK_COLUMNS = {"Head": (_J("head_top"),), "Neck": (_J("neck"),), **_LIMBS}

MPII_SC_BIAS = 0.6  # head size = 0.6 x head-box diagonal (evalMPII util_get_head_size.m)
MPI3DHP_AUC_THRESHOLDS_MM = np.arange(0.0, 151.0, 5.0)  # 0:5:150, 31 values (mpii_compute_3d_pck.m)

# The seed's scale alignment (seed_system.md §5.2 step 4): 15 canonical (child, parent) bones,
# nose excluded, whose summed predicted length is set to 4000 mm.
SEED_BONES = ((3, 2), (2, 1), (1, 0), (0, 4), (4, 5), (5, 6), (0, 7), (7, 8), (8, 10),
              (16, 15), (15, 14), (14, 8), (8, 11), (11, 12), (12, 13))
SEED_BONE_LENGTH_SUM_MM = 4000.0


@dataclass(frozen=True, eq=False)
class Score:
    """One metric over a set of samples.

    Attributes:
        value: Mean over all valid (sample, joint) entries; NaN if there are none.
        per_joint: [K] mean per joint; NaN for joints not scored or with no valid entry.
        per_sample: [N] mean per sample; NaN for samples that could not be scored.
        joint_count: [K] int, valid entries per joint.
        count: Valid entries in total.
        empty_samples: Samples that could not be scored (no valid scored joint, or missing
            normaliser); they are excluded from every mean.
        joints: Canonical indices of the scored joints.
    """

    value: float
    per_joint: np.ndarray
    per_sample: np.ndarray
    joint_count: np.ndarray
    count: int
    empty_samples: int
    joints: tuple[int, ...]


# --- 2D: PCKh and PCK ----------------------------------------------------------------------------

def pckh(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, head_box: np.ndarray,
         alpha: float = 0.5, joints: Sequence[int] = PCKH_JOINTS) -> Score:
    """MPII PCKh@alpha (official definition, evalMPII ``evaluatePCKh.m``; datasets.md §1.4).

    A joint is correct if ``||pred - gt|| <= alpha * 0.6 * ||(x2, y2) - (x1, y1)||`` (inclusive,
    as the official toolkit's ``computePCK.m`` and §1.4). The Python port the seed uses, bearpaw
    ``eval_PCKh.py``, is strict (``<``); the two differ only for errors exactly on the threshold.
    A sample whose head box is not finite or has zero size is unscorable.

    Args:
        pred: [N, K, 2] predicted joints, pixels.
        gt: [N, K, 2] ground-truth joints, same pixel convention as ``pred``.
        valid: [N, K] bool, True where the ground truth is annotated.
        head_box: [N, 4] head rectangle x1, y1, x2, y2, pixels.
        alpha: Threshold as a fraction of head size (0.5 for PCKh@0.5).
        joints: Scored canonical joints; the default is the official 14 (no pelvis/thorax).

    Returns:
        Score of per-entry correctness (fractions in [0, 1]).
    """
    pred, gt, valid = _check_poses(pred, gt, valid, dim=2)
    head_box = np.asarray(head_box, dtype=np.float64)
    if head_box.shape != (pred.shape[0], 4):
        raise ValueError(f"head_box must have shape {(pred.shape[0], 4)}, got {head_box.shape}")
    _check_nonnegative("alpha", alpha)
    head_size = MPII_SC_BIAS * np.hypot(head_box[:, 2] - head_box[:, 0], head_box[:, 3] - head_box[:, 1])
    scorable = np.isfinite(head_size) & (head_size > 0)
    correct = _distance(pred, gt, valid) <= alpha * head_size[:, None]
    return _score(correct, valid, scorable, joints)


def mpii_pckh(pos_pred_src: np.ndarray, pos_gt_src: np.ndarray, jnt_missing: np.ndarray,
              headboxes_src: np.ndarray, alpha: float = 0.5) -> Score:
    """MPII PCKh on the official evaluation layout (``gt_valid.mat``; datasets.md §1.4).

    Arrays are as ``scipy.io.loadmat`` returns them, joints in MPII-16 order. Predictions must use
    the same 1-based pixel convention as ``pos_gt_src`` (add 1 to 0-based predictions). The
    result is ``pckh`` on the canonical mapping (thorax dropped) over ``PCKH_JOINTS``.

    Args:
        pos_pred_src: [16, 2, N] predicted joints, 1-based pixels.
        pos_gt_src: [16, 2, N] ground-truth joints, 1-based pixels.
        jnt_missing: [16, N] 1 where the ground-truth joint is missing.
        headboxes_src: [2, 2, N] head box as [corner (0 top-left, 1 bottom-right), xy, sample].
        alpha: Threshold as a fraction of head size.

    Returns:
        Score over the canonical joints (see ``pckh``).
    """
    pos_pred_src, pos_gt_src = np.asarray(pos_pred_src), np.asarray(pos_gt_src)
    jnt_missing, headboxes_src = np.asarray(jnt_missing), np.asarray(headboxes_src)
    if pos_gt_src.ndim != 3:
        raise ValueError(f"pos_gt_src must have shape (16, 2, N) (MPII evaluation layout), "
                         f"got {pos_gt_src.shape}")
    n = pos_gt_src.shape[-1]
    expected = {"pos_pred_src": (16, 2, n), "pos_gt_src": (16, 2, n), "jnt_missing": (16, n),
                "headboxes_src": (2, 2, n)}
    for name, array in zip(expected, (pos_pred_src, pos_gt_src, jnt_missing, headboxes_src)):
        if array.shape != expected[name]:
            raise ValueError(f"{name} must have shape {expected[name]} (MPII evaluation layout), "
                             f"got {array.shape}")
    valid = jnt_missing.T == 0
    pred, _ = to_canonical(pos_pred_src.transpose(2, 0, 1), valid, MPII16)
    gt, canon_valid = to_canonical(pos_gt_src.transpose(2, 0, 1), valid, MPII16)
    head_box = np.stack([headboxes_src[0, 0], headboxes_src[0, 1], headboxes_src[1, 0],
                         headboxes_src[1, 1]], axis=1)
    return pckh(pred, gt, canon_valid, head_box, alpha=alpha, joints=PCKH_JOINTS)


def pck(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, alpha: float = 0.2,
        joints: Sequence[int] = LSP_PCK_JOINTS) -> Score:
    """Torso-normalised PCK@alpha for LSP and FLIC (bearpaw/eval_pose ``eval_pck.m``, MODEC).

    A joint is correct if ``||pred - gt|| <= alpha * ||gt[l_shoulder] - gt[r_hip]||`` (inclusive,
    as ``eval_pck.m``). Left/right are person-centric (canonical convention). A sample whose torso
    joints are not both valid, or coincide, is unscorable. LSP scores ``LSP_PCK_JOINTS`` (the
    default); FLIC scores elbows and wrists: pass ``joints=FLIC_PCK_JOINTS``.

    Args:
        pred: [N, K, 2] predicted joints, pixels.
        gt: [N, K, 2] ground-truth joints, pixels.
        valid: [N, K] bool, True where the ground truth is annotated.
        alpha: Threshold as a fraction of torso size (0.2 for PCK@0.2).
        joints: Scored canonical joints.

    Returns:
        Score of per-entry correctness (fractions in [0, 1]).
    """
    pred, gt, valid = _check_poses(pred, gt, valid, dim=2)
    _check_nonnegative("alpha", alpha)
    shoulder, hip = TORSO
    torso = np.linalg.norm(gt[:, shoulder] - gt[:, hip], axis=-1)
    scorable = valid[:, shoulder] & valid[:, hip] & (torso > 0)
    correct = _distance(pred, gt, valid) <= alpha * torso[:, None]
    return _score(correct, valid, scorable, joints)


# --- 3D: MPJPE family ----------------------------------------------------------------------------

def mpjpe(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, root: int | None = ROOT,
          joints: Sequence[int] = H36M_JOINTS) -> Score:
    """Human3.6M Protocol #1, MPJPE: mean Euclidean joint error after root-centering (§4.6).

    Each pose has its own root subtracted; the root itself then counts with error 0 (as in
    VideoPose3D and the seed). A sample whose ground-truth root is not valid is unscorable.

    Args:
        pred: [N, K, 3] predicted joints, mm.
        gt: [N, K, 3] ground-truth joints, mm.
        valid: [N, K] bool, True where the ground truth is annotated.
        root: Root joint index, or None if the poses are already root-relative.
        joints: Scored canonical joints.

    Returns:
        Score of per-entry errors, mm.
    """
    pred, gt, valid = _check_poses(pred, gt, valid, dim=3)
    pred, gt, scorable = _root_relative(pred, gt, valid, root)
    return _score(_distance(pred, gt, valid), valid, scorable, joints)


def p_mpjpe(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray,
            joints: Sequence[int] = H36M_JOINTS) -> Score:
    """Human3.6M Protocol #2, P-MPJPE: MPJPE after similarity Procrustes alignment (§4.6).

    Per sample, the prediction is aligned to the ground truth by the rotation, translation and
    uniform scale that minimise squared error over the valid scored joints (reflections excluded,
    as VideoPose3D ``common/loss.py``). Root-centering is unnecessary: the fit includes translation.

    Args:
        pred: [N, K, 3] predicted joints, mm.
        gt: [N, K, 3] ground-truth joints, mm.
        valid: [N, K] bool, True where the ground truth is annotated.
        joints: Scored canonical joints; only these take part in the fit.

    Returns:
        Score of per-entry errors after alignment, mm.
    """
    pred, gt, valid = _check_poses(pred, gt, valid, dim=3)
    fit = valid & _joint_mask(joints, pred.shape[1])
    aligned = _procrustes(pred, gt, fit)
    return _score(_distance(aligned, gt, fit), fit, np.ones(len(pred), bool), joints)


def n_mpjpe(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, root: int | None = ROOT,
            bones: Sequence[tuple[int, int]] = SEED_BONES,
            reference_mm: float = SEED_BONE_LENGTH_SUM_MM,
            joints: Sequence[int] = H36M_JOINTS) -> Score:
    """The seed's bone-length-normalised MPJPE (seed_system.md §5.2), to set beside its 64.55 mm.

    This is **not** standard Protocol #1. As the seed does, each root-centred prediction is
    rescaled so that the sum of its lengths over ``bones`` equals ``reference_mm`` (the seed: a
    fixed 4000 mm over 15 bones, the same constant for every dataset; the ground truth is never
    rescaled), then MPJPE is taken against the root-centred ground truth. Only the prediction's
    shape matters, so ``pred`` may be in any unit. The seed averages over all 17 joints; here the
    mask applies as everywhere: a sample is unscorable if its ground-truth root or any endpoint of
    ``bones`` is masked (so a masked joint's prediction cannot change the scale), or if its
    predicted bone sum is 0. For a skeleton lacking a bone joint, pass matching ``bones`` and
    ``reference_mm``. The seed's interpolation of spine and nose in the prediction is a model
    output convention, not part of this metric.

    Args:
        pred: [N, K, 3] predicted joints, any unit.
        gt: [N, K, 3] ground-truth joints, mm.
        valid: [N, K] bool, True where the ground truth is annotated.
        root: Root joint index, or None if the poses are already root-relative.
        bones: (child, parent) canonical index pairs whose predicted lengths are summed.
        reference_mm: Target sum of the predicted bone lengths, mm.
        joints: Scored canonical joints.

    Returns:
        Score of per-entry errors after rescaling, mm.
    """
    pred, gt, valid = _check_poses(pred, gt, valid, dim=3)
    bones = np.asarray(bones, dtype=int).reshape(-1, 2)
    if len(bones) == 0 or bones.min() < 0 or bones.max() >= pred.shape[1]:
        raise ValueError(f"bones must be non-empty (child, parent) pairs in 0..{pred.shape[1] - 1}, "
                         f"got {bones.tolist()}")
    if not reference_mm > 0:
        raise ValueError(f"reference_mm must be positive, got {reference_mm}")
    pred, gt, scorable = _root_relative(pred, gt, valid, root)
    scorable &= valid[:, bones].all(axis=(1, 2))
    length = np.linalg.norm(pred[:, bones[:, 0]] - pred[:, bones[:, 1]], axis=-1).sum(axis=1)
    length = np.where(scorable, length, 0.0)
    scorable &= length > 0
    scale = np.divide(reference_mm, length, out=np.zeros_like(length), where=scorable)
    return _score(_distance(pred * scale[:, None, None], gt, valid), valid, scorable, joints)


# --- 3D: MPI-INF-3DHP PCK and AUC ----------------------------------------------------------------

def pck3d(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, threshold_mm: float = 150.0,
          root: int | None = ROOT, joints: Sequence[int] = MPI3DHP_PCK_JOINTS) -> Score:
    """MPI-INF-3DHP 3DPCK (official ``mpii_compute_3d_pck.m``; datasets.md §5.4).

    Root-centred joint error **strictly below** ``threshold_mm`` counts as correct, as the
    official code (``error < 150``): an error of exactly 150 mm is not correct.

    Args:
        pred: [N, K, 3] predicted joints, mm.
        gt: [N, K, 3] ground-truth joints, mm.
        valid: [N, K] bool, True where the ground truth is annotated (valid frames only).
        threshold_mm: Error threshold, mm.
        root: Root joint index, or None if the poses are already root-relative.
        joints: Scored canonical joints; the default is the official 14.

    Returns:
        Score of per-entry correctness (fractions in [0, 1]).
    """
    return auc(pred, gt, valid, thresholds=(threshold_mm,), root=root, joints=joints)


def auc(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray,
        thresholds: Sequence[float] | np.ndarray = MPI3DHP_AUC_THRESHOLDS_MM,
        root: int | None = ROOT, joints: Sequence[int] = MPI3DHP_PCK_JOINTS) -> Score:
    """MPI-INF-3DHP AUC: mean 3DPCK over thresholds 0:5:150 mm (``mpii_compute_3d_pck.m``, §5.4).

    Reported as a fraction in [0, 1] (the official table multiplies by 100). As in the official
    code the comparison is strict at every threshold, 0 mm included, so a perfect prediction
    scores 30/31, not 1. Each entry's value is the fraction of thresholds it passes; since all
    thresholds share the same entries, every mean of these is the mean of the per-threshold PCKs.

    Args:
        pred: [N, K, 3] predicted joints, mm.
        gt: [N, K, 3] ground-truth joints, mm.
        valid: [N, K] bool, True where the ground truth is annotated.
        thresholds: [T] error thresholds, mm.
        root: Root joint index, or None if the poses are already root-relative.
        joints: Scored canonical joints; the default is the official 14.

    Returns:
        Score of per-entry mean correctness over thresholds (fractions in [0, 1]).
    """
    pred, gt, valid = _check_poses(pred, gt, valid, dim=3)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.ndim != 1 or len(thresholds) == 0 or not np.isfinite(thresholds).all():
        raise ValueError(f"thresholds must be a non-empty 1-D array of finite mm, got {thresholds}")
    pred, gt, scorable = _root_relative(pred, gt, valid, root)
    error = _distance(pred, gt, valid)
    passed = (error[..., None] < thresholds).mean(axis=-1)
    return _score(passed, valid, scorable, joints)


# --- tables ---------------------------------------------------------------------------------------

def table(score: Score, columns: dict[str, tuple[int, ...] | Pooled]) -> dict[str, float]:
    """Official table columns from a score, e.g. ``table(s, MPII_PCKH_COLUMNS)``.

    A column given as a tuple is the unweighted mean of its joints' per-joint values, as the
    official MPII code averages left and right (equal to the entry-weighted mean whenever the
    joints have the same number of valid entries, as on 3DHP valid frames); joints with no valid
    entry are skipped. A ``Pooled`` column is the mean over all valid entries of its joints, each
    joint weighted by its count of valid entries (MPII ``computePCK.m`` "UBody"). "Total" is
    ``score.value``.

    Args:
        score: Output of a metric.
        columns: Column name -> canonical joints, or ``Pooled`` joints.

    Returns:
        Column name -> value (NaN if none of its joints has a valid entry), then "Total".
    """
    out = {}
    for name, joints in columns.items():
        pooled = isinstance(joints, Pooled)
        out[name] = _pooled(score, joints.joints) if pooled else _joint_mean(score, joints)
    out["Total"] = score.value
    return out


def _joint_mean(score: Score, joints: tuple[int, ...]) -> float:
    values = score.per_joint[list(joints)]
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else float("nan")


def _pooled(score: Score, joints: tuple[int, ...]) -> float:
    counts = score.joint_count[list(joints)]
    if counts.sum() == 0:
        return float("nan")
    values = np.where(counts > 0, score.per_joint[list(joints)], 0.0)
    return float((values * counts).sum() / counts.sum())


# --- internals ------------------------------------------------------------------------------------

def _check_poses(pred, gt, valid, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate shapes; return float64 poses with masked entries zeroed, and a bool mask."""
    pred, gt, valid = np.asarray(pred, np.float64), np.asarray(gt, np.float64), np.asarray(valid)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != dim:
        raise ValueError(f"pred and gt must both have shape [N, K, {dim}], got pred {pred.shape} "
                         f"and gt {gt.shape}")
    if valid.shape != pred.shape[:2]:
        raise ValueError(f"valid must have shape {pred.shape[:2]} (N, K of the poses), got {valid.shape}")
    valid = valid.astype(bool)
    bad = valid & ~np.isfinite(gt).all(axis=-1)
    if bad.any():
        raise ValueError(f"gt has non-finite coordinates at {int(bad.sum())} valid entries, "
                         f"first at (sample, joint) {tuple(int(i) for i in np.argwhere(bad)[0])}")
    keep = valid[..., None]
    return np.where(keep, pred, 0.0), np.where(keep, gt, 0.0), valid


def _check_nonnegative(name: str, value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


def _joint_mask(joints: Sequence[int], k: int) -> np.ndarray:
    """[K] bool, True for the scored joints."""
    index = np.asarray(joints, dtype=int).reshape(-1)
    if len(index) == 0 or index.min() < 0 or index.max() >= k:
        raise ValueError(f"joints must be non-empty indices in 0..{k - 1}, got {index.tolist()}")
    mask = np.zeros(k, dtype=bool)
    mask[index] = True
    return mask


def _distance(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """[N, K] Euclidean distance, 0 at masked entries."""
    return np.where(valid, np.linalg.norm(pred - gt, axis=-1), 0.0)


def _root_relative(pred, gt, valid, root: int | None):
    """Subtract each pose's root; a sample whose ground-truth root is masked is unscorable."""
    if root is None:
        return pred, gt, np.ones(len(pred), dtype=bool)
    if not 0 <= root < pred.shape[1]:
        raise ValueError(f"root must be a joint index in 0..{pred.shape[1] - 1} or None, got {root}")
    return pred - pred[:, root:root + 1], gt - gt[:, root:root + 1], valid[:, root].copy()


def _procrustes(pred: np.ndarray, gt: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """[N, K, 3] pred aligned to gt by the similarity transform fitted on the weighted joints.

    Batched Umeyama/Kabsch: with H = sum_i w_i p_i g_i^T = U S V^T over centred points, the rotation
    is R = V D U^T with D = diag(1, 1, det(V U^T)) (no reflection) and scale tr(DS) / sum w |p|^2.
    """
    w = weight[..., None].astype(np.float64)
    n = np.maximum(w.sum(axis=1, keepdims=True), 1.0)
    mu_p, mu_g = (w * pred).sum(axis=1, keepdims=True) / n, (w * gt).sum(axis=1, keepdims=True) / n
    p0, g0 = (pred - mu_p) * w, (gt - mu_g) * w
    u, s, vt = np.linalg.svd(p0.transpose(0, 2, 1) @ g0)
    d = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    s[:, -1] *= d
    vt[:, -1] *= d[:, None]
    rotation = vt.transpose(0, 2, 1) @ u.transpose(0, 2, 1)
    norm = (p0 ** 2).sum(axis=(1, 2))
    scale = np.divide(s.sum(axis=1), norm, out=np.zeros_like(norm), where=norm > 0)
    return scale[:, None, None] * (pred - mu_p) @ rotation.transpose(0, 2, 1) + mu_g


def _score(values: np.ndarray, valid: np.ndarray, scorable: np.ndarray, joints: Sequence[int]) -> Score:
    """Aggregate [N, K] per-entry values over valid entries of scored joints in scorable samples."""
    mask = valid & _joint_mask(joints, values.shape[1]) & scorable[:, None]
    values = np.where(mask, values, 0.0)
    joint_count, sample_count = mask.sum(axis=0), mask.sum(axis=1)
    count = int(mask.sum())
    per_joint, per_sample = _mean(values.sum(axis=0), joint_count), _mean(values.sum(axis=1), sample_count)
    for array in (per_joint, per_sample, joint_count):
        array.flags.writeable = False  # Score is frozen, arrays included
    return Score(
        value=float(values.sum() / count) if count else float("nan"),
        per_joint=per_joint,
        per_sample=per_sample,
        joint_count=joint_count,
        count=count,
        empty_samples=int((sample_count == 0).sum()),
        joints=tuple(int(j) for j in np.flatnonzero(_joint_mask(joints, values.shape[1]))),
    )


def _mean(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    return np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)
