"""Occlusion-Person: list-of-dicts pickle through the restricted unpickler; no head joint."""

import os
import pickle

import numpy as np
import pytest

from tests.fixtures._common import crop_px
from tests.fixtures.official import convert_fixture, write_occlusion_person

S = 32
# datasets.md §9.2: native index for each canonical joint (-1: none; no head in Occlusion-Person).
NATIVE_FOR_CANONICAL = [0, 1, 2, 3, 4, 5, 6, 7, 8, -1, -1, 9, 10, 11, 12, 13, 14]


@pytest.mark.parametrize("zipped", [False, True], ids=["images_dir", "images_zip"])
def test_values_head_masked_occluded_kept(tmp_path, zipped):
    fx = write_occlusion_person(tmp_path / "op", zipped=zipped)
    report, split = convert_fixture("occlusion_person", fx["root"], "validation", tmp_path)
    assert report.read == report.written == 4
    for i, entry in enumerate(fx["entries"]):
        lo, hi = entry["box"][:2], entry["box"][2:]
        center, side = (lo + hi) / 2, 1.25 * (hi - lo).max()
        present = [n for n in NATIVE_FOR_CANONICAL if n >= 0]
        canonical = [c for c, n in enumerate(NATIVE_FOR_CANONICAL) if n >= 0]
        np.testing.assert_allclose(split.joints_2d[i, canonical], crop_px(entry["joints_2d"][present], center, side, S),
                                   atol=1e-4)
        np.testing.assert_allclose(split.joints_3d[i, canonical], entry["joints_3d"][present], atol=0.01)
    assert not split.joints_2d_valid[:, [9, 10]].any() and not split.joints_3d_valid[:, [9, 10]].any()
    np.testing.assert_array_equal(split.joints_3d[:, 10], 0.0)  # head_top is not a copy of the neck
    assert split.joints_2d_valid[0, 5] and split.joints_2d_valid[0, 16]  # occluded / out-of-image: annotated
    assert list(split.frame) == [0, 0, 5, 5] and split.clip[1] == "a05_sa01_s14_sce00/cam03"


def test_every_nth_keeps_all_views_of_a_frame(tmp_path):
    fx = write_occlusion_person(tmp_path / "op")
    report, split = convert_fixture("occlusion_person", fx["root"], "validation", tmp_path, every_nth=2)
    assert report.read == 2 and list(split.camera) == ["0", "3"]


def test_malicious_annotation_pickle_is_refused(tmp_path):
    fx = write_occlusion_person(tmp_path / "op")
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = fx["root"] / "unrealcv" / "annot" / "unrealcv_validation.pkl"
    path.write_bytes(pickle.dumps([Payload()]))
    with pytest.raises(ValueError, match=r"unrealcv_validation\.pkl: refusing to load global"):
        convert_fixture("occlusion_person", fx["root"], "validation", tmp_path)
    assert not marker.exists()


def test_entry_without_box_names_entry_and_key(tmp_path):
    fx = write_occlusion_person(tmp_path / "op")
    entries = fx["entries"]
    del entries[2]["box"]
    with open(fx["root"] / "unrealcv" / "annot" / "unrealcv_validation.pkl", "wb") as f:
        pickle.dump(entries, f)
    with pytest.raises(ValueError, match=r"unrealcv_validation\.pkl: entry 2 has no key 'box'"):
        convert_fixture("occlusion_person", fx["root"], "validation", tmp_path)
