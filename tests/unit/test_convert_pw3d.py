"""3DPW: Python-2 pickles (latin1), SMPL joint positions to camera mm, nothing fabricated."""

import numpy as np

from tests.fixtures._common import crop_px
from tests.fixtures.official import convert_fixture, write_3dpw

# datasets.md §9.2 "SMPL-24" column: native index per canonical joint (-1: none).
SMPL_FOR_CANONICAL = [0, 2, 5, 8, 1, 4, 7, 6, 12, -1, -1, 16, 18, 20, 17, 19, 21]
# OpenPose COCO-18 per canonical joint; the OpenPose neck (1) is a shoulder midpoint: not mapped.
OPENPOSE_FOR_CANONICAL = [-1, 8, 9, 10, 11, 12, 13, -1, -1, 0, -1, 5, 6, 7, 2, 3, 4]


def test_joint_positions_in_camera_mm(tmp_path):
    fx = write_3dpw(tmp_path / "3dpw")
    report, split = convert_fixture("3dpw", fx["root"], "test", tmp_path)
    assert report.read == 6 and report.written == 5 and dict(report.skipped) == {"campose_valid = 0": 1}
    seq = fx["sequence"]
    person1 = np.flatnonzero(split.clip == "courtyard_fixture_00/person1")
    assert list(split.frame[person1]) == [0, 2]
    for row in range(len(split)):
        person, frame = int(split.clip[row][-1]), int(split.frame[row])
        extrinsics = seq["cam_poses"][frame]
        world = fx["world"][person][frame]
        camera_mm = (world @ extrinsics[:3, :3].T + extrinsics[:3, 3]) * 1000
        present = [c for c, n in enumerate(SMPL_FOR_CANONICAL) if n >= 0]
        native = [n for n in SMPL_FOR_CANONICAL if n >= 0]
        np.testing.assert_allclose(split.joints_3d[row, present], camera_mm[native], atol=0.05)
        p = split.joints_3d[row, present] @ split.intrinsics[row].astype(float).T
        np.testing.assert_allclose(p[:, :2] / p[:, 2:], split.joints_2d[row, present], atol=1e-3)
    assert not split.joints_3d_valid[:, [9, 10]].any() and not split.joints_2d_valid[:, [9, 10]].any()
    np.testing.assert_array_equal(split.joints_3d[:, [9, 10]], 0.0)  # nose/head_top not fabricated


def test_without_joint_positions_2d_from_openpose_and_3d_masked(tmp_path):
    fx = write_3dpw(tmp_path / "3dpw", split="validation", joint_positions=False)
    _, split = convert_fixture("3dpw", fx["root"], "validation", tmp_path)
    assert not split.joints_3d_valid.any()
    expected_valid = np.array([n >= 0 for n in OPENPOSE_FOR_CANONICAL])
    np.testing.assert_array_equal(split.joints_2d_valid[1], expected_valid)
    assert not split.joints_2d_valid[0, 15]  # person 0 frame 0: OpenPose r_elbow confidence 0
    assert split.joints_2d_valid[0, 9] and not split.joints_2d_valid[0, 8]  # nose kept, neck not derived
    xy = fx["sequence"]["poses2d"][0][1][:2].T  # person 0, frame 1 = row 1
    native = xy[[n for n in OPENPOSE_FOR_CANONICAL if n >= 0]]
    lo, hi = native.min(0), native.max(0)
    center, side = (lo + hi) / 2, 1.25 * (hi - lo).max()
    np.testing.assert_allclose(split.joints_2d[1, expected_valid], crop_px(native, center, side, 32), atol=1e-4)
