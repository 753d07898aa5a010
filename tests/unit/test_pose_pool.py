"""The synthetic pose pool (world ``mocap``): other subjects, another activity mix, no images."""

import numpy as np
import pytest

from pose_study.data.formats import read_split
from pose_study.data.poses import PoseData
from pose_study.data.synthetic import SynthesizeSpec, synthesize_chunk
from pose_study.data.synthetic.generate import synthesize_poses
from pose_study.data.synthetic.poses import FAMILY_NAMES
from pose_study.data.synthetic.worlds import WORLD_DEFS
from pose_study.skeletons import CANONICAL
from pose_study.stages.synthesize import run

BONES = np.array(CANONICAL.bones)


def _bone_lengths(joints: np.ndarray) -> np.ndarray:
    """[N, 16] canonical bone lengths: fixed by the subject, whatever the pose or frame."""
    return np.linalg.norm(joints[:, BONES[:, 0]] - joints[:, BONES[:, 1]], axis=-1)


def _pool(n: int, seed: int = 0, split: str = "train", chunk: int = 512):
    spec = SynthesizeSpec(world="mocap", split=split, num_samples=n, seed=seed)
    parts = [synthesize_poses(spec, a, min(a + chunk, n)) for a in range(0, n, chunk)]
    keys = ("joints_3d", "subject", "action", "frame")
    return {k: np.concatenate([getattr(p, k) for p in parts]) for k in keys}


def test_pool_subjects_are_no_other_worlds_subjects():
    pool = set(WORLD_DEFS["mocap"].subjects["train"]) | set(WORLD_DEFS["mocap"].subjects["val"])
    others = {s for name, w in WORLD_DEFS.items() if name != "mocap"
              for split in w.subjects.values() for s in split}
    assert len(pool) == 44 and not pool & others
    assert not set(WORLD_DEFS["mocap"].subjects["train"]) & set(WORLD_DEFS["mocap"].subjects["val"])


def test_no_pool_pose_is_a_lab_test_subjects_pose():
    lab = synthesize_chunk(SynthesizeSpec(world="lab", split="test", num_samples=48, seed=0), 0, 48)
    lab_bones = _bone_lengths(lab.joints_3d)
    for subject in np.unique(lab.subject):  # the statistic identifies a subject
        assert np.ptp(lab_bones[lab.subject == subject], axis=0).max() < 0.01
    pool = _pool(3000)
    assert not set(pool["subject"]) & set(lab.subject)
    nearest = np.linalg.norm(_bone_lengths(pool["joints_3d"])[:, None] - lab_bones[None], axis=-1).min()
    assert nearest > 10.0  # mm over 16 bones: no pool body is a test subject's body, so no pose equals


def test_pool_is_deterministic_per_seed_and_independent_of_chunking():
    a, b = _pool(300, chunk=300), _pool(300, chunk=64)
    np.testing.assert_array_equal(a["joints_3d"], b["joints_3d"])
    assert list(a["subject"]) == list(b["subject"])
    assert not np.allclose(_pool(300, seed=1)["joints_3d"], a["joints_3d"])


def test_pool_activity_mix_differs_from_the_lab():
    counts = dict(zip(*np.unique(_pool(4000)["action"], return_counts=True)))
    weights = dict(zip(FAMILY_NAMES, WORLD_DEFS["mocap"].activity_weights))
    share = {k: counts.get(k, 0) / 4000 for k in FAMILY_NAMES}
    expected = {k: w / sum(weights.values()) for k, w in weights.items()}
    assert all(abs(share[k] - expected[k]) < 0.03 for k in FAMILY_NAMES), share
    assert share["walking"] + share["sports"] > 0.4  # the lab's uniform mix gives 0.25
    assert WORLD_DEFS["lab"].activity_weights == ()


def test_pool_is_written_pose_only_with_gravity_along_y(tmp_path):
    spec = SynthesizeSpec(world="mocap", split="val", num_samples=40, seed=0, clip_length=4)
    run(spec, tmp_path / "pool.h5")
    split = read_split(tmp_path / "pool.h5", images=False)
    assert split.pose_only and len(split) == 40 and split.info.dataset == "synth_mocap"
    assert set(split.subject) <= set(WORLD_DEFS["mocap"].subjects["val"])
    y = split.joints_3d[..., 1]
    head, ankles = CANONICAL.index("head_top"), [CANONICAL.index("l_ankle"), CANONICAL.index("r_ankle")]
    assert (y < 0).all() and (y[:, head] < y[:, ankles].min(axis=1)).mean() > 0.9  # y down, floor at 0
    data = PoseData.load(tmp_path / "pool.h5", frames=3)
    assert data.windows.shape == (40, 3) and bool(data.valid_3d.all())


def test_pool_has_no_test_split():
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'val'\] for world 'mocap'"):
        SynthesizeSpec(world="mocap", split="test", num_samples=10)
