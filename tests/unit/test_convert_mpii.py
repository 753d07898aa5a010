"""MPII: JSON form (both file namings) and the RELEASE struct, checked against hand-computed values."""

import json

import numpy as np
import pytest
from scipy.io import loadmat

from pose_study.data.convert import mpii
from tests.fixtures._common import crop_px
from tests.fixtures.official import convert_fixture, write_mpii_json, write_mpii_release
from tests.fixtures.official_2d import mpii_joints

S = 32
# datasets.md §9.2 "from MPII-16": MPII index for each canonical (H36M-17) joint, -1 = none.
MPII_FOR_CANONICAL = [6, 2, 1, 0, 3, 4, 5, -1, 8, -1, 9, 13, 14, 15, 12, 11, 10]


def expected(joints_1based, center_1based, scale, missing=()):
    """Canonical [17, 2] crop px and [17] valid for one MPII person (MPII box convention)."""
    center = np.asarray(center_1based) - 1 + [0, 15 * scale]
    side = 1.25 * 200 * scale
    out, valid = np.zeros((17, 2)), np.zeros(17, bool)
    for c, m in enumerate(MPII_FOR_CANONICAL):
        if m >= 0 and m not in missing:
            out[c] = crop_px(np.asarray(joints_1based[m]) - 1, center, side, S)
            valid[c] = True
    return out, valid, center, side


@pytest.mark.parametrize("naming", ["microsoft", "openmmlab"])
def test_json_train_values_and_missing_joints(tmp_path, naming):
    fx = write_mpii_json(tmp_path / "mpii", naming=naming)
    report, split = convert_fixture("mpii", fx["root"], "train", tmp_path)
    assert report.read == report.written == 3
    for i, person in enumerate(fx["train"]):
        missing = (4, 5) if i == 1 else ()
        joints, valid, center, side = expected(person["joints"], person["center"], person["scale"], missing)
        np.testing.assert_array_equal(split.joints_2d_valid[i], valid)
        np.testing.assert_allclose(split.joints_2d[i], joints, atol=1e-4)
        np.testing.assert_allclose(split.center[i], center, atol=1e-5)
        assert split.scale[i] == pytest.approx(side)
    assert not split.joints_2d_valid[1, [5, 6]].any()  # canonical l_knee, l_ankle <- MPII 4, 5 ([-1, -1])
    np.testing.assert_array_equal(split.joints_2d[1, [5, 6]], 0.0)
    assert not split.joints_2d_valid[:, [7, 9]].any()  # spine, nose: MPII has none
    assert np.isnan(split.head_box).all()  # no head boxes for the JSON train split
    assert list(split.clip) == ["000000001.jpg", "000000001.jpg", "000000002.jpg"]
    assert split.info.source == "real" and split.info.skeleton == "mpii16"


def test_json_valid_keeps_occluded_joints_and_head_boxes(tmp_path):
    fx = write_mpii_json(tmp_path / "mpii")
    _, split = convert_fixture("mpii", fx["root"], "valid", tmp_path)
    person = fx["valid"][0]
    joints, valid, center, side = expected(person["joints"], person["center"], person["scale"], missing=(10,))
    np.testing.assert_array_equal(split.joints_2d_valid[0], valid)
    assert split.joints_2d_valid[0, 15]  # canonical r_elbow <- MPII 11: occluded but annotated (vis 1)
    assert not split.joints_2d_valid[0, 16]  # canonical r_wrist <- MPII 10: [-1, -1]
    np.testing.assert_allclose(split.joints_2d[0], joints, atol=1e-4)
    box = fx["head_boxes"][0] - 1  # [corner, xy], 1-based -> 0-based
    np.testing.assert_allclose(split.head_box[0], crop_px(box, center, side, S).ravel(), atol=1e-4)


def test_json_valid_needs_gt_valid_mat(tmp_path):
    fx = write_mpii_json(tmp_path / "mpii")
    (fx["root"] / "annot" / "gt_valid.mat").unlink()
    with pytest.raises(FileNotFoundError, match="gt_valid.mat"):
        convert_fixture("mpii", fx["root"], "valid", tmp_path)


def test_json_entry_without_joints_names_file_and_key(tmp_path):
    fx = write_mpii_json(tmp_path / "mpii")
    path = fx["root"] / "annot" / "train.json"
    entries = json.loads(path.read_text())
    del entries[2]["joints"]
    path.write_text(json.dumps(entries))
    with pytest.raises(ValueError, match=r"train\.json: entry 2 has no key 'joints'"):
        convert_fixture("mpii", fx["root"], "train", tmp_path)


def test_release_struct(tmp_path):
    fx = write_mpii_release(tmp_path / "mpii")
    report, split = convert_fixture("mpii", fx["root"], "train", tmp_path, annotation_format="release")
    assert report.read == 3 and report.written == 2
    assert dict(report.skipped) == {"rect without annopoints": 1}  # the test image is not read at all
    for i, person in enumerate(fx["people"]):
        joints, valid, center, side = expected(mpii_joints(person["k"]), person["objpos"], person["scale"],
                                               person["missing"])
        np.testing.assert_array_equal(split.joints_2d_valid[i], valid)
        np.testing.assert_allclose(split.joints_2d[i], joints, atol=1e-4)
        head = np.reshape(person["head"], (2, 2)) - 1.0
        np.testing.assert_allclose(split.head_box[i], crop_px(head, center, side, S).ravel(), atol=1e-4)


@pytest.mark.parametrize("options", [{"simplify_cells": True}, {"struct_as_record": True},
                                     {"struct_as_record": False, "squeeze_me": True}],
                         ids=["simplify_cells", "struct_as_record", "mat_struct"])
def test_release_parser_accepts_every_loadmat_shape(tmp_path, options):
    fx = write_mpii_release(tmp_path / "mpii")
    people = mpii.release_people(mpii.plain(loadmat(fx["path"], **options)["RELEASE"]), fx["path"])
    assert [p if isinstance(p, str) else p.image for p in people] == \
        ["000000001.jpg", "rect without annopoints", "000000002.jpg"]
    np.testing.assert_allclose(people[0].joints[0], mpii_joints(0)[0] - 1)  # empty is_visible tolerated
    assert people[2].valid.all()  # char is_visible tolerated


def test_release_without_annolist_names_file_and_field(tmp_path):
    fx = write_mpii_release(tmp_path / "mpii", drop_field="annolist")
    with pytest.raises(ValueError, match=r"mpii_human_pose_v1_u12_1\.mat: RELEASE has no field 'annolist'"):
        convert_fixture("mpii", fx["root"], "train", tmp_path, annotation_format="release")


def test_release_has_no_valid_split(tmp_path):
    fx = write_mpii_release(tmp_path / "mpii")
    with pytest.raises(ValueError, match="only by the JSON annotations"):
        convert_fixture("mpii", fx["root"], "valid", tmp_path, annotation_format="release")
