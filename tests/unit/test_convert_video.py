"""Frames straight from the official videos: every kept frame is the one its annotation row names.

Each test video is encoded with PyAV, frame i filled with a colour that spells i in base 4 (one
digit per RGB channel, levels far enough apart to survive lossy coding), so the crop of any row
shows which video frame it was cut from.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from pose_study.data.convert import ConvertReport, h36m
from pose_study.data.convert.video import ClipFrames
from tests.fixtures.official import convert_fixture, write_h36m
from tests.fixtures.official_3d import write_mpi3dhp_train

av = pytest.importorskip("av")
LEVELS = np.array([30, 100, 170, 240])


def colour(index: int) -> np.ndarray:
    return LEVELS[[index % 4, index // 4 % 4, index // 16 % 4]].astype(np.uint8)


def read_index(rgb: np.ndarray) -> int:
    digits = [int(np.abs(LEVELS - v).argmin()) for v in rgb]
    return digits[0] + 4 * digits[1] + 16 * digits[2]


def write_video(path: Path, frames: int, size: tuple[int, int], codec: str) -> None:
    """``frames`` frames of ``size`` (W, H), frame i filled with ``colour(i)``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height = size
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for i in range(frames):
            image = np.broadcast_to(colour(i), (size[1], size[0], 3)).copy()
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def centre_index(crop: np.ndarray) -> int:
    s = crop.shape[0] // 2
    return read_index(crop[s - 2:s + 2, s - 2:s + 2].reshape(-1, 3).mean(0))


def test_the_colour_code_reads_back():
    assert [read_index(colour(i)) for i in range(64)] == list(range(64))


def test_h36m_frames_come_from_the_mp4_where_not_extracted(tmp_path):
    frames = 11
    fx = write_h36m(tmp_path / "h36m", subjects=("S1",), frames=frames)
    root, seq, cam = fx["root"], "Directions 1", "54138969"
    shutil.rmtree(root / "images" / "S1" / f"S1_Directions_1.{cam}")  # this clip: the video only
    write_video(h36m.video_path(root, "S1", seq, cam), frames, (1000, 1002), "mpeg4")
    report, split = convert_fixture("h36m", root, "train", tmp_path, crop_size=64, every_nth=3, subjects=["S1"])
    assert not report.skipped and sorted(set(split.subject)) == ["S1"]
    rows = np.flatnonzero(split.clip == f"S1/{seq}.{cam}")
    assert list(split.frame[rows]) == [0, 3, 6, 9]
    assert [centre_index(split.images[r]) for r in rows] == [0, 3, 6, 9]
    extracted = np.flatnonzero(split.clip == f"S1/{seq}.55011271")  # pre-extracted frames still read
    assert list(split.frame[extracted]) == [0, 3, 6, 9]


def test_mpi3dhp_training_frames_come_from_the_avi(tmp_path):
    frames = 9
    fx = write_mpi3dhp_train(tmp_path / "3dhp", frames=frames, subjects=[1])
    images = fx["root"] / "S1" / "Seq2" / "imageSequence"
    for path in images.glob("img_4_*.jpg"):
        path.unlink()
    write_video(images / "video_4.avi", frames, (96, 64), "mpeg4")
    report, split = convert_fixture("mpi_inf_3dhp", fx["root"], "train", tmp_path, crop_size=32, every_nth=2,
                                    subjects=["S1"])
    assert not report.skipped
    rows = np.flatnonzero(split.clip == "S1/Seq2/cam4")
    assert list(split.frame[rows]) == [0, 2, 4, 6, 8]
    assert [centre_index(split.images[r]) for r in rows] == [0, 2, 4, 6, 8]
    joints = fx["joints"][(1, 2, 4)]  # the labels are those of the same rows
    np.testing.assert_allclose(split.joints_3d[rows][:, 0], joints[[0, 2, 4, 6, 8]][:, 4], atol=1e-3)


class _Spec:
    skip_bad_images = False


@pytest.mark.parametrize("codec,decoded_packets", [("mjpeg", 4), ("mpeg4", 0)],
                         ids=["intra-only", "inter-coded"])
def test_only_the_kept_frames_of_an_intra_only_video_are_decoded(tmp_path, monkeypatch, codec,
                                                                 decoded_packets):
    video = tmp_path / "clip.avi"
    write_video(video, 12, (48, 32), codec)
    packets = []
    original = ClipFrames._decode_packet
    monkeypatch.setattr(ClipFrames, "_decode_packet", lambda self, p: packets.append(p) or original(self, p))
    missing = tmp_path / "none"
    with ClipFrames(video, lambda i: missing / f"{i}.jpg", _Spec(), ConvertReport("x", "train")) as clip:
        assert [centre_index(np.asarray(clip.open(i))) for i in (0, 3, 4, 9)] == [0, 3, 4, 9]
    assert len(packets) == decoded_packets  # mpeg4: every frame went through the decoder instead


def test_mpi3dhp_frames_from_an_intra_only_avi_match_their_rows(tmp_path):
    fx = write_mpi3dhp_train(tmp_path / "3dhp", frames=9, subjects=[1])
    images = fx["root"] / "S1" / "Seq2" / "imageSequence"
    for path in images.glob("img_4_*.jpg"):
        path.unlink()
    write_video(images / "video_4.avi", 9, (96, 64), "mjpeg")
    report, split = convert_fixture("mpi_inf_3dhp", fx["root"], "train", tmp_path, crop_size=32, every_nth=3,
                                    subjects=["S1"])
    assert not report.skipped
    rows = np.flatnonzero(split.clip == "S1/Seq2/cam4")
    assert list(split.frame[rows]) == [0, 3, 6]
    assert [centre_index(split.images[r]) for r in rows] == [0, 3, 6]
    joints = fx["joints"][(1, 2, 4)]
    np.testing.assert_allclose(split.joints_3d[rows][:, 0], joints[[0, 3, 6]][:, 4], atol=1e-3)


def test_a_video_shorter_than_its_annotations_is_an_error_or_a_counted_skip(tmp_path):
    video = tmp_path / "clip.avi"
    write_video(video, 4, (32, 32), "mpeg4")
    missing = tmp_path / "none"
    with ClipFrames(video, lambda i: missing / f"{i}.jpg", _Spec(), ConvertReport("x", "train")) as clip:
        assert centre_index(np.asarray(clip.open(2))) == 2
        with pytest.raises(ValueError, match=r"clip.avi: video has 4 frames, the annotations need frame 6"):
            clip.open(6)
    spec, report = _Spec(), ConvertReport("x", "train")
    spec.skip_bad_images = True
    with ClipFrames(video, lambda i: missing / f"{i}.jpg", spec, report) as clip:
        assert clip.open(5) is None
    assert report.skipped == {"frame beyond the video's end": 1}


def test_a_video_of_another_size_than_the_catalog_says_is_logged(tmp_path, caplog):
    video = tmp_path / "clip.mp4"
    write_video(video, 2, (64, 48), "mpeg4")
    report = ConvertReport("x", "train")
    with ClipFrames(video, lambda i: tmp_path / f"{i}.jpg", _Spec(), report, (1000, 1002)) as clip:
        assert clip.open(0).size == (64, 48)
    assert "frames are 64x48, the catalog says 1000x1002" in caplog.text


def test_h36m_frame_sizes_per_subject():
    """reference/datasets.md §4.1: S4, S7, S10 give 1000x1002 on every camera (S7_Greeting.55011271 is)."""
    assert h36m.frame_size("S7", "55011271") == (1000, 1002)
    assert h36m.frame_size("S8", "55011271") == (1000, 1000)
    assert h36m.frame_size("S1", "54138969") == (1000, 1002)
    assert h36m.frame_size("S10", "58860488") == (1000, 1002)


def test_the_subjects_option_names_unknown_subjects_and_datasets_without_them(tmp_path):
    from pose_study.stages.convert import ConvertSpec

    with pytest.raises(ValueError, match=r"h36m/train: convert option 'subjects' names \['S9'\]"):
        ConvertSpec(dataset="h36m", root=str(tmp_path), split="train", subjects=("S1", "S9"))
    with pytest.raises(ValueError, match="mpii: convert option 'subjects' is for datasets with subjects"):
        ConvertSpec(dataset="mpii", root=str(tmp_path), split="train", subjects=("S1",))
