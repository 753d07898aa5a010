"""One synthetic split on disk: render ``SynthesizeSpec`` chunk by chunk into the canonical HDF5 format.

Used by the ``synthesize`` stage and by the benchmarks (which must not depend on the stages).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator

import numpy as np

from pose_study import __version__
from pose_study.data.formats import PoseSplit, SplitInfo, encode_jpeg, write_split
from pose_study.data.synthetic.generate import Chunk, synthesize_chunk
from pose_study.data.synthetic.worlds import GENERATOR_VERSION, SynthesizeSpec

log = logging.getLogger(__name__)
_LOG_EVERY_S = 10.0
_FIELDS = ("images", "joints_2d", "joints_2d_valid", "center", "scale", "joints_3d", "joints_3d_valid",
           "intrinsics", "head_box", "subject", "action", "camera", "clip", "frame")


def split_info(spec: SynthesizeSpec) -> SplitInfo:
    """The file attributes of the split ``spec`` renders."""
    return SplitInfo(dataset=spec.dataset, split=spec.split, skeleton=spec.joint_set, source="synthetic",
                     converter=f"pose_study.synthesize {__version__} (generator v{GENERATOR_VERSION}, "
                               f"world {spec.world})")


def render_chunks(spec: SynthesizeSpec) -> Iterator[PoseSplit]:
    """The split in rendered chunks of ``spec.chunk_size`` samples (JPEG-encoded when asked); logs progress."""
    info = split_info(spec)
    t0 = last = time.perf_counter()
    for start in range(0, spec.num_samples, spec.chunk_size):
        stop = min(start + spec.chunk_size, spec.num_samples)
        chunk = synthesize_chunk(spec, start, stop)
        if spec.image_encoding == "jpeg":
            chunk.images = [encode_jpeg(im) for im in chunk.images]
        yield _as_split(info, chunk)
        now = time.perf_counter()
        if now - last > _LOG_EVERY_S or stop == spec.num_samples:
            log.info("rendered %d/%d images (%.0f img/s)", stop, spec.num_samples, stop / (now - t0))
            last = now


def write(spec: SynthesizeSpec, out: str | os.PathLike) -> None:
    """Render ``spec`` and write it to ``out`` (canonical HDF5, atomically)."""
    chunks = list(render_chunks(spec))
    write_split(out, PoseSplit(info=chunks[0].info, **{name: _cat(chunks, name) for name in _FIELDS}),
                image_encoding=spec.image_encoding)


def _as_split(info: SplitInfo, chunk: Chunk) -> PoseSplit:
    return PoseSplit(info=info, **{name: getattr(chunk, name) for name in _FIELDS})


def _cat(chunks: list[PoseSplit], name: str) -> np.ndarray | list | None:
    parts = [getattr(c, name) for c in chunks]
    if parts[0] is None:
        return None
    if isinstance(parts[0], list):
        return [x for p in parts for x in p]
    return np.concatenate(parts)
