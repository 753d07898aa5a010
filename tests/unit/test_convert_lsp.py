"""LSP (3×14×2000, flag 1 = occluded) vs LSP-Extended (14×3×N, flag 1 = visible)."""

import numpy as np
import pytest
from scipy.io import savemat

from tests.fixtures._common import crop_px
from tests.fixtures.official import convert_fixture, write_lsp, write_lspet

S = 32
# datasets.md §9.2: LSP index for each canonical joint (-1 = none; pelvis is a midpoint, not annotated).
LSP_FOR_CANONICAL = [-1, 2, 1, 0, 3, 4, 5, -1, 12, -1, 13, 9, 10, 11, 8, 7, 6]


def expected(xy_1based, valid14):
    xy = np.asarray(xy_1based) - 1
    lo, hi = xy[valid14].min(0), xy[valid14].max(0)
    center, side = (lo + hi) / 2, 1.25 * (hi - lo).max()
    out, valid = np.zeros((17, 2)), np.zeros(17, bool)
    for c, n in enumerate(LSP_FOR_CANONICAL):
        if n >= 0 and valid14[n]:
            out[c], valid[c] = crop_px(xy[n], center, side, S), True
    return out, valid, center, side


@pytest.mark.parametrize("split,indices", [("train", [0, 500]), ("test", [1000, 1500])])
def test_lsp_occluded_joints_stay_annotated(tmp_path, split, indices):
    fx = write_lsp(tmp_path / "lsp")
    report, out = convert_fixture("lsp", fx["root"], split, tmp_path, every_nth=500)
    assert report.written == 2 and list(out.frame) == indices
    assert out.clip[0] == f"im{indices[0] + 1:04d}.jpg"
    for row, i in enumerate(indices):
        joints, valid, center, side = expected(fx["xy"][i], np.ones(14, bool))
        np.testing.assert_array_equal(out.joints_2d_valid[row], valid)  # flag 1 (occluded) is still valid
        np.testing.assert_allclose(out.joints_2d[row], joints, atol=1e-4)
        np.testing.assert_allclose(out.center[row], center, atol=1e-4)
        assert out.scale[row] == pytest.approx(side)
    assert out.joints_2d_valid[:, [4, 15, 8]].all()  # l_hip (LSP 3), r_elbow (LSP 7), neck (LSP 12)


def test_lspet_flag_zero_is_missing(tmp_path):
    fx = write_lspet(tmp_path / "lspet")
    report, out = convert_fixture("lspet", fx["root"], "train", tmp_path)
    assert report.written == 5
    for i in range(5):
        valid14 = fx["flags"][i] == 1
        joints, valid, center, side = expected(fx["xy"][i], valid14)
        np.testing.assert_array_equal(out.joints_2d_valid[i], valid)
        np.testing.assert_allclose(out.joints_2d[i], joints, atol=1e-4)
        np.testing.assert_allclose(out.center[i], center, atol=1e-4)  # junk (0, 0) joints excluded
    assert not out.joints_2d_valid[0, [3, 10]].any()  # r_ankle (LSP 0), head_top (LSP 13)
    assert not out.joints_2d_valid[2, 16]  # r_wrist (LSP 6)
    assert out.info.skeleton == "lsp14"


def test_lsp_file_in_lspet_axis_order_is_rejected(tmp_path):
    fx = write_lsp(tmp_path / "lsp", shape="lspet")
    with pytest.raises(ValueError, match=r"joints\.mat: field 'joints' has shape \(14, 3, 2000\)"):
        convert_fixture("lsp", fx["root"], "train", tmp_path, every_nth=500)


def test_lspet_file_with_wrong_shape_is_rejected(tmp_path):
    root = tmp_path / "lspet"
    root.mkdir()
    savemat(root / "joints.mat", {"joints": np.zeros((3, 14, 10))})
    with pytest.raises(ValueError, match=r"joints\.mat: field 'joints' has shape \(3, 14, 10\).*14x3xN"):
        convert_fixture("lspet", root, "train", tmp_path)
