"""Pose-only data: BVH forward kinematics, the CMU and AMASS converters, the pose-only format."""

from pathlib import Path

import numpy as np
import pytest
import torch

from pose_study.data.convert.bvh import BvhError, forward_kinematics, parse_bvh, read_bvh
from pose_study.data.convert.mocap import CMU_MM_PER_UNIT
from pose_study.data.formats import FormatError, PoseSplit, SplitInfo, read_split, write_split
from pose_study.data.poses import PoseData
from pose_study.skeletons import CANONICAL
from pose_study.stages.convert import ConvertSpec, run
from tests.fixtures.official_mocap import write_amass, write_cmu_mocap

J = CANONICAL.index

# Three joints and an End Site; per-joint channel orders differ (ZXY for Knee, XYZ for Foot).
THREE_JOINTS = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Knee
  {
    OFFSET 0 -10 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    JOINT Foot
    {
      OFFSET 0 -8 0
      CHANNELS 3 Xrotation Yrotation Zrotation
      End Site
      {
        OFFSET 0 0 5
      }
    }
  }
}
MOTION
Frames: 3
Frame Time: 0.0333333
1 2 3 0 0 0   0 0 0   0 0 0
0 0 0 90 0 0  0 90 0  0 90 0
0 0 0 0 0 0   90 90 0 0 0 0
"""


def test_bvh_forward_kinematics_by_hand():
    bvh = parse_bvh(THREE_JOINTS)
    assert bvh.joints == ("Hips", "Knee", "Foot", "Foot_end") and bvh.parents == (-1, 0, 1, 2)
    assert bvh.frame_time == pytest.approx(1 / 30, rel=1e-5) and bvh.motion.shape == (3, 12)
    p = forward_kinematics(bvh)
    # frame 0: rest pose translated by the root position (1, 2, 3)
    np.testing.assert_allclose(p[0], [[1, 2, 3], [1, -8, 3], [1, -16, 3], [1, -16, 8]], atol=1e-9)
    # frame 1: root Rz(90) sends the knee offset (0,-10,0) to (10,0,0); the knee's Rx(90) sends the
    # foot offset (0,-8,0) to (0,0,-8); the foot's Ry(90) sends (0,0,5) to (5,0,0), then Rz(90): (0,5,0)
    np.testing.assert_allclose(p[1], [[0, 0, 0], [10, 0, 0], [10, 0, -8], [10, 5, -8]], atol=1e-9)
    # frame 2: knee "Zrotation Xrotation Yrotation" = 90, 90 -> Rz(90) @ Rx(90): foot at (0,-10,-8)
    # (the other order, Rx(90) @ Rz(90), would put it at (8,-10,0))
    np.testing.assert_allclose(p[2, 2], [0, -10, -8], atol=1e-9)


def test_bvh_errors_name_the_line(tmp_path):
    bad = THREE_JOINTS.replace("CHANNELS 3 Xrotation Yrotation Zrotation",
                               "CHANNELS 3 Xrotation Yrotation Wrotation")
    with pytest.raises(BvhError, match=r"<bvh>:13: unknown channel\(s\) \['Wrotation'\]"):
        parse_bvh(bad)
    short = THREE_JOINTS.replace("0 0 0 0 0 0   90 90 0 0 0 0", "0 0 0")
    path = tmp_path / "short.bvh"
    path.write_text(short)
    with pytest.raises(BvhError, match=r"short\.bvh:26: frame has 3 values, the hierarchy has 12 channels"):
        read_bvh(path)


def test_cmu_conversion_is_pose_only_canonical_mm(tmp_path):
    files = write_cmu_mocap(tmp_path / "cmu", frames=6)
    report = run(ConvertSpec(dataset="cmu_mocap", root=str(tmp_path / "cmu"), split="train", every_nth=2),
                 tmp_path / "cmu.h5")
    assert (report.read, report.written) == (6, 6)  # 2 files x 3 of 6 frames
    split = read_split(tmp_path / "cmu.h5", images=False)
    assert split.pose_only and split.info.skeleton == "cmu_bvh17" and split.info.source == "real"
    assert not split.joints_3d_valid[:, J("nose")].any() and split.joints_3d_valid[:, J("head_top")].all()
    assert list(np.unique(split.subject)) == ["cmu_01", "cmu_02"] and list(split.frame[:3]) == [0, 2, 4]
    bvh = read_bvh(files["01_01"])
    raw = forward_kinematics(bvh)[0]
    # world frame, y down: (x, y, z) -> (x, -y, -z), scaled from CMU units to mm
    expected = raw[bvh.index("LeftHand")] * CMU_MM_PER_UNIT * np.array([1, -1, -1])
    np.testing.assert_allclose(split.joints_3d[0, J("l_wrist")], expected, rtol=1e-5)
    assert split.joints_3d[0, J("head_top"), 1] < split.joints_3d[0, J("pelvis"), 1] < 0  # head above pelvis
    with pytest.raises(FormatError, match="pose-only split"):
        read_split(tmp_path / "cmu.h5")


def test_cmu_wrong_unit_is_reported(tmp_path):
    files = write_cmu_mocap(tmp_path / "cmu", frames=2)
    text = files["01_01"].read_text().replace("OFFSET -2.37000 -6.51000 0.00000", "OFFSET -23.7 -65.1 0.0")
    assert "OFFSET -23.7 -65.1 0.0" in text  # the right thigh, 10 x too long (a file in another unit)
    files["01_01"].write_text(text)
    with pytest.raises(ValueError, match=r"01_01\.bvh: thigh length \d+ mm is outside"):
        run(ConvertSpec(dataset="cmu_mocap", root=str(tmp_path / "cmu"), split="train"), tmp_path / "x.h5")


def test_amass_joints_map_the_smpl_body(tmp_path):
    path = write_amass(tmp_path / "amass", frames=5)
    run(ConvertSpec(dataset="amass", root=str(tmp_path / "amass"), split="train"), tmp_path / "amass.h5")
    split = read_split(tmp_path / "amass.h5", images=False)
    source = np.load(path)["joints"]
    # SMPL joint 21 is the right wrist; z up, metres -> y down, mm: (x, y, z) -> (x, -z, y) * 1000
    x, y, z = source[0, 21]
    np.testing.assert_allclose(split.joints_3d[0, J("r_wrist")], np.array([x, -z, y]) * 1000, rtol=1e-5)
    assert split.joints_3d_valid.sum(axis=1).tolist() == [15] * 5  # nose and head_top masked
    assert split.subject[0] == "amass_01" and split.info.skeleton == "smpl22"


def _pose_only(n: int = 4) -> PoseSplit:
    joints = np.random.default_rng(0).normal(0, 300, (n, 17, 3)).astype(np.float32)
    return PoseSplit(info=SplitInfo("pool", "train", "h36m17", "synthetic", "test 1"), images=None,
                     joints_2d=None, joints_2d_valid=None, center=None, scale=None, joints_3d=joints,
                     joints_3d_valid=np.ones((n, 17), bool),
                     clip=np.array(["a", "a", "b", "b"], dtype=object), frame=np.array([0, 1, 0, 1]))


def test_pose_only_split_round_trip_and_pose_data(tmp_path):
    write_split(tmp_path / "p.h5", _pose_only())
    back = read_split(tmp_path / "p.h5", images=False)
    assert back.pose_only and len(back) == 4 and back.intrinsics is None
    np.testing.assert_array_equal(back.joints_3d, _pose_only().joints_3d)
    data = PoseData.load(tmp_path / "p.h5", frames=3)
    assert data.joints_3d.shape == (4, 17, 3) and bool(data.valid_3d.all()) and not bool(data.valid_2d.any())
    assert data.crop_size == 0 and torch.equal(data.intrinsics[0], torch.eye(3))
    assert data.windows.tolist() == [[0, 0, 1], [0, 1, 1], [2, 2, 3], [2, 3, 3]]


def test_pose_only_split_rejects_image_fields(tmp_path):
    split = _pose_only()
    split.center = np.zeros((4, 2), np.float32)
    with pytest.raises(FormatError, match=r"must not have \['center'\]"):
        write_split(tmp_path / "p.h5", split)


def test_packaged_catalog_pose_only_entries():
    from pose_study.data.catalog import load_catalog

    catalog = load_catalog()
    assert not catalog["cmu_mocap"].public and not catalog["amass"].public
    assert "amass.is.tue.mpg.de" in catalog["amass"].registration


def test_pose_only_fixture_satisfies_its_layout(tmp_path: Path):
    from pose_study.data.catalog import load_catalog, missing_layout

    write_cmu_mocap(tmp_path / "cmu")
    assert missing_layout(tmp_path / "cmu", load_catalog()["cmu_mocap"].layout) == []
