"""Human3.6M → canonical HDF5 (3D, standard H36M-17 order).

Reads, under the dataset root (layout in ``catalog.yaml``):

* ``S<n>/MyPoseFeatures/D3_Positions/<Seq>.cdf`` — official CDF, variable ``Pose`` (1, F, 96):
  32 joints × (x, y, z), **world** frame (Z up), mm. ``_ALL`` sequences are skipped. The 17
  standard joints are rows ``skeletons.H36M32_TO_17`` (VideoPose3D/mmpose order: right leg
  first — *not* the SPIN order, whose legs are swapped).
* ``metadata.xml`` (from the official software bundle) — element ``w0``: for camera c (0..3) and
  subject s, extrinsics are 6 numbers at ``6·(11·c + s − 1)``: Euler angles a0..a2 (rad) and the
  camera centre T (world, mm). World → camera rotation R = Rx(a0)·Ry(a1)·Rz(a2) (right-handed
  axis rotations; ported from OpenMMLab's ``preprocess_h36m.py``, whose R is its transpose).
* Camera intrinsics and distortion: the catalog's ``h36m.cameras`` table (published values).
* Frames: decoded from the official ``S<n>/Videos/<Seq>.<cam>.mp4`` (frame f = pose row f; only
  the kept frames are cropped, see ``convert.video``), or, where extracted, read from
  ``images/<S>/<S>_<Seq>.<cam>/<S>_<Seq>.<cam>_<frame+1:06d>.jpg`` with spaces in ``<Seq>``
  replaced by ``_`` (OpenMMLab's layout; its ``fps10`` extraction matches ``every_nth: 5``).
  Frame sizes (W × H) are the catalog's per camera, except in the subjects of
  ``frame_size_by_subject`` (``frame_size``).

Output per (frame, camera): ``joints_3d`` = R (X − T) in the camera frame (x right, y down,
z forward), mm; ``joints_2d`` = the **distorted** projection (H36M model: radial k1..k3,
tangential p1, p2 on normalised coordinates, then f, c), in 0-based px as the published D2
positions (pixel base unverified), mapped to the crop; ``intrinsics`` = the pinhole part K
mapped to crop px. K @ joints_3d therefore equals joints_2d only up to lens distortion: apply
:func:`distort` with the catalog's k, p before K to reproduce joints_2d exactly.
Crop: square around the 2D joints, side = box_margin × their longer extent. Splits: ``train`` =
S1, S5, S6, S7, S8; ``test`` = S9, S11 (catalog ``h36m.tables.subjects``); the convert option
``subjects`` converts some of them only.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pose_study.data import crop
from pose_study.data.catalog import get_dataset
from pose_study.data.convert import ConvertReport, SampleBuffer, check_split, finish, find_file, split_info
from pose_study.data.convert.video import ClipFrames
from pose_study.skeletons import CANONICAL, H36M32_TO_17

DATASET = "h36m"
SPLITS = ("train", "test")
POSE_DIR = Path("MyPoseFeatures") / "D3_Positions"
W0_LENGTH = 264 + 4 * 9  # 44 extrinsic blocks of 6, then 4 intrinsic blocks of 9
ACTION_ALIASES = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog"}  # S1 uses the long names


@dataclass(frozen=True)
class Camera:
    """One camera for one subject.

    Attributes:
        id: Camera id, e.g. ``"54138969"``.
        rotation: [3, 3] world → camera.
        center: [3] camera centre, world mm.
        f, c: [2] focal length and principal point, px.
        k: [3] radial, ``p``: [2] tangential distortion.
    """

    id: str
    rotation: np.ndarray
    center: np.ndarray
    f: np.ndarray
    c: np.ndarray
    k: np.ndarray
    p: np.ndarray

    @property
    def intrinsics(self) -> np.ndarray:
        return np.array([[self.f[0], 0.0, self.c[0]], [0.0, self.f[1], self.c[1]], [0.0, 0.0, 1.0]])


def convert(root: Path, split: str, out: Path, spec: Any) -> ConvertReport:
    """Convert one Human3.6M split (``train`` | ``test``) to ``out``; see the module docstring."""
    check_split(DATASET, split, SPLITS)
    root = Path(root)
    tables = get_dataset(DATASET).tables
    metadata = find_file(root, ("metadata.xml",), "Human3.6M metadata.xml (camera extrinsics, from the "
                         "official 'visualisation and large scale prediction software' bundle)")
    w0 = read_w0(metadata, [cam["id"] for cam in tables["cameras"]])
    report = ConvertReport(DATASET, split)
    info = split_info(DATASET, split, CANONICAL.name, __name__)
    buffer = SampleBuffer(spec, with_3d=True, out=out, info=info)
    for subject in spec.subjects or tables["subjects"][split]:
        cameras = [camera(w0, index, subject, table) for index, table in enumerate(tables["cameras"])]
        for path in sequence_files(root, subject):
            world = read_pose(path)
            for cam in cameras:
                _convert_clip(buffer, report, root, subject, path.stem, cam, world, spec)
    return finish(buffer, info, out, spec, report)


def _convert_clip(buffer: SampleBuffer, report: ConvertReport, root: Path, subject: str, seq: str,
                  cam: Camera, world: np.ndarray, spec: Any) -> None:
    valid = np.ones(CANONICAL.num_joints, dtype=bool)
    with ClipFrames(video_path(root, subject, seq, cam.id), lambda f: frame_path(root, subject, seq, cam.id, f),
                    spec, report, frame_size(subject, cam.id)) as frames:
        for frame in range(0, len(world), spec.every_nth):
            report.read += 1
            joints_3d = world_to_camera(world[frame], cam)
            if (joints_3d[:, 2] <= 0).any():
                report.skip("joint behind the camera")
                continue
            joints_2d = project(joints_3d, cam)
            center, side = crop.box_from_points(joints_2d, valid, spec.box_margin)
            image = frames.open(frame)
            if image is None:
                continue
            buffer.add(image, center, side, joints_2d, valid, joints_3d=joints_3d, valid_3d=valid,
                       intrinsics=cam.intrinsics, subject=subject, action=action_name(seq), camera=cam.id,
                       clip=f"{subject}/{seq}.{cam.id}", frame=frame)


def sequence_files(root: Path, subject: str) -> list[Path]:
    """The subject's ``D3_Positions`` CDF files, ``_ALL`` sequences excluded."""
    folder = root / subject / POSE_DIR
    files = sorted(p for p in folder.glob("*.cdf") if not p.stem.startswith("_ALL"))
    if not files:
        raise FileNotFoundError(f"{folder}: no <Seq>.cdf pose files; extract Poses_D3_Positions_{subject}"
                                ".tgz from the Human3.6M file browser (registration required) into the root")
    return files


def read_pose(path: Path) -> np.ndarray:
    """[F, 17, 3] standard H36M-17 world joints (mm) from a ``D3_Positions`` CDF ``Pose``."""
    import cdflib

    try:
        cdf = cdflib.CDF(str(path))
        pose = np.asarray(cdf.varget("Pose"), dtype=np.float64)
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{path}: cannot read CDF variable 'Pose' ({err})") from err
    if pose.shape[-1] != 96 or pose.ndim not in (2, 3) or (pose.ndim == 3 and pose.shape[0] != 1):
        raise ValueError(f"{path}: field 'Pose' has shape {pose.shape}, expected (1, F, 96) = 32 joints x "
                         "(x, y, z) per frame (D3_Positions)")
    return pose.reshape(-1, 32, 3)[:, list(H36M32_TO_17)]


def read_w0(path: Path, camera_ids: list[str]) -> np.ndarray:
    """The ``w0`` camera vector of ``metadata.xml`` (camera order checked against the catalog)."""
    try:
        tree = ET.parse(path)
    except ET.ParseError as err:
        raise ValueError(f"{path}: not valid XML ({err})") from err
    element = tree.getroot().find("w0")
    if element is None or not (element.text or "").strip():
        raise ValueError(f"{path}: no element 'w0' (the camera parameter vector)")
    try:
        w0 = np.array([float(v) for v in element.text.strip().strip("[]").split()])
    except ValueError as err:
        raise ValueError(f"{path}: element 'w0' is not a list of numbers ({err})") from err
    if len(w0) < W0_LENGTH:
        raise ValueError(f"{path}: element 'w0' has {len(w0)} numbers, expected {W0_LENGTH}")
    order = [item.text for item in tree.getroot().findall("dbcameras/index2id/item")]
    if order and order != camera_ids:
        raise ValueError(f"{path}: dbcameras/index2id lists cameras {order}, the catalog {camera_ids}")
    return w0


def camera(w0: np.ndarray, index: int, subject: str, table: dict) -> Camera:
    """Camera ``index`` (0..3) of ``subject`` (``"S1"`` …).

    Extrinsics come from ``w0``, intrinsics and distortion from the catalog ``table`` row.
    """
    start = 6 * (11 * index + int(subject[1:]) - 1)
    angles, center = w0[start: start + 3], w0[start + 3: start + 6]
    return Camera(id=str(table["id"]), rotation=rotation(angles), center=center.copy(),
                  f=np.asarray(table["f"], float), c=np.asarray(table["c"], float),
                  k=np.asarray(table["k"], float), p=np.asarray(table["p"], float))


def rotation(angles: np.ndarray) -> np.ndarray:
    """World → camera rotation from the three ``w0`` angles: Rx(a0) · Ry(a1) · Rz(a2)."""
    (ca, cb, cc), (sa, sb, sc) = np.cos(angles), np.sin(angles)
    rx = np.array([[1, 0, 0], [0, ca, -sa], [0, sa, ca]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rz = np.array([[cc, -sc, 0], [sc, cc, 0], [0, 0, 1]])
    return rx @ ry @ rz


def world_to_camera(joints: np.ndarray, cam: Camera) -> np.ndarray:
    """[J, 3] world mm → camera frame mm: R (X − T)."""
    return (joints - cam.center) @ cam.rotation.T


def distort(normalised: np.ndarray, k: np.ndarray, p: np.ndarray) -> np.ndarray:
    """H36M lens model on [J, 2] normalised coordinates (x/z, y/z) → distorted normalised coordinates."""
    r2 = (normalised ** 2).sum(axis=1, keepdims=True)
    radial = 1 + k[0] * r2 + k[1] * r2 ** 2 + k[2] * r2 ** 3
    tangential = normalised @ p[:, None]  # p1·u + p2·v
    return normalised * (radial + tangential) + p * r2


def project(joints: np.ndarray, cam: Camera) -> np.ndarray:
    """[J, 3] camera-frame mm → [J, 2] distorted pixel coordinates."""
    uv = distort(joints[:, :2] / joints[:, 2:3], cam.k, cam.p)
    return uv * cam.f + cam.c


def video_path(root: Path, subject: str, seq: str, camera_id: str) -> Path:
    """The official video of one sequence and camera (``S<n>/Videos/<Seq>.<cam>.mp4``)."""
    return root / subject / "Videos" / f"{seq}.{camera_id}.mp4"


def frame_size(subject: str, camera_id: str) -> tuple[int, int]:
    """(W, H) of the frames of ``camera_id`` for ``subject`` (catalog: camera ``size``, then
    ``frame_size_by_subject``; e.g. S7's camera 55011271 gives 1000 × 1002 frames)."""
    tables = get_dataset(DATASET).tables
    by_subject = tables.get("frame_size_by_subject", {})
    if subject in by_subject:
        return tuple(by_subject[subject])
    row = next((c for c in tables["cameras"] if str(c["id"]) == camera_id), None)
    if row is None:
        raise ValueError(f"h36m: unknown camera {camera_id!r}; the catalog lists "
                         f"{[c['id'] for c in tables['cameras']]}")
    return tuple(row["size"])


def frame_path(root: Path, subject: str, seq: str, camera_id: str, frame: int) -> Path:
    """Extracted frame file of 0-based ``frame`` (file names are 1-based)."""
    name = f"{subject}_{seq.replace(' ', '_')}.{camera_id}"
    return root / "images" / subject / name / f"{name}_{frame + 1:06d}.jpg"


def action_name(seq: str) -> str:
    """``"Directions 1"`` → ``"Directions"``; S1's ``TakingPhoto``/``WalkingDog`` → ``Photo``/``WalkDog``."""
    base = re.sub(r"\s*\d+$", "", seq)
    return ACTION_ALIASES.get(base, base)
