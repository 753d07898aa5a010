"""3DPW → canonical HDF5 (3D from the SMPL joint positions; 2D from OpenPose otherwise).

Reads ``sequenceFiles/<split>/<sequence>.pkl`` (Python-2 pickles, loaded through the restricted
unpickler with ``encoding="latin1"``): a dict with ``sequence``, ``cam_intrinsics`` (3, 3) K,
``cam_poses`` (N, 4, 4) world → camera per frame, ``campose_valid`` (per person (N,)),
``poses2d`` (per person (N, 3, 18): x, y, confidence, OpenPose COCO-18 order) and, when present,
``jointPositions`` (per person (N, 72) = 24 SMPL joints × xyz, world, metres). Frames are the
30 Hz image frames ``imageFiles/<sequence>/image_<frame:05d>.jpg`` (0-based).

With ``jointPositions``: ``joints_3d`` = the SMPL joints moved into the camera frame (R X + t) in
mm, mapped into the canonical set where a counterpart exists (pelvis, hips, knees, ankles,
spine ≈ spine2, neck, shoulders, elbows, wrists); ``nose`` and ``head_top`` have no SMPL joint
and stay masked (nothing is derived from the nose). ``joints_2d`` = their pinhole projection
with ``cam_intrinsics``. SMPL joints are kinematic-tree joints, not the H36M marker set; the
usual 3DPW benchmark regresses H36M joints from the SMPL mesh, which needs the (separately
licensed) SMPL model and is not done here.
Without ``jointPositions``: ``joints_2d`` from ``poses2d`` (confidence > 0 = valid; the OpenPose
"neck" is a shoulder midpoint and is not mapped), 3D masked.
Frames with ``campose_valid == 0`` are skipped (counted). Crop: square around the valid 2D
joints, side = box_margin × their longer extent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pose_study.data import crop
from pose_study.data.convert import ConvertReport, SampleBuffer, check_split, finish, open_image, split_info
from pose_study.data.unpickle import load_pickle
from pose_study.skeletons import CANONICAL

DATASET = "3dpw"
SPLITS = ("train", "validation", "test")
KEYS = ("sequence", "cam_intrinsics", "cam_poses", "poses2d")
# Canonical joint <- native index (-1 = absent). SMPL-24: 0 pelvis, 1 l_hip, 2 r_hip, 4/5 knees,
# 7/8 ankles, 6 spine2, 12 neck, 16-21 shoulders/elbows/wrists (datasets.md §9.2).
SMPL24_TO_CANONICAL = np.array([0, 2, 5, 8, 1, 4, 7, 6, 12, -1, -1, 16, 18, 20, 17, 19, 21])
# OpenPose COCO-18: 0 nose, 1 neck (shoulder midpoint, not mapped), 2-4 right arm, 5-7 left arm,
# 8-10 right leg, 11-13 left leg, 14-17 eyes/ears.
OPENPOSE18_TO_CANONICAL = np.array([-1, 8, 9, 10, 11, 12, 13, -1, -1, 0, -1, 5, 6, 7, 2, 3, 4])


def convert(root: Path, split: str, out: Path, spec: Any) -> ConvertReport:
    """Convert one 3DPW split (``train`` | ``validation`` | ``test``) to ``out``."""
    check_split(DATASET, split, SPLITS)
    root = Path(root)
    folder = root / "sequenceFiles" / split
    files = sorted(folder.glob("*.pkl"))
    if not files:
        raise FileNotFoundError(f"{folder}: no <sequence>.pkl files; extract sequenceFiles.zip from the 3DPW "
                                "download (registration required) into the root")
    report = ConvertReport(DATASET, split)
    info = split_info(DATASET, split, CANONICAL.name, __name__)
    buffer = SampleBuffer(spec, with_3d=True, out=out, info=info)
    for path in files:
        seq = read_sequence(path)
        for person in range(len(seq["poses2d"])):
            _convert_person(buffer, report, root, seq, person, path, spec)
    # The canonical set is the closest registered skeleton name for SMPL-24 / OpenPose-18 labels.
    return finish(buffer, info, out, spec, report)


def read_sequence(path: Path) -> dict:
    """A 3DPW sequence pickle with its required keys checked."""
    seq = load_pickle(path, encoding="latin1")
    if not isinstance(seq, dict):
        raise ValueError(f"{path}: expected a dict, got {type(seq).__name__}")
    for key in KEYS:
        if key not in seq:
            raise ValueError(f"{path}: no key {key!r} (expected keys {list(KEYS)}; "
                             "'jointPositions' optional)")
    if np.shape(seq["cam_intrinsics"]) != (3, 3) or np.ndim(seq["cam_poses"]) != 3:
        raise ValueError(f"{path}: 'cam_intrinsics' must be 3x3 and 'cam_poses' (N, 4, 4); got "
                         f"{np.shape(seq['cam_intrinsics'])}, {np.shape(seq['cam_poses'])}")
    return seq


def _convert_person(buffer: SampleBuffer, report: ConvertReport, root: Path, seq: dict, person: int,
                    path: Path, spec: Any) -> None:
    name = str(seq["sequence"])
    poses = seq.get("jointPositions")
    K = np.asarray(seq["cam_intrinsics"], dtype=np.float64)
    cam_poses = np.asarray(seq["cam_poses"], dtype=np.float64)
    campose_valid = seq.get("campose_valid")
    for frame in range(0, len(cam_poses), spec.every_nth):
        report.read += 1
        if campose_valid is not None and not np.asarray(campose_valid[person])[frame]:
            report.skip("campose_valid = 0")
            continue
        if poses is not None:
            j2, v2, j3 = _from_smpl(np.asarray(poses[person])[frame], cam_poses[frame], K, path)
        else:
            j2, v2 = _from_openpose(np.asarray(seq["poses2d"][person])[frame], path)
            j3 = None
        center, side = crop.box_from_points(j2, v2, spec.box_margin)
        if v2.sum() < 2 or side < 1:
            report.skip("fewer than 2 distinct valid joints")
            continue
        image = open_image(root / "imageFiles" / name / f"image_{frame:05d}.jpg", spec, report)
        if image is None:
            continue
        buffer.add(image, center, side, j2, v2, joints_3d=j3, valid_3d=v2 if j3 is not None else None,
                   intrinsics=K, subject=name, clip=f"{name}/person{person}", frame=frame)


def _from_smpl(flat: np.ndarray, extrinsics: np.ndarray, K: np.ndarray, path: Path) -> tuple:
    if flat.size != 72:
        raise ValueError(f"{path}: field 'jointPositions' has {flat.size} values per frame, "
                         "expected 72 (24x3)")
    world = flat.reshape(24, 3)
    camera = (world @ extrinsics[:3, :3].T + extrinsics[:3, 3]) * 1000.0  # m -> mm, camera frame
    joints_3d, valid = _map(camera, np.ones(24, bool), SMPL24_TO_CANONICAL)
    valid &= joints_3d[:, 2] > 0
    projected = joints_3d @ K.T
    joints_2d = projected[:, :2] / np.where(valid, projected[:, 2], 1.0)[:, None]
    return joints_2d, valid, joints_3d


def _from_openpose(pose: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
    if pose.shape != (3, 18):
        raise ValueError(f"{path}: field 'poses2d' has shape {pose.shape} per frame, expected (3, 18)")
    return _map(pose[:2].T, pose[2] > 0, OPENPOSE18_TO_CANONICAL)


def _map(joints: np.ndarray, valid: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Native [J, D] joints → canonical [17, D] via ``index`` (−1 = masked, zero)."""
    present = index >= 0
    out = np.zeros((len(index), joints.shape[1]))
    out_valid = np.zeros(len(index), dtype=bool)
    out[present] = joints[index[present]]
    out_valid[present] = valid[index[present]]
    return out, out_valid
