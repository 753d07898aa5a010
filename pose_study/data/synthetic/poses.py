"""Activity pose families and short smooth clips.

A family is a centre pose and a spread per joint angle (degrees); a draw is
``centre + spread * (2u - 1)``, optionally mirrored left/right, then clamped to the joint limits.
A clip of T frames blends two draws of one family with a cosine ease and adds a periodic gait
(walking) term, so joint angles change smoothly from frame to frame. Family names are the
``action`` strings of the 3D worlds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pose_study.data.synthetic.body import PARAM, POSE_PARAMS, P, clip_to_limits


@dataclass(frozen=True)
class Family:
    """One activity.

    Attributes:
        name: Action name.
        centre: {param: degrees} overrides of the standing centre pose.
        spread: {param: degrees} overrides of the standing spread.
        arms_hang: Arms follow the torso pitch so that they hang under gravity (bending).
    """

    name: str
    centre: dict[str, float]
    spread: dict[str, float]
    arms_hang: bool = False


def _both(**kwargs: float) -> dict[str, float]:
    """Expand ``hip_flex=5`` into ``l_hip_flex=5, r_hip_flex=5``."""
    return {f"{side}_{k}": v for k, v in kwargs.items() for side in "lr"}


_STAND_CENTRE = {"head_pitch": 5.0, **_both(hip_abd=5, knee=5, sh_abd=10, elbow=15)}
_STAND_SPREAD = {
    "torso_pitch": 8, "torso_roll": 5, "torso_twist": 15, "head_pitch": 15, "head_yaw": 30,
    **_both(hip_flex=10, hip_abd=5, knee=5, sh_flex=15, sh_abd=8, sh_rot=30, elbow=15),
}

FAMILIES = (
    Family("standing", {}, {}),
    Family("walking", _both(knee=20, elbow=20), _both(sh_flex=8)),
    Family("arms_raised", {"head_pitch": -10.0, **_both(sh_flex=140, sh_abd=60, elbow=25)},
           _both(sh_flex=40, sh_abd=60, sh_rot=60, elbow=25)),
    Family("sitting", {"torso_pitch": 10.0, **_both(hip_flex=90, hip_abd=12, knee=90, sh_flex=30, elbow=60)},
           {"torso_pitch": 15, **_both(hip_flex=12, hip_abd=10, knee=15, sh_flex=25, elbow=35)}),
    Family("crouching", {"torso_pitch": 35.0, **_both(hip_flex=112, hip_abd=18, knee=130, sh_flex=45,
                                                      elbow=50)},
           {"torso_pitch": 15, **_both(hip_flex=15, hip_abd=12, knee=15, sh_flex=35, elbow=35)}),
    Family("reaching", {"torso_pitch": 15.0, "torso_twist": 15.0, "r_sh_flex": 95.0, "r_sh_abd": 20.0,
                        "r_elbow": 10.0},
           {"torso_pitch": 15, "torso_twist": 15, "r_sh_flex": 35, "r_sh_abd": 20, "r_elbow": 10}),
    Family("bending", {"torso_pitch": 70.0, "head_pitch": -20.0, **_both(knee=10, sh_flex=0)},
           {"torso_pitch": 20, **_both(knee=10, sh_flex=20)}, arms_hang=True),
    Family("sports", {"torso_pitch": 10.0, **_both(hip_flex=25, hip_abd=22, knee=35, sh_flex=60, sh_abd=50,
                                                   elbow=70)},
           {"torso_pitch": 15, "torso_roll": 20, "torso_twist": 45,
            **_both(hip_flex=35, hip_abd=15, knee=30, sh_flex=70, sh_abd=50, sh_rot=60, elbow=60)}),
)
FAMILY_NAMES = tuple(f.name for f in FAMILIES)


def _vector(base: dict[str, float], over: dict[str, float]) -> np.ndarray:
    merged = {**base, **over}
    return np.array([merged.get(name, 0.0) for name in POSE_PARAMS])


_CENTRES = np.stack([_vector(_STAND_CENTRE, f.centre) for f in FAMILIES])  # [F, P] degrees
_SPREADS = np.stack([_vector(_STAND_SPREAD, f.spread) for f in FAMILIES])  # [F, P] degrees
_HANG = np.array([f.arms_hang for f in FAMILIES])

# Gait: additive angles = _GAIT_SIN * sin(phase) + _GAIT_COS * cos(phase); walking only.
_GAIT_SIN = _vector({}, {"l_hip_flex": 25, "r_hip_flex": -25, "l_sh_flex": -20, "r_sh_flex": 20})
_GAIT_COS = _vector({}, {"l_knee": -15, "r_knee": 15, "torso_twist": 6})
WALKING = FAMILY_NAMES.index("walking")
GAIT_RAD_PER_FRAME = 0.6  # ~1 stride/s at 10 frames/s
WALK_MM_PER_FRAME = 120.0  # ~1.2 m/s at 10 frames/s

# Left/right mirror: swap l_/r_ params; negate the asymmetric trunk and head angles.
_MIRROR_PERM = np.array([PARAM[n.replace("l_", "#").replace("r_", "l_").replace("#", "r_")]
                         if n[:2] in ("l_", "r_") else PARAM[n] for n in POSE_PARAMS])
_MIRROR_SIGN = np.array([-1.0 if n in ("torso_roll", "torso_twist", "head_yaw") else 1.0
                         for n in POSE_PARAMS])


def draw_poses(family: np.ndarray, u: np.ndarray, mirror: np.ndarray, widen: float = 1.0) -> np.ndarray:
    """Draw one pose per row from its family (not yet clamped).

    Args:
        family: [B] family indices into ``FAMILIES``.
        u: [B, P] uniforms.
        mirror: [B] bool, swap left and right.
        widen: Multiplies every spread (the wild world uses > 1 for more variety).

    Returns:
        [B, P] joint angles, degrees.
    """
    pose = _CENTRES[family] + widen * _SPREADS[family] * (2.0 * u - 1.0)
    return np.where(mirror[:, None], pose[:, _MIRROR_PERM] * _MIRROR_SIGN, pose)


def clip_poses(family: np.ndarray, start: np.ndarray, end: np.ndarray, phase0: np.ndarray,
               frame: np.ndarray, length: int) -> np.ndarray:
    """Joint angles of frame ``frame`` of clips that blend ``start`` into ``end``.

    Args:
        family: [B] family index of each clip.
        start: [B, P] first-frame draw, degrees.
        end: [B, P] last-frame draw, degrees.
        phase0: [B] gait phase at frame 0, radians.
        frame: [B] frame index in 0..length-1.
        length: Frames per clip (1 gives the start pose plus the gait at phase0).

    Returns:
        [B, P] clamped joint angles, degrees.
    """
    s = 0.5 - 0.5 * np.cos(np.pi * frame / max(length - 1, 1))  # cosine ease 0 -> 1
    pose = start + (end - start) * s[:, None]
    phase = (phase0 + GAIT_RAD_PER_FRAME * frame)[:, None]
    gait = _GAIT_SIN * np.sin(phase) + _GAIT_COS * np.cos(phase)
    pose = pose + np.where((family == WALKING)[:, None], gait, 0.0)
    hang = _HANG[family]
    for name in ("l_sh_flex", "r_sh_flex"):
        pose[:, PARAM[name]] += np.where(hang, pose[:, PARAM["torso_pitch"]], 0.0)
    return clip_to_limits(pose)


def walk_offset(family: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """[B] forward travel of the pelvis since frame 0 (walking clips only), mm."""
    return np.where(family == WALKING, WALK_MM_PER_FRAME * frame, 0.0)


assert _CENTRES.shape == (len(FAMILIES), P)
