"""Frames of a clip by index: pre-extracted image files when present, else decoded from the official video.

Human3.6M ships ``S*/Videos/<Seq>.<cam>.mp4`` and MPI-INF-3DHP's training set
``S*/Seq*/imageSequence/video_<cam>.avi``; their annotation rows are the videos' frames in order
(row r = the r-th decoded frame, 0-based). ``ClipFrames`` decodes a video with PyAV (whose wheels
bundle FFmpeg) front to back, once: frames are asked for in increasing order, and only the frames
asked for are converted to RGB and handed on to be cropped (the others are decoded, as inter-coded
video requires, and dropped). Nothing is written to disk: the converter crops and encodes each kept
frame on the fly.
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
        self._frames: Iterator | None = None
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
            for frame in self._frames:
                current, self._next = self._next, self._next + 1
                if current == index:
                    return frame.to_image().convert("RGB")
        except Exception as err:  # PyAV raises av.error.* (OSError / ValueError subclasses) for bad data
            return self._bad(index, f"cannot be decoded at frame {index} ({err})", "video corrupt")
        return self._bad(index, f"has {self._next} frames, the annotations need frame {index}",
                         "frame beyond the video's end")

    def _start(self) -> None:
        import av

        self._container = av.open(str(self.video))
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self._frames = self._container.decode(stream)
        if self.frame_size is not None and (stream.width, stream.height) != tuple(self.frame_size):
            log.warning("%s: frames are %dx%d, the catalog says %dx%d for this camera and subject", self.video,
                        stream.width, stream.height, *self.frame_size)
        log.debug("decoding %s (%s, %dx%d)", self.video, stream.codec_context.name, stream.width, stream.height)

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
