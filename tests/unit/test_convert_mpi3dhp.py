"""MPI-INF-3DHP: training annot.mat cells + camera.calibration; v7.3 test annot_data.mat."""

import h5py
import numpy as np
import pytest
from scipy.io import loadmat

from tests.fixtures.official import convert_fixture, write_mpi3dhp_test, write_mpi3dhp_train

# datasets.md §9.2: native index for each canonical joint.
TRAIN28_FOR_CANONICAL = [4, 23, 24, 25, 18, 19, 20, 3, 5, 6, 7, 9, 10, 11, 14, 15, 16]
TEST17_FOR_CANONICAL = [14, 8, 9, 10, 11, 12, 13, 15, 1, 16, 0, 5, 6, 7, 2, 3, 4]


def reprojects(split, i, joints_3d):
    p = joints_3d @ split.intrinsics[i].astype(float).T
    return p[:, :2] / p[:, 2:]


def test_train_cells_calibration_and_cameras(tmp_path):
    fx = write_mpi3dhp_train(tmp_path / "3dhp")
    report, split = convert_fixture("mpi_inf_3dhp", fx["root"], "train", tmp_path)
    assert report.read == report.written == 8 * 2 * 8 * 2  # subjects x seqs x chest cameras x frames
    assert sorted(set(split.camera), key=int) == ["0", "1", "2", "4", "5", "6", "7", "8"]
    row = np.flatnonzero((split.clip == "S3/Seq2/cam5") & (split.frame == 1))[0]
    expected = fx["joints"][(3, 2, 5)][1][TRAIN28_FOR_CANONICAL]
    np.testing.assert_allclose(split.joints_3d[row], expected, atol=0.01)
    np.testing.assert_allclose(reprojects(split, row, split.joints_3d[row]), split.joints_2d[row], atol=1e-3)
    assert split.joints_2d_valid.all() and split.info.skeleton == "mpi3dhp28"


def test_test_set_v73_valid_frames_and_universal_3d(tmp_path):
    fx = write_mpi3dhp_test(tmp_path / "3dhp")
    with pytest.raises(NotImplementedError):  # MATLAB v7.3 = HDF5: scipy cannot read it
        loadmat(fx["root"] / "mpi_inf_3dhp_test_set" / "TS1" / "annot_data.mat")
    report, split = convert_fixture("mpi_inf_3dhp", fx["root"], "test", tmp_path)
    assert report.read == report.written == 6 * 3  # frame 1 of each sequence has valid_frame 0
    ts2 = split.clip == "TS2"
    assert list(split.frame[ts2]) == [0, 2, 3]
    truth = fx["sequences"]["TS2"]
    for row, frame in zip(np.flatnonzero(ts2), (0, 2, 3), strict=True):
        np.testing.assert_allclose(split.joints_3d[row], truth["univ_annot3"][frame][TEST17_FOR_CANONICAL], atol=0.01)
        # intrinsics are fitted from annot2 <-> annot3 (not the rescaled univ_annot3)
        annot3 = truth["annot3"][frame][TEST17_FOR_CANONICAL]
        np.testing.assert_allclose(reprojects(split, row, annot3), split.joints_2d[row], atol=1e-3)
    assert list(split.action[ts2]) == ["Standing/Walking", "Sitting", "Reaching/Crouching"]  # activity 1, 3, 4


def test_test_annotation_in_matlab_order_is_rejected(tmp_path):
    fx = write_mpi3dhp_test(tmp_path / "3dhp")
    path = fx["root"] / "mpi_inf_3dhp_test_set" / "TS4" / "annot_data.mat"
    with h5py.File(path, "a") as h5:
        data = h5["annot2"][()]
        del h5["annot2"]
        h5["annot2"] = data.transpose(3, 2, 1, 0)  # (2, 17, 1, n): dimensions not reversed
    with pytest.raises(ValueError, match=r"TS4/annot_data\.mat: field 'annot2' has shape \(2, 17, 1, 4\)"):
        convert_fixture("mpi_inf_3dhp", fx["root"], "test", tmp_path)


def test_train_annot_without_annot3_names_file_and_field(tmp_path):
    fx = write_mpi3dhp_train(tmp_path / "3dhp", subjects=(1,))
    from scipy.io import savemat

    path = fx["root"] / "S1" / "Seq1" / "annot.mat"
    mat = {k: v for k, v in loadmat(path).items() if not k.startswith("__") and k != "annot3"}
    savemat(path, mat)
    with pytest.raises(ValueError, match=r"S1/Seq1/annot\.mat: no variable 'annot3'"):
        convert_fixture("mpi_inf_3dhp", fx["root"], "train", tmp_path)
