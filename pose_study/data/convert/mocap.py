"""Motion capture without images → pose-only canonical HDF5 (the study's ``mocap`` role).

Two sources, each a ``convert(root, split, out, spec)`` like the image converters:

* **CMU Graphics Lab Motion Capture Database, BVH conversion** (``cmu_mocap``). The CMU database
  (http://mocap.cs.cmu.edu/) is distributed as ASF/AMC; the widely used BVH conversion (B. Hahne,
  cgspeed.com) keeps CMU's skeleton with the joint names ``Hips``, ``LHipJoint``, ``LeftUpLeg``,
  ``LeftLeg``, ``LeftFoot``, ``LeftToeBase`` (and ``Right…``), ``LowerBack``, ``Spine``,
  ``Spine1``, ``Neck``, ``Neck1``, ``Head`` (End Site = crown), ``LeftShoulder``, ``LeftArm``,
  ``LeftForeArm``, ``LeftHand``, … (``LHipJoint`` at the root, ``LeftUpLeg`` at the hip joint),
  channels ``Zrotation Yrotation Xrotation`` (the root's after its three positions), 120 frames/s,
  y up. Its lengths are CMU's ASF units, which
  the ASF header declares as ``length 0.45`` (1 unit = 1/0.45 inch), so 1 unit = 25.4 / 0.45 mm
  (``CMU_MM_PER_UNIT``). Files are ``<subject>_<trial>.bvh`` anywhere under the root; subject =
  the number before ``_``. The joint map is ``CMU_BVH_NAMES`` → ``skeletons.CMU_BVH17`` (nose masked).
* **AMASS joint positions** (``amass``). AMASS distributes SMPL-H parameters, not joints; a user
  who has run the SMPL-H body model (e.g. ``human_body_prior``) stores per sequence an ``.npz``
  with ``joints`` (or ``Jtr``) [F, ≥22, 3] in metres, AMASS world frame (z up), and optionally
  ``mocap_framerate``. The first 22 joints are the SMPL-H body joints (``skeletons.SMPL22``);
  hands are ignored. Subject = the npz's parent folder (AMASS: ``<dataset>/<subject>/<seq>.npz``).

Output: a pose-only split (``formats``: no images, no 2D, no camera): ``joints_3d`` world frame
in mm, y down (gravity along +y), joints a source lacks masked. ``every_nth`` subsamples frames.
A sanity check on the thigh length catches a wrong unit (the error names the file and the scale).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pose_study.data.convert import ConvertReport, check_split, split_info
from pose_study.data.convert.bvh import forward_kinematics, read_bvh
from pose_study.data.formats import PoseSplit, write_split
from pose_study.skeletons import CMU_BVH17, SMPL22, Skeleton, to_canonical

SPLITS = ("train",)
CMU_MM_PER_UNIT = 25.4 / 0.45  # ASF "length 0.45": 1 unit = 1/0.45 inch
AMASS_MM_PER_UNIT = 1000.0  # SMPL-H joints are in metres
# BVH joint names of the points of ``skeletons.CMU_BVH17``, in its order ("Head_end": the End Site
# of Head, as ``bvh.read_bvh`` names it).
CMU_BVH_NAMES = ("Hips", "RightUpLeg", "RightLeg", "RightFoot", "LeftUpLeg", "LeftLeg", "LeftFoot", "Spine",
                 "Neck", "Head", "Head_end", "LeftArm", "LeftForeArm", "LeftHand", "RightArm", "RightForeArm",
                 "RightHand")
THIGH_MM = (250.0, 650.0)  # plausible hip-knee distance of an adult, mm
# Up-axis conventions -> world frame with y down (right-handed, as the camera frame).
Y_UP_TO_Y_DOWN = np.diag([1.0, -1.0, -1.0])  # BVH: (x, y, z) -> (x, -y, -z)
Z_UP_TO_Y_DOWN = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # AMASS: (x, -z, y)


def convert_cmu(root: Path, split: str, out: Path, spec: Any) -> ConvertReport:
    """Every ``*.bvh`` under ``root`` → a pose-only split at ``out``."""
    return _convert("cmu_mocap", ".bvh", "; place the CMU BVH conversion there", _cmu_clip, CMU_BVH17, "cmu",
                    root, split, out, spec)


def convert_amass(root: Path, split: str, out: Path, spec: Any) -> ConvertReport:
    """Every ``*.npz`` of joint positions under ``root`` → a pose-only split at ``out``."""
    return _convert("amass", ".npz", " of SMPL-H joint positions", _amass_clip, SMPL22, "amass",
                    root, split, out, spec)


def _convert(name: str, suffix: str, what: str, read_clip: Callable[[Path, int], dict[str, Any]],
             skeleton: Skeleton, tag: str, root: Path, split: str, out: Path, spec: Any) -> ConvertReport:
    """Every ``*{suffix}`` file under ``root``, read by ``read_clip``, → a pose-only split of catalog entry
    ``name`` at ``out`` (``what`` completes the message when there is none)."""
    check_split(name, split, SPLITS)
    files = sorted(Path(root).rglob(f"*{suffix}"))
    if not files:
        raise FileNotFoundError(f"{root}: no {suffix} files{what} (see the catalog entry {name})")
    clips = [read_clip(path, spec.every_nth) for path in files]
    return _write(clips, name, split, skeleton, tag, out)


def _cmu_clip(path: Path, every_nth: int) -> dict[str, Any]:
    bvh = read_bvh(path)
    positions = forward_kinematics(bvh)[::every_nth]
    native = positions[:, [bvh.index(name) for name in CMU_BVH_NAMES]] * CMU_MM_PER_UNIT
    subject = path.stem.split("_")[0]
    return _clip(path, native @ Y_UP_TO_Y_DOWN.T, f"cmu_{subject}", path.stem, every_nth, CMU_BVH17)


def _amass_clip(path: Path, every_nth: int) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as npz:
        key = next((k for k in ("joints", "Jtr") if k in npz.files), None)
        if key is None:
            raise ValueError(f"{path}: no 'joints' or 'Jtr' array; found {npz.files}. Store SMPL-H joint "
                             "positions [F, 22+, 3] in metres under 'joints'")
        joints = np.asarray(npz[key], dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1] < SMPL22.num_joints or joints.shape[2] != 3:
        raise ValueError(f"{path}: field {key!r} has shape {joints.shape}, expected [F, >=22, 3] "
                         "(SMPL-H joints, body first)")
    native = joints[::every_nth, :SMPL22.num_joints] * AMASS_MM_PER_UNIT
    subject = path.parent.name
    return _clip(path, native @ Z_UP_TO_Y_DOWN.T, f"amass_{subject}", f"{subject}_{path.stem}", every_nth,
                 SMPL22)


def _clip(path: Path, native: np.ndarray, subject: str, clip: str, every_nth: int,
          skeleton: Skeleton) -> dict[str, Any]:
    """Canonical joints of one sequence, after checking the unit on the thigh length."""
    _check_thigh(path, native, skeleton)
    joints, valid = to_canonical(native, np.ones(native.shape[:2], bool), skeleton)
    n = len(joints)
    return {"joints_3d": joints, "joints_3d_valid": valid, "subject": np.full(n, subject, dtype=object),
            "clip": np.full(n, clip, dtype=object), "frame": np.arange(n, dtype=np.int64) * every_nth}


def _check_thigh(path: Path, native: np.ndarray, skeleton: Skeleton) -> None:
    hip, knee = (skeleton.to_canonical[i] for i in (1, 2))  # canonical r_hip, r_knee
    if len(native) == 0:
        raise ValueError(f"{path}: the sequence has no frames")
    thigh = float(np.median(np.linalg.norm(native[:, hip] - native[:, knee], axis=-1)))
    if not THIGH_MM[0] <= thigh <= THIGH_MM[1]:
        raise ValueError(f"{path}: thigh length {thigh:.0f} mm is outside {THIGH_MM} after scaling; the "
                         f"file's unit is not the one assumed for {skeleton.name} "
                         "(see pose_study.data.convert.mocap)")


def _write(clips: list[dict[str, Any]], dataset: str, split: str, skeleton: Skeleton, module: str,
           out: Path) -> ConvertReport:
    columns = {key: np.concatenate([c[key] for c in clips]) for key in clips[0]}
    n = len(columns["joints_3d"])
    split_data = PoseSplit(info=split_info(dataset, split, skeleton.name, module), images=None,
                           joints_2d=None, joints_2d_valid=None, center=None, scale=None,
                           joints_3d=columns["joints_3d"].astype(np.float32),
                           joints_3d_valid=columns["joints_3d_valid"], subject=columns["subject"],
                           clip=columns["clip"], frame=columns["frame"])
    write_split(out, split_data)
    report = ConvertReport(dataset, split, read=n, written=n)
    report.log()
    return report


assert len(CMU_BVH_NAMES) == CMU_BVH17.num_joints
