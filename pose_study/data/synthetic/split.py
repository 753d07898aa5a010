"""One synthetic split on disk: render ``SynthesizeSpec`` chunk by chunk into the canonical HDF5 format,
holding one chunk (``spec.chunk_size`` samples) in memory at a time.

Used by the ``synthesize`` stage and by the benchmarks (which must not depend on the stages).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator

from pose_study import __version__
import numpy as np

from pose_study.data.formats import PoseSplit, SplitInfo, SplitWriter, encode_jpeg
from pose_study.data.synthetic.generate import Chunk, synthesize_chunk, synthesize_poses
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
    """Render ``spec`` and write it to ``out`` (canonical HDF5, atomically), one chunk in memory at a time.

    A pose-only world (a pose pool) is written as a pose-only split: 3D joints, no images, 2D or camera.
    """
    with SplitWriter(out, split_info(spec), spec.image_encoding) as writer:
        for part in (pose_chunks(spec) if spec.pose_only else render_chunks(spec)):
            writer.append(part)


def pose_chunks(spec: SynthesizeSpec) -> Iterator[PoseSplit]:
    """The poses of a pose-only world in chunks of ``spec.chunk_size`` (no rendering)."""
    info = split_info(spec)
    for start in range(0, spec.num_samples, spec.chunk_size):
        c = synthesize_poses(spec, start, min(start + spec.chunk_size, spec.num_samples))
        yield PoseSplit(info=info, images=None, joints_2d=None, joints_2d_valid=None, center=None, scale=None,
                        joints_3d=c.joints_3d, joints_3d_valid=np.ones(c.joints_3d.shape[:2], bool),
                        subject=c.subject, action=c.action, clip=c.clip, frame=c.frame)


def _as_split(info: SplitInfo, chunk: Chunk) -> PoseSplit:
    return PoseSplit(info=info, **{name: getattr(chunk, name) for name in _FIELDS})

