"""Frames of a clip by index: pre-extracted image files when present, else decoded from the official video.

Human3.6M ships ``S*/Videos/<Seq>.<cam>.mp4`` and MPI-INF-3DHP's training set
``S*/Seq*/imageSequence/video_<cam>.avi``; their annotation rows are the videos' frames in order
(row r = the r-th decoded frame, 0-based). ``ClipFrames`` reads a video with PyAV (whose wheels
bundle FFmpeg) front to back, once: frames are asked for in increasing order, and only the frames
asked for are converted to RGB and handed on to be cropped. Nothing is written to disk: the
converter crops and encodes each kept frame on the fly.

Which frames are decoded depends on the codec:

* **Inter-coded** (H.264, MPEG-4 Part 2 and the like; PyAV's ``codec.intra_only`` is false): every
  frame is decoded, kept or not. A P- or B-frame is stored as a difference from other frames, so
  a kept frame can only be rebuilt from the frames before it back to a key frame; skipping the
  decode of an unkept frame (FFmpeg's ``skip_frame``) would corrupt the frames that refer to it.
  Seeking would only pay when the gap between kept frames spans a key frame (``every_nth`` is
  far below usual key-frame intervals), and a seek lands by timestamp, which does not give the
  decoded frame's index exactly. What this costs is in ``reports/benchmarks.md`` (issue 19,
  "Video frames").
* **Intra-only** (MJPEG and the like): every packet is one whole frame, so only the packets of kept
  frames are decoded; the others are read from the file and dropped. Frame r is still the r-th
  frame of the stream (empty packets, which decode to no frame, are not counted).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from pose_study.data.convert import ConvertReport, open_image

log = logging.getLogger(__name__)


class ClipFrames:
    """One clip's frames by 0-based index, asked for in increasing order.

    A frame whose image file (``image_path(index)``) exists is read from it (pre-extracted frames
    are still accepted); otherwise it is decoded from ``video``.

    Args:
        video: The clip's video file (need not exist when every frame is extracted).
        image_path: The pre-extracted image file of a frame index.
        spec: Convert spec (``skip_bad_images``).
        report: Where skips are counted.
        frame_size: The (W, H) the dataset documents for this clip; a video of another size is
            logged as a warning (the annotations' pixels assume the documented size).
    """

    def __init__(self, video: Path, image_path: Callable[[int], Path], spec: Any, report: ConvertReport,
                 frame_size: tuple[int, int] | None = None) -> None:
        self.video, self.image_path, self.spec, self.report = Path(video), image_path, spec, report
        self.frame_size = frame_size
        self._container = None
        self._frames: Iterator | None = None  # decoded frames (inter-coded) or packets (intra-only)
        self._intra_only = False
        self._next = 0  # index of the next frame the decoder yields

    def __enter__(self) -> ClipFrames:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self, index: int) -> Image.Image | None:
        """Frame ``index`` as an RGB image, or None when it is skipped (``skip_bad_images``)."""
        path = self.image_path(index)
        if path.exists() or not self.video.is_file():
            return open_image(path, self.spec, self.report)
        return self._decoded(index)

    def _decoded(self, index: int) -> Image.Image | None:
        if index < self._next:
            raise ValueError(f"{self.video}: frame {index} asked for after frame {self._next - 1}; "
                             "frames of a video are read in increasing order")
        try:
            if self._frames is None:
                self._start()
            for item in self._frames:
                current, self._next = self._next, self._next + 1
                if current == index:
                    frame = self._decode_packet(item) if self._intra_only else item
                    return frame.to_image().convert("RGB")
        except Exception as err:  # PyAV raises av.error.* (OSError / ValueError subclasses) for bad data
            return self._bad(index, f"cannot be decoded at frame {index} ({err})", "video corrupt")
        return self._bad(index, f"has {self._next} frames, the annotations need frame {index}",
                         "frame beyond the video's end")

    def _start(self) -> None:
        import av

        self._container = av.open(str(self.video))
        stream = self._container.streams.video[0]
        self._intra_only = bool(stream.codec_context.codec.intra_only)
        if self._intra_only:  # one frame per packet: decode only the kept ones (module docstring)
            self._frames = (packet for packet in self._container.demux(stream) if packet.size)
        else:
            stream.thread_type = "AUTO"
            self._frames = self._container.decode(stream)
        if self.frame_size is not None and (stream.width, stream.height) != tuple(self.frame_size):
            log.warning("%s: frames are %dx%d, the catalog says %dx%d for this camera and subject", self.video,
                        stream.width, stream.height, *self.frame_size)
        log.debug("decoding %s (%s, %dx%d, %s)", self.video, stream.codec_context.name, stream.width,
                  stream.height, "kept frames only" if self._intra_only else "every frame")

    def _decode_packet(self, packet: Any) -> Any:
        """The one frame of an intra-only codec's packet (no frame threads, so none is held back)."""
        frames = self._container.streams.video[0].codec_context.decode(packet)
        if len(frames) != 1:
            raise ValueError(f"a packet of an intra-only stream decoded to {len(frames)} frames, expected 1")
        return frames[0]

    def _bad(self, index: int, problem: str, reason: str) -> None:
        if self.spec.skip_bad_images:
            self.report.skip(reason)
            return None
        raise ValueError(f"{self.video}: video {problem}; set skip_bad_images: true in the convert spec to skip "
                         f"and count such frames, or extract the frames to {self.image_path(index).parent}")

    def close(self) -> None:
        """Close the video (if one was opened)."""
        if self._container is not None:
            self._container.close()
            self._container, self._frames = None, None
