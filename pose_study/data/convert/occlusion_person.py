"""Occlusion-Person (AdaFuse, UnrealCV) → canonical HDF5 (3D, 15 joints, no head).

Reads ``unrealcv/annot/unrealcv_{train,validation}.pkl`` through the restricted unpickler: a list
of per-image dicts with (among others) ``image`` (``<video>/<cam:02d>_<frame:06d>.jpg``),
``joints_2d`` (15, 2) px, ``joints_3d`` (15, 3) camera frame (mm, per the AdaFuse code;
unverified), ``box`` [x1, y1, x2, y2], ``camera`` {``fx, fy, cx, cy``, ``R``, ``T``, ``k``, ``p``},
``video_id``, ``image_id``, ``subject``, ``action``, ``camera_id``. ``joints_vis`` /
``joints_vis_2d`` (in image / not occluded) are not validity: every joint has ground truth.

The dataset has **no head joint**: canonical ``nose`` and ``head_top`` stay masked (the
prototype copied the neck into head_top). ``belly`` maps to canonical ``spine``.
Images: ``unrealcv/images/<image>`` if extracted, else read from ``unrealcv/images.zip`` (member
``images/<image>``). ``joints_2d`` is used as given (the dataset's projection including its
k, p distortion); ``intrinsics`` is the pinhole K from fx, fy, cx, cy, mapped to the crop.
Crop: square around ``box``, side = box_margin × its longer side. ``every_nth`` keeps frames
with ``image_id % every_nth == 0`` (all views of a kept frame).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from pose_study.data.convert import (
    ConvertReport, SampleBuffer, check_split, finish, find_file, open_image, split_info,
)
from pose_study.data.unpickle import load_pickle
from pose_study.skeletons import OCCLUSION_PERSON15, to_canonical

DATASET = "occlusion_person"
SPLITS = ("train", "validation")
ANNOT = ("unrealcv/annot/unrealcv_{split}.pkl", "annot/unrealcv_{split}.pkl", "unrealcv_{split}.pkl")
KEYS = ("image", "joints_2d", "joints_3d", "box", "camera", "image_id", "video_id", "subject", "action",
        "camera_id")


def convert(root: Path, split: str, out: Path, spec: Any) -> ConvertReport:
    """Convert one Occlusion-Person split (``train`` | ``validation``) to ``out``."""
    check_split(DATASET, split, SPLITS)
    root = Path(root)
    candidates = tuple(p.format(split=split) for p in ANNOT)
    path = find_file(root, candidates, f"Occlusion-Person unrealcv_{split}.pkl")
    entries = load_pickle(path)
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of per-image dicts, got {type(entries).__name__}")
    report = ConvertReport(DATASET, split)
    info = split_info(DATASET, split, OCCLUSION_PERSON15.name, __name__)
    buffer = SampleBuffer(spec, with_3d=True, out=out, info=info)
    with ImageSource(root) as images:
        for i, entry in enumerate(entries):
            _check_entry(entry, i, path)
            if int(entry["image_id"]) % spec.every_nth == 0:
                _convert_entry(buffer, report, images, entry, i, path, spec)
    return finish(buffer, info, out, spec, report)


def _convert_entry(buffer: SampleBuffer, report: ConvertReport, images: ImageSource, entry: dict, i: int,
                   path: Path, spec: Any) -> None:
    report.read += 1
    joints_2d = _array(entry, "joints_2d", (15, 2), i, path)
    joints_3d = _array(entry, "joints_3d", (15, 3), i, path)
    box = _array(entry, "box", (4,), i, path)
    valid = np.isfinite(joints_2d).all(axis=1) & np.isfinite(joints_3d).all(axis=1)
    side = spec.box_margin * float(max(box[2] - box[0], box[3] - box[1]))
    if not side >= 1:
        report.skip("degenerate box")
        return
    image = images.open(str(entry["image"]), spec, report)
    if image is None:
        return
    j2, v2 = to_canonical(joints_2d[None], valid[None], OCCLUSION_PERSON15)
    j3, _ = to_canonical(joints_3d[None], valid[None], OCCLUSION_PERSON15)
    cam = int(entry["camera_id"])
    buffer.add(image, (box[:2] + box[2:]) / 2, side, j2[0], v2[0], joints_3d=j3[0], valid_3d=v2[0],
               intrinsics=intrinsics(entry["camera"], i, path), subject=str(entry["subject"]),
               action=str(entry["action"]), camera=str(cam), clip=f"{entry['video_id']}/cam{cam:02d}",
               frame=int(entry["image_id"]))


def _check_entry(entry: Any, i: int, path: Path) -> None:
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: entry {i} is a {type(entry).__name__}, expected a dict")
    for key in KEYS:
        if key not in entry:
            raise ValueError(f"{path}: entry {i} has no key {key!r} (expected keys {list(KEYS)})")


def _array(entry: dict, key: str, shape: tuple[int, ...], i: int, path: Path) -> np.ndarray:
    value = np.asarray(entry[key], dtype=np.float64)
    if value.size != int(np.prod(shape)):
        raise ValueError(f"{path}: entry {i} field {key!r} has shape {value.shape}, expected {shape}")
    return value.reshape(shape)


def intrinsics(camera: Any, i: int, path: Path) -> np.ndarray:
    """[3, 3] K from the entry's ``camera`` dict (``fx, fy, cx, cy``)."""
    try:
        fx, fy, cx, cy = (float(np.asarray(camera[k]).ravel()[0]) for k in ("fx", "fy", "cx", "cy"))
    except (KeyError, TypeError, IndexError) as err:
        raise ValueError(f"{path}: entry {i} field 'camera' lacks fx/fy/cx/cy ({err!r})") from err
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


class ImageSource:
    """Images from ``unrealcv/images/`` if extracted, else from ``unrealcv/images.zip``."""

    def __init__(self, root: Path) -> None:
        folders = [root / "unrealcv" / "images", root / "images"]
        self.folder = next((f for f in folders if f.is_dir()), None)
        self.zip_path = root / "unrealcv" / "images.zip"
        self.zip: zipfile.ZipFile | None = None
        if self.folder is None:
            if not self.zip_path.is_file():
                raise FileNotFoundError(f"Occlusion-Person images not found: neither {folders[0]} nor "
                                        f"{self.zip_path} exists")
            self.zip = zipfile.ZipFile(self.zip_path)

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.zip is not None:
            self.zip.close()

    def open(self, name: str, spec: Any, report: ConvertReport) -> Any:
        if self.zip is None:
            return open_image(self.folder / name, spec, report)
        member = f"images/{name}"

        def opener() -> io.BytesIO:
            try:
                return io.BytesIO(self.zip.read(member))
            except KeyError as err:
                raise FileNotFoundError(member) from err

        return open_image(Path(f"{self.zip_path}@/{member}"), spec, report, opener=opener)
