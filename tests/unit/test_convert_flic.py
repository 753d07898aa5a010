"""FLIC-full: 1-based MODEC part ids, NaN gaps, istrain / istest."""

import numpy as np
import pytest
from scipy.io import savemat

from tests.fixtures._common import crop_px, struct_array
from tests.fixtures.official import convert_fixture, write_flic_full
from tests.fixtures.official_2d import FLIC_FIELDS

S = 32
# Canonical joint -> MODEC part id (1-based; datasets.md §3.2): lsho 1, lelb 2, lwri 3, rsho 4,
# relb 5, rwri 6, lhip 7, rhip 10, nose 17. The coords column is id - 1.
PART_FOR_CANONICAL = {11: 1, 12: 2, 13: 3, 14: 4, 15: 5, 16: 6, 4: 7, 1: 10, 9: 17}
LABELLED = (1, 2, 3, 4, 5, 6, 7, 10, 13, 14, 17)  # the 11 labelled part ids (eyes 13, 14 unmapped)


def expected(item):
    xy = item["coords"].T - 1  # [29, 2], 0-based px
    out, valid = np.zeros((17, 2)), np.zeros(17, bool)
    labelled = [xy[part - 1] for part in LABELLED if np.isfinite(xy[part - 1]).all()]  # box: + eyes
    points = np.concatenate([np.array(labelled), item["torsobox"].reshape(2, 2) - 1])
    lo, hi = points.min(0), points.max(0)
    center, side = (lo + hi) / 2, 1.25 * (hi - lo).max()
    for c, part in PART_FOR_CANONICAL.items():
        if np.isfinite(xy[part - 1]).all():
            out[c], valid[c] = crop_px(xy[part - 1], center, side, S), True
    return out, valid, center, side


def test_train_split_reads_the_right_columns(tmp_path):
    fx = write_flic_full(tmp_path / "flic")
    report, out = convert_fixture("flic_full", fx["root"], "train", tmp_path)
    assert report.read == report.written == 2
    for k in range(2):
        joints, valid, center, side = expected(fx["items"][k])
        np.testing.assert_array_equal(out.joints_2d_valid[k], valid)
        np.testing.assert_allclose(out.joints_2d[k], joints, atol=1e-4)
        np.testing.assert_allclose(out.center[k], center, atol=1e-4)
    assert not out.joints_2d_valid[1, 16]  # example 1: rwri (id 6) is NaN -> masked
    assert not out.joints_2d_valid[:, [0, 2, 3, 5, 6, 7, 8, 10]].any()  # never labelled in FLIC
    assert list(out.frame) == [1000, 1001] and out.subject[0] == "movie"


def test_test_split_is_istest_only(tmp_path):
    fx = write_flic_full(tmp_path / "flic")
    report, out = convert_fixture("flic_full", fx["root"], "test", tmp_path)
    assert report.read == 1 and list(out.frame) == [1002]


def test_missing_coords_field_names_file_and_field(tmp_path):
    fx = write_flic_full(tmp_path / "flic")
    path = fx["root"] / "FLIC-full" / "examples.mat"
    fields = tuple(f for f in FLIC_FIELDS if f != "coords")
    savemat(path, {"examples": struct_array([{f: item[f] for f in fields} for item in fx["items"]], fields)})
    with pytest.raises(ValueError, match=r"examples\.mat: examples has no field 'coords'"):
        convert_fixture("flic_full", fx["root"], "train", tmp_path)
