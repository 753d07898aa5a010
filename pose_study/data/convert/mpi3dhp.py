"""MPI-INF-3DHP → canonical HDF5 (3D).

``train`` (S1–S8 × Seq1–2, the catalog's chest-height cameras ``train_cameras``):

* ``S<s>/Seq<q>/annot.mat`` (MAT v5): ``annot2`` / ``annot3`` are 14×1 cells, one per camera;
  cell c holds (F, 56) = 28 joints × (x, y) px and (F, 84) = 28 joints × (x, y, z) in camera c's
  frame, mm. Only the first ``train_frames`` rows (the video length, catalog) are used.
* ``S<s>/Seq<q>/camera.calibration`` (text): per camera ``name <c>`` then ``intrinsic`` = 16
  numbers, a row-major 4×4 K (fx [0], cx [2], fy [5], cy [6]); parsed by whitespace.
* Frames: decoded from the official ``S<s>/Seq<q>/imageSequence/video_<c>.avi`` (row r = frame r;
  only the kept rows are cropped, see ``convert.video``), or, where extracted,
  ``imageSequence/img_<c>_<row+1:06d>.jpg`` (ffmpeg's numbering from 1).

``test`` (TS1–TS6): ``mpi_inf_3dhp_test_set/TS<n>/annot_data.mat`` — MATLAB **v7.3** (HDF5), read
with h5py, whose shapes are MATLAB's reversed: ``annot2`` (n, 1, 17, 2), ``univ_annot3``
(n, 1, 17, 3), ``valid_frame`` (n, 1), ``activity_annotation`` (n, 1). Only frames with
``valid_frame == 1`` are kept (the evaluated ones). ``joints_3d`` holds ``univ_annot3`` — the
universal-skeleton 3D that the official 3DPCK/AUC scoring uses. No calibration ships with the
test set: ``intrinsics`` are fitted per sequence by least squares from ``annot2`` ↔ ``annot3``
(pinhole); note that ``univ_annot3`` is rescaled and does not reproject exactly onto ``annot2``.
Frames ``TS<n>/imageSequence/img_<row+1:06d>.jpg`` (the test set ships images, not videos).

2D pixels are used as given (no ±1 shift: the annotations come from projections, not MATLAB
clicks). Crop: square around the 2D joints, side = box_margin × their longer extent. Every joint
is annotated (valid) in both sets.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pose_study.data import crop
from pose_study.data.catalog import get_dataset
from pose_study.data.convert import (
    ConvertReport, SampleBuffer, check_split, finish, find_file, load_mat, mat_variable, open_image,
    split_info,
)
from pose_study.data.convert.video import ClipFrames
from pose_study.skeletons import MPI3DHP28, MPI3DHP_TEST17, Skeleton, to_canonical

DATASET = "mpi_inf_3dhp"
SPLITS = ("train", "test")
TEST_DIRS = ("mpi_inf_3dhp_test_set/{seq}/annot_data.mat", "{seq}/annot_data.mat")


def convert(root: Path, split: str, out: Path, spec: Any) -> ConvertReport:
    """Convert one MPI-INF-3DHP split (``train`` | ``test``) to ``out``; see the module docstring."""
    check_split(DATASET, split, SPLITS)
    root, tables = Path(root), get_dataset(DATASET).tables
    report = ConvertReport(DATASET, split)
    skeleton = MPI3DHP28 if split == "train" else MPI3DHP_TEST17
    info = split_info(DATASET, split, skeleton.name, __name__)
    buffer = SampleBuffer(spec, with_3d=True, out=out, info=info)
    if split == "train":
        for subject in spec.subjects or tables["subjects"]["train"]:
            for q, frames in enumerate(tables["train_frames"][subject], start=1):
                _convert_train_sequence(buffer, report, root / subject / f"Seq{q}", subject, q, frames,
                                        tables["train_cameras"], spec)
    else:
        for seq in spec.subjects or tables["subjects"]["test"]:
            _convert_test_sequence(buffer, report, root, seq, tables["activities"], spec)
    return finish(buffer, info, out, spec, report)


# --- training set ---------------------------------------------------------------------------------


def _convert_train_sequence(buffer: SampleBuffer, report: ConvertReport, folder: Path, subject: str,
                            seq: int, frames: int, cameras: list[int], spec: Any) -> None:
    annot = read_train_annot(folder / "annot.mat")
    intrinsics = read_calibration(folder / "camera.calibration")
    for cam in cameras:
        if cam not in intrinsics:
            raise ValueError(f"{folder / 'camera.calibration'}: no camera 'name {cam}'")
        joints_2d = annot["annot2"][cam][:frames].reshape(-1, 28, 2)
        joints_3d = annot["annot3"][cam][:frames].reshape(-1, 28, 3)
        images = folder / "imageSequence"
        with ClipFrames(images / f"video_{cam}.avi", lambda r, c=cam: images / f"img_{c}_{r + 1:06d}.jpg", spec,
                        report) as clip_frames:
            for row in range(0, len(joints_2d), spec.every_nth):
                _add_frame(buffer, report, clip_frames.open, row, joints_2d[row], joints_3d[row], intrinsics[cam],
                           MPI3DHP28, spec, subject=subject, camera=str(cam),
                           clip=f"{subject}/Seq{seq}/cam{cam}", frame=row)


def read_train_annot(path: Path) -> dict[str, list[np.ndarray]]:
    """``annot2`` / ``annot3`` of a training ``annot.mat`` as 14 per-camera float arrays each."""
    mat = load_mat(path)
    out = {}
    for name, width in (("annot2", 56), ("annot3", 84)):
        cells = mat_variable(mat, name, path)
        if cells.dtype != object or cells.size != 14:
            raise ValueError(f"{path}: field {name!r} has shape {cells.shape}, expected a 14x1 cell array")
        out[name] = [np.asarray(c, dtype=np.float64) for c in cells.ravel(order="F")]
        bad = [c for c, a in enumerate(out[name]) if a.ndim != 2 or a.shape[1] != width]
        if bad:
            raise ValueError(f"{path}: field {name!r} cell {bad[0]} has shape {out[name][bad[0]].shape}, "
                             f"expected (frames, {width})")
    return out


def read_calibration(path: Path) -> dict[int, np.ndarray]:
    """Per camera id, the [3, 3] intrinsics from a ``camera.calibration`` text file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (MPI-INF-3DHP camera calibration)")
    out, current = {}, None
    for number, line in enumerate(path.read_text(encoding="latin-1").splitlines(), start=1):
        words = line.split()
        if len(words) >= 2 and words[0] == "name":
            current = int(words[1])
        elif words and words[0] == "intrinsic":
            values = np.array([float(v) for v in words[1:]])
            if current is None or values.size != 16:
                raise ValueError(f"{path}: line {number}: 'intrinsic' needs 16 numbers after a 'name' line")
            out[current] = values.reshape(4, 4)[:3, :3]
    return out


# --- test set -------------------------------------------------------------------------------------


def _convert_test_sequence(buffer: SampleBuffer, report: ConvertReport, root: Path, seq: str,
                           activities: list[str], spec: Any) -> None:
    path = find_file(root, tuple(p.format(seq=seq) for p in TEST_DIRS), f"MPI-INF-3DHP {seq} annot_data.mat")
    annot = read_test_annot(path)
    keep = np.flatnonzero(annot["valid_frame"].ravel() == 1)
    if len(keep) == 0:
        return  # no evaluated frame in this sequence
    intrinsics = fit_intrinsics(annot["annot2"][keep, 0], annot["annot3"][keep, 0])
    for row in keep[keep % spec.every_nth == 0]:
        activity = int(annot["activity_annotation"].ravel()[row])
        image_path = path.parent / "imageSequence" / f"img_{row + 1:06d}.jpg"
        _add_frame(buffer, report, lambda _, p=image_path: open_image(p, spec, report), row,
                   annot["annot2"][row, 0], annot["univ_annot3"][row, 0], intrinsics, MPI3DHP_TEST17, spec,
                   subject=seq, camera=seq, clip=seq, frame=int(row),
                   action=activities[activity - 1] if 1 <= activity <= len(activities) else "")


def read_test_annot(path: Path) -> dict[str, np.ndarray]:
    """The test ``annot_data.mat`` arrays in h5py order (MATLAB v7.3; a v5 file is transposed to match)."""
    import h5py

    names = {"annot2": (17, 2), "annot3": (17, 3), "univ_annot3": (17, 3), "valid_frame": (),
             "activity_annotation": ()}
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as h5:
            data = {n: np.asarray(h5[n], dtype=np.float64) for n in names if n in h5}
    else:
        mat = load_mat(path)
        data = {n: np.asarray(mat[n], dtype=np.float64).T for n in names if n in mat}
    for name, trailing in names.items():
        if name not in data:
            raise ValueError(f"{path}: no dataset {name!r} (MPI-INF-3DHP test annot_data.mat)")
        value = data[name]
        if trailing and (value.ndim != 4 or value.shape[1:] != (1, *trailing)):
            raise ValueError(f"{path}: field {name!r} has shape {value.shape}, expected "
                             f"(n, 1, {trailing[0]}, {trailing[1]}) as read by h5py (MATLAB order reversed)")
    n = len(data["annot2"])
    if any(data[k].size != n for k in ("valid_frame", "activity_annotation")):
        raise ValueError(f"{path}: 'valid_frame'/'activity_annotation' do not have {n} entries like 'annot2'")
    return data


def fit_intrinsics(joints_2d: np.ndarray, joints_3d: np.ndarray) -> np.ndarray:
    """Least-squares pinhole K from [N, J, 2] px and [N, J, 3] camera-frame joints: u = f·x/z + c."""
    normalised = (joints_3d[..., :2] / joints_3d[..., 2:3]).reshape(-1, 2)
    pixels = joints_2d.reshape(-1, 2)
    K = np.eye(3)
    for axis in (0, 1):
        design = np.stack([normalised[:, axis], np.ones(len(normalised))], axis=1)
        (focal, principal), *_ = np.linalg.lstsq(design, pixels[:, axis], rcond=None)
        K[axis, axis], K[axis, 2] = focal, principal
    return K


# --- shared ---------------------------------------------------------------------------------------


def _add_frame(buffer: SampleBuffer, report: ConvertReport, open_frame: Callable[[int], Any], row: int,
               joints_2d: np.ndarray, joints_3d: np.ndarray, intrinsics: np.ndarray, skeleton: Skeleton,
               spec: Any, **meta: Any) -> None:
    report.read += 1
    valid = np.isfinite(joints_2d).all(axis=1) & np.isfinite(joints_3d).all(axis=1)
    center, side = crop.box_from_points(joints_2d, valid, spec.box_margin)
    if side < 1:
        report.skip("degenerate person box")
        return
    image = open_frame(row)
    if image is None:
        return
    j2, v2 = to_canonical(joints_2d[None], valid[None], skeleton)
    j3, _ = to_canonical(joints_3d[None], valid[None], skeleton)
    buffer.add(image, center, side, j2[0], v2[0], joints_3d=j3[0], valid_3d=v2[0], intrinsics=intrinsics,
               **meta)
