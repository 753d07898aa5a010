import h5py
import numpy as np
import pytest

from pose_study.data import formats
from pose_study.data.formats import FormatError, PoseSplit, SplitInfo, read_info, read_split, write_split

K = formats.K


def make_split(n: int = 3, size: int = 16, with_3d: bool = True) -> PoseSplit:
    rng = np.random.default_rng(0)
    kwargs = {}
    if with_3d:
        kwargs = dict(
            joints_3d=(rng.normal(0, 300, (n, K, 3)) + [0, 0, 4000]).astype(np.float32),
            joints_3d_valid=np.ones((n, K), bool),
            intrinsics=np.tile(np.diag([50.0, 50.0, 1.0]).astype(np.float32), (n, 1, 1)),
        )
    return PoseSplit(
        info=SplitInfo(dataset="lab", split="train", skeleton="h36m17", source="synthetic", converter="t 1"),
        images=rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8),
        joints_2d=rng.uniform(0, size, (n, K, 2)).astype(np.float32),
        joints_2d_valid=rng.random((n, K)) > 0.2,
        center=np.zeros((n, 2), np.float32),
        scale=np.full(n, 100.0, np.float32),
        subject=np.array(["S1", "S1", "S9"][:n], dtype=object),
        frame=np.arange(n),
        **kwargs,
    )


def test_round_trip_keeps_every_field(tmp_path):
    split = make_split()
    write_split(tmp_path / "a.h5", split)
    back = read_split(tmp_path / "a.h5")
    assert back.info == split.info
    for name in ("images", "joints_2d", "joints_2d_valid", "joints_3d", "intrinsics", "frame"):
        np.testing.assert_array_equal(getattr(back, name), getattr(split, name))
    assert list(back.subject) == ["S1", "S1", "S9"]
    assert back.head_box is None and back.has_3d


def test_jpeg_encoding_round_trips_approximately(tmp_path):
    split = make_split(size=32)
    split.images = np.full_like(split.images, 128)
    write_split(tmp_path / "j.h5", split, image_encoding="jpeg")
    back = read_split(tmp_path / "j.h5")
    assert back.images.shape == split.images.shape
    assert np.abs(back.images.astype(int) - 128).max() <= 2


def test_2d_only_split_has_no_3d_fields(tmp_path):
    write_split(tmp_path / "b.h5", make_split(with_3d=False))
    back = read_split(tmp_path / "b.h5", images=False)
    assert not back.has_3d and back.intrinsics is None


def test_other_format_version_is_named(tmp_path):
    path = tmp_path / "v.h5"
    write_split(path, make_split())
    with h5py.File(path, "a") as h5:
        h5.attrs["format_version"] = 99
    with pytest.raises(FormatError, match=r"v\.h5: format_version is 99.*versions \[1, 2\]"):
        read_info(path)


def test_missing_dataset_names_file_and_field(tmp_path):
    path = tmp_path / "m.h5"
    write_split(path, make_split())
    with h5py.File(path, "a") as h5:
        del h5["joints_2d_valid"]
    with pytest.raises(FormatError, match=r"m\.h5: missing dataset 'joints_2d_valid'"):
        read_split(path)


def test_wrong_shape_names_field(tmp_path):
    split = make_split()
    split.joints_2d = split.joints_2d[:, :16]
    with pytest.raises(FormatError, match=r"field 'joints_2d' has shape \(3, 16, 2\), expected \(3, 17, 2\)"):
        write_split(tmp_path / "s.h5", split)
    assert not (tmp_path / "s.h5").exists()


def test_wrong_dtype_on_disk_names_field(tmp_path):
    path = tmp_path / "d.h5"
    write_split(path, make_split())
    with h5py.File(path, "a") as h5:
        data = h5["joints_2d_valid"][()].astype(np.float32)
        del h5["joints_2d_valid"]
        h5["joints_2d_valid"] = data
    with pytest.raises(FormatError, match="field 'joints_2d_valid' has dtype float32"):
        read_split(path)


def test_3d_fields_come_together(tmp_path):
    split = make_split()
    split.intrinsics = None
    with pytest.raises(FormatError, match="intrinsics"):
        write_split(tmp_path / "t.h5", split)


def test_not_hdf5_and_missing_file_are_clear(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    with pytest.raises(FormatError, match="bad.h5: not a readable HDF5"):
        read_split(bad)
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        read_split(tmp_path / "nope.h5")


def test_select_subsets_every_per_sample_field():
    split = make_split()
    sub = split.select(np.array([2, 0]))
    assert len(sub) == 2 and list(sub.subject) == ["S9", "S1"]
    np.testing.assert_array_equal(sub.joints_3d[0], split.joints_3d[2])
