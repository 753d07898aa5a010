"""The synthetic body: per-subject proportions, joint-angle limits and forward kinematics.

Bodies are posed in a *body frame* with the pelvis at the origin and axes (left, up, forward):
x = the person's left, y = up, z = the direction the pelvis faces (right-handed). Lengths are in
mm. A pose is a vector of ``len(POSE_PARAMS)`` joint angles in degrees; ``forward_kinematics``
turns poses and body shapes into the 17 ``CANONICAL`` joints plus the extra points the painter
needs (head centre, hands, toes, face marks).

Segment proportions are fractions of standing height after the anthropometric tables of
Drillis & Contini (1966, as tabulated in Winter, *Biomechanics and Motor Control of Human
Movement*): hip joint ≈ 0.53 H, shoulder ≈ 0.82 H, knee ≈ 0.29 H, ankle ≈ 0.04 H.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

# --- joint angles and their limits (degrees) ----------------------------------------------------

POSE_PARAMS = (
    "torso_pitch", "torso_roll", "torso_twist", "head_pitch", "head_yaw",
    "l_hip_flex", "l_hip_abd", "l_knee", "r_hip_flex", "r_hip_abd", "r_knee",
    "l_sh_flex", "l_sh_abd", "l_sh_rot", "l_elbow", "r_sh_flex", "r_sh_abd", "r_sh_rot", "r_elbow",
)
P = len(POSE_PARAMS)
PARAM = {name: i for i, name in enumerate(POSE_PARAMS)}

# Positive flexion is forward, positive abduction is outward, knee/elbow flexion bends the limb.
_LIMITS = {
    "torso_pitch": (-20, 95), "torso_roll": (-35, 35), "torso_twist": (-50, 50),
    "head_pitch": (-40, 50), "head_yaw": (-70, 70),
    "hip_flex": (-35, 130), "hip_abd": (-15, 50), "knee": (0, 150),
    "sh_flex": (-60, 180), "sh_abd": (-10, 180), "sh_rot": (-90, 90), "elbow": (0, 150),
}
LIMITS_DEG = np.array([_LIMITS[name[2:] if name[:2] in ("l_", "r_") else name] for name in POSE_PARAMS],
                      dtype=np.float64)  # [P, 2] (low, high)

# --- body shape ---------------------------------------------------------------------------------

# Lengths as fractions of standing height H.
_LENGTHS = {
    "hip_half": 0.065, "thigh": 0.245, "shin": 0.246, "foot": 0.12, "spine": 0.13, "chest": 0.155,
    "shoulder_half": 0.105, "shoulder_drop": 0.02, "upper_arm": 0.17, "forearm": 0.15, "hand": 0.09,
    "head_radius": 0.065, "head_up": 0.115,
}
LENGTH_NAMES = tuple(_LENGTHS)
# Body radii as fractions of H (before the per-subject build factor).
_RADII = {
    "thigh_top": 0.05, "knee": 0.034, "ankle": 0.022, "foot": 0.02, "shoulder": 0.03, "elbow": 0.023,
    "wrist": 0.018, "hand": 0.024, "pelvis": 0.09, "waist": 0.082, "chest": 0.095, "neck": 0.03,
    "hip_bar": 0.065, "shoulder_bar": 0.045,
}
RADIUS_NAMES = tuple(_RADII)
SHAPE_UNIFORMS = 2 + len(_LENGTHS)  # uniforms consumed by ``body_shape`` per body


@dataclass(frozen=True)
class BodyShape:
    """Sizes of B bodies.

    Attributes:
        height: [B] standing height, mm (1500–1900).
        lengths: [B, len(LENGTH_NAMES)] segment lengths, mm.
        radii: [B, len(RADIUS_NAMES)] body-part radii, mm.
    """

    height: np.ndarray
    lengths: np.ndarray
    radii: np.ndarray

    def length(self, name: str) -> np.ndarray:
        """[B] one named segment length, mm."""
        return self.lengths[:, LENGTH_NAMES.index(name)]

    def radius(self, name: str) -> np.ndarray:
        """[B] one named radius, mm."""
        return self.radii[:, RADIUS_NAMES.index(name)]


def body_shape(u: np.ndarray) -> BodyShape:
    """Body sizes from uniforms: height 1500–1900 mm, each proportion within about ±6 %.

    Args:
        u: [B, SHAPE_UNIFORMS] uniforms in [0, 1).

    Returns:
        The shapes of the B bodies.
    """
    height = 1500.0 + 400.0 * u[:, 0]
    build = 0.85 + 0.4 * u[:, 1]  # slim .. broad: scales radii only
    jitter = 1.0 + 0.12 * (u[:, 2:2 + len(_LENGTHS)] - 0.5)
    lengths = height[:, None] * np.array(list(_LENGTHS.values())) * jitter
    radii = (height * build)[:, None] * np.array(list(_RADII.values()))
    return BodyShape(height=height, lengths=lengths, radii=radii)


def subject_uniforms(subject: str, n: int) -> np.ndarray:
    """[n] uniforms fixed by a subject id (crc32 of the id seeds them): same id, same body and look."""
    return np.random.default_rng(zlib.crc32(subject.encode())).random(n)


def clip_to_limits(pose_deg: np.ndarray) -> np.ndarray:
    """Clamp [..., P] poses (degrees) to ``LIMITS_DEG``."""
    return np.clip(pose_deg, LIMITS_DEG[:, 0], LIMITS_DEG[:, 1])


# --- forward kinematics ---------------------------------------------------------------------------

# Extra (non-joint) points returned after the 17 joints, in this order.
EXTRA_POINTS = ("head_center", "hair_center", "l_eye", "r_eye", "nose_tip", "l_hand", "r_hand",
                "l_toe", "r_toe")
NUM_POINTS = 17 + len(EXTRA_POINTS)


@dataclass(frozen=True)
class PosedBody:
    """B posed bodies in the body frame (mm).

    Attributes:
        points: [B, NUM_POINTS, 3] the 17 canonical joints then ``EXTRA_POINTS``.
        torso_axes: [B, 3, 3] columns = the chest's (left, up, forward) unit vectors; the pelvis
            axes are the body frame itself.
    """

    points: np.ndarray
    torso_axes: np.ndarray


def forward_kinematics(pose_deg: np.ndarray, shape: BodyShape) -> PosedBody:
    """Pose B bodies.

    Args:
        pose_deg: [B, P] joint angles, degrees (clamped to ``LIMITS_DEG`` by the caller).
        shape: The B body shapes.

    Returns:
        Joints and extra points in the body frame, mm.
    """
    a = np.deg2rad(pose_deg)
    pts = np.zeros((len(a), NUM_POINTS, 3))
    _legs(a, shape, pts)
    torso = _torso(a, shape, pts)
    _head(a, shape, torso, pts)
    _arms(a, shape, torso, pts)
    return PosedBody(points=pts, torso_axes=torso)


def _rot_x(t: np.ndarray) -> np.ndarray:
    c, s, z, o = np.cos(t), np.sin(t), np.zeros_like(t), np.ones_like(t)
    return np.stack([o, z, z, z, c, -s, z, s, c], -1).reshape(-1, 3, 3)


def yaw_rotation(t: np.ndarray) -> np.ndarray:
    """[B, 3, 3] rotations about the vertical (y) axis by t [B] radians; z turns towards x."""
    return _rot_y(t)


def _rot_y(t: np.ndarray) -> np.ndarray:
    c, s, z, o = np.cos(t), np.sin(t), np.zeros_like(t), np.ones_like(t)
    return np.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(-1, 3, 3)


def _rot_z(t: np.ndarray) -> np.ndarray:
    c, s, z, o = np.cos(t), np.sin(t), np.zeros_like(t), np.ones_like(t)
    return np.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(-1, 3, 3)


def _frame(twist: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """[B, 3, 3] axes after a twist about up, a forward pitch about left and a side roll."""
    return _rot_y(twist) @ _rot_x(pitch) @ _rot_z(roll)


def _legs(a: np.ndarray, shape: BodyShape, pts: np.ndarray) -> None:
    left, up, fwd = np.eye(3)
    for side, hip, knee, ankle, toe, k in ((1.0, 4, 5, 6, 17 + 7, 5), (-1.0, 1, 2, 3, 17 + 8, 8)):
        flex, abd, bend = a[:, k, None], a[:, k + 1, None], a[:, k + 2, None]
        thigh = np.cos(abd) * (-np.cos(flex) * up + np.sin(flex) * fwd) + np.sin(abd) * side * left
        front = np.cos(flex) * fwd + np.sin(flex) * up  # perpendicular to the thigh, forward
        shin = np.cos(bend) * thigh - np.sin(bend) * front
        foot = np.sin(bend) * thigh + np.cos(bend) * front
        pts[:, hip] = side * shape.length("hip_half")[:, None] * left
        pts[:, knee] = pts[:, hip] + shape.length("thigh")[:, None] * thigh
        pts[:, ankle] = pts[:, knee] + shape.length("shin")[:, None] * shin
        pts[:, toe] = pts[:, ankle] + shape.length("foot")[:, None] * foot


def _torso(a: np.ndarray, shape: BodyShape, pts: np.ndarray) -> np.ndarray:
    pitch, roll, twist = a[:, PARAM["torso_pitch"]], a[:, PARAM["torso_roll"]], a[:, PARAM["torso_twist"]]
    lower = _frame(twist / 2, pitch / 2, roll / 2)  # the lower back bends half as much
    chest = _frame(twist, pitch, roll)
    pts[:, 7] = shape.length("spine")[:, None] * lower[:, :, 1]
    pts[:, 8] = pts[:, 7] + shape.length("chest")[:, None] * chest[:, :, 1]
    return chest


def _head(a: np.ndarray, shape: BodyShape, chest: np.ndarray, pts: np.ndarray) -> None:
    head = chest @ _rot_y(a[:, PARAM["head_yaw"]]) @ _rot_x(a[:, PARAM["head_pitch"]])
    r = shape.length("head_radius")[:, None]

    def at(x: float, y: float, z: float) -> np.ndarray:  # a point in head coordinates, head radii
        return centre + r * (head @ np.array([x, y, z]))

    centre = pts[:, 8] + shape.length("head_up")[:, None] * head[:, :, 1] + 0.1 * r * head[:, :, 2]
    extra = {name: 17 + i for i, name in enumerate(EXTRA_POINTS)}
    pts[:, extra["head_center"]] = centre
    pts[:, 10] = at(0.0, 0.95, 0.0)  # head_top: just inside the skull's top
    pts[:, 9] = at(0.0, -0.3, 0.55)  # H36M "nose" (neck/nose) sits low in the face
    pts[:, extra["hair_center"]] = at(0.0, 0.2, -0.2)
    pts[:, extra["l_eye"]] = at(0.36, 0.15, 0.87)
    pts[:, extra["r_eye"]] = at(-0.36, 0.15, 0.87)
    pts[:, extra["nose_tip"]] = at(0.0, -0.1, 0.95)


def _arms(a: np.ndarray, shape: BodyShape, chest: np.ndarray, pts: np.ndarray) -> None:
    left, up, fwd = chest[:, :, 0], chest[:, :, 1], chest[:, :, 2]
    for side, sh, el, wr, hand, k in ((1.0, 11, 12, 13, 17 + 5, 11), (-1.0, 14, 15, 16, 17 + 6, 15)):
        flex, abd, rot, bend = (a[:, k + i, None] for i in range(4))
        upper = np.cos(abd) * (-np.cos(flex) * up + np.sin(flex) * fwd) + np.sin(abd) * side * left
        front = np.cos(flex) * fwd + np.sin(flex) * up  # perpendicular to the upper arm
        inward = side * np.cross(upper, front)
        bend_dir = np.cos(rot) * front + np.sin(rot) * inward
        forearm = np.cos(bend) * upper + np.sin(bend) * bend_dir
        pts[:, sh] = pts[:, 8] + side * shape.length("shoulder_half")[:, None] * left \
            - shape.length("shoulder_drop")[:, None] * up
        pts[:, el] = pts[:, sh] + shape.length("upper_arm")[:, None] * upper
        pts[:, wr] = pts[:, el] + shape.length("forearm")[:, None] * forearm
        pts[:, hand] = pts[:, wr] + 0.5 * shape.length("hand")[:, None] * forearm

