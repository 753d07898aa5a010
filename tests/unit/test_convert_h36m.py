"""Human3.6M: CDF world poses + metadata.xml extrinsics + catalog intrinsics with distortion."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from pose_study.data.convert import h36m
from tests.fixtures.official import convert_fixture, write_h36m
from tests.fixtures.official_3d import H36M_CAMERAS, S1_CAM0_CENTER, S1_CAM0_QUATERNION, write_cdf

# datasets.md §4.4: rows of the 32-joint CDF layout for the 17 standard joints (right leg first).
STANDARD_ROWS = [0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("h36m")
    fx = write_h36m(tmp / "h36m")
    report, split = convert_fixture("h36m", fx["root"], "train", tmp, crop_size=64)
    return fx, report, split


def distorted_projection(points, K, k, p):
    """datasets.md §4.5, written out independently of the converter."""
    u, v = points[:, 0] / points[:, 2], points[:, 1] / points[:, 2]
    r2 = u * u + v * v
    radial = 1 + k[0] * r2 + k[1] * r2 ** 2 + k[2] * r2 ** 3
    tan = p[0] * u + p[1] * v
    ud, vd = u * (radial + tan) + p[0] * r2, v * (radial + tan) + p[1] * r2
    return (K @ np.stack([ud, vd, np.ones_like(ud)]))[:2].T


def test_counts_subjects_and_all_sequences_skipped(converted):
    _, report, split = converted
    # S1: 2 sequences, S5-S8: 1 each; x 4 cameras x 2 frames; "_ALL 1" is never read
    assert report.read == report.written == 48 and not report.skipped
    assert sorted(set(split.subject)) == ["S1", "S5", "S6", "S7", "S8"]
    assert sorted(set(split.action)) == ["Directions", "WalkDog"]  # S1's WalkingDog canonicalised
    clip = split.clip == "S1/Directions 1.54138969"
    assert list(split.frame[clip]) == [0, 1]  # frame order kept


def test_3d_matches_published_s1_camera(converted):
    fx, _, split = converted
    w, x, y, z = S1_CAM0_QUATERNION
    cam_to_world = Rotation.from_quat([x, y, z, w]).as_matrix()
    world = fx["world"][("S1", "Directions 1")][1][STANDARD_ROWS]
    expected = (world - S1_CAM0_CENTER) @ cam_to_world  # = R_c2w^T (X - t), row vectors
    row = np.flatnonzero((split.clip == "S1/Directions 1.54138969") & (split.frame == 1))[0]
    np.testing.assert_allclose(split.joints_3d[row], expected, atol=0.05)  # float32 mm
    assert split.joints_3d_valid.all() and split.joints_2d_valid.all()
    assert split.info.skeleton == "h36m17"


def test_standard_not_spin_leg_order(converted):
    fx, _, split = converted
    world = fx["world"][("S5", "Directions 1")][0]
    row = np.flatnonzero((split.clip == "S5/Directions 1.54138969") & (split.frame == 0))[0]
    rot, center = fx["cameras"][(5, 0)]
    cam = (world - center) @ rot.T
    np.testing.assert_allclose(split.joints_3d[row, 2], cam[2], atol=0.05)  # r_knee <- RightLeg (2)
    np.testing.assert_allclose(split.joints_3d[row, 5], cam[7], atol=0.05)  # l_knee <- LeftLeg (7)


def test_reprojection_with_distortion_within_one_pixel(converted):
    _, _, split = converted
    max_gap = 0.0
    for i in range(len(split)):
        cid = split.camera[i]
        _, _, _, k, p, _ = next(c for c in H36M_CAMERAS if c[0] == cid)
        reprojected = distorted_projection(split.joints_3d[i].astype(float), split.intrinsics[i].astype(float), k, p)
        np.testing.assert_allclose(reprojected, split.joints_2d[i], atol=1.0)
        assert np.abs(reprojected - split.joints_2d[i]).max() < 0.01
        pinhole = split.joints_3d[i] @ split.intrinsics[i].T
        max_gap = max(max_gap, np.abs(pinhole[:, :2] / pinhole[:, 2:] - split.joints_2d[i]).max())
    assert max_gap > 0.1  # the fixture's distortion is large enough to matter


def test_rotation_is_the_openmmlab_port():
    angles = np.array([1.2, -0.4, 2.5])
    x, y, z = -angles[0], angles[1], -angles[2]  # preprocess_h36m.py, written out
    rx = np.array([[1, 0, 0], [0, np.cos(x), np.sin(x)], [0, -np.sin(x), np.cos(x)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(z), np.sin(z), 0], [-np.sin(z), np.cos(z), 0], [0, 0, 1]])
    camera_to_world = (rx @ ry @ rz).T
    np.testing.assert_allclose(h36m.rotation(angles), camera_to_world.T, atol=1e-12)


def test_test_split_and_every_nth(tmp_path):
    fx = write_h36m(tmp_path / "h36m", frames=3)
    report, split = convert_fixture("h36m", fx["root"], "test", tmp_path, every_nth=2)
    assert sorted(set(split.subject)) == ["S11", "S9"]
    assert report.read == 2 * 4 * 2 and sorted(set(split.frame)) == [0, 2]


def test_missing_metadata_and_bad_pose_shape(tmp_path):
    fx = write_h36m(tmp_path / "h36m", frames=1)
    write_cdf(fx["root"] / "S9" / "MyPoseFeatures" / "D3_Positions" / "Directions 1.cdf", np.zeros((1, 32, 2)))
    with pytest.raises(ValueError, match=r"Directions 1\.cdf: field 'Pose' has shape \(1, 1, 64\)"):
        convert_fixture("h36m", fx["root"], "test", tmp_path)
    (fx["root"] / "metadata.xml").unlink()
    with pytest.raises(FileNotFoundError, match="metadata.xml"):
        convert_fixture("h36m", fx["root"], "test", tmp_path)
