"""Biovision Hierarchy (BVH) motion files: parse the skeleton and motion, and run forward kinematics.

A BVH file has a ``HIERARCHY`` section (nested ``ROOT``/``JOINT``/``End Site`` blocks, each with an
``OFFSET`` from its parent and, for joints, a ``CHANNELS`` list) and a ``MOTION`` section
(``Frames:``, ``Frame Time:``, then one line of channel values per frame, in the order the
channels appear in the hierarchy). Conventions (Biovision's, as the CMU conversions use them):

* Rotation channels are Euler angles in degrees, applied in the order listed: ``Zrotation
  Xrotation Yrotation`` means ``R = Rz(z) @ Rx(x) @ Ry(y)`` acting on column vectors of the joint's
  frame, so that ``v_parent = R @ v_joint``. Each joint has its own order.
* Position channels (usually the root's only) translate the joint in its parent's frame; they are
  added to the joint's ``OFFSET``.
* A joint's position is ``parent_position + parent_rotation @ (offset + translation)`` and its
  rotation ``parent_rotation @ R``. An ``End Site`` is a joint without channels, named
  ``<parent>_end`` here.

Positions are returned in the file's units and axes (usually y up); converters scale and turn them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROTATIONS = {"Xrotation": 0, "Yrotation": 1, "Zrotation": 2}
POSITIONS = {"Xposition": 0, "Yposition": 1, "Zposition": 2}


class BvhError(ValueError):
    """A malformed BVH file; the message names the file and the line."""


@dataclass(frozen=True)
class Bvh:
    """A parsed BVH file.

    Attributes:
        joints: Joint names in file order (End Sites as ``<parent>_end``).
        parents: Parent index per joint (-1 for the root).
        offsets: [J, 3] offset from the parent, file units.
        channels: Per joint, its channel names in file order (empty for End Sites).
        frame_time: Seconds per frame.
        motion: [F, C] channel values, C = total channel count.
    """

    joints: tuple[str, ...]
    parents: tuple[int, ...]
    offsets: np.ndarray
    channels: tuple[tuple[str, ...], ...]
    frame_time: float
    motion: np.ndarray

    @property
    def num_frames(self) -> int:
        return len(self.motion)

    def index(self, joint: str) -> int:
        """Index of ``joint``; ``ValueError`` naming the joints of the file if absent."""
        if joint not in self.joints:
            raise ValueError(f"joint {joint!r} is not in this BVH file; its joints are {list(self.joints)}")
        return self.joints.index(joint)


def read_bvh(path: str | os.PathLike) -> Bvh:
    """Parse a BVH file (see the module docstring); ``BvhError`` names the file and line on bad input."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such BVH file")
    return parse_bvh(path.read_text(encoding="utf-8", errors="replace"), where=str(path))


def parse_bvh(text: str, where: str = "<bvh>") -> Bvh:
    """Parse BVH text; ``where`` names the source in error messages."""
    lines = [(i + 1, line.split()) for i, line in enumerate(text.splitlines())]
    lines = [(n, t) for n, t in lines if t]
    if not lines or lines[0][1][0].upper() != "HIERARCHY":
        raise BvhError(f"{where}: expected 'HIERARCHY' on the first line")
    builder = _Hierarchy(where)
    pos = builder.parse(lines, 1)
    return _motion(builder, lines, pos, where)


class _Hierarchy:
    """Collects joints while walking the nested blocks."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.joints: list[str] = []
        self.parents: list[int] = []
        self.offsets: list[list[float]] = []
        self.channels: list[tuple[str, ...]] = []

    def parse(self, lines: list[tuple[int, list[str]]], pos: int) -> int:
        stack: list[int] = []
        while pos < len(lines):
            n, tokens = lines[pos]
            key = tokens[0].upper()
            if key in ("ROOT", "JOINT") or (key == "END" and len(tokens) > 1 and tokens[1].upper() == "SITE"):
                if key == "ROOT" and stack:
                    raise BvhError(f"{self.where}:{n}: ROOT inside another joint")
                name = " ".join(tokens[1:]) if key != "END" else f"{self.joints[stack[-1]]}_end"
                if key != "ROOT" and not stack:
                    raise BvhError(f"{self.where}:{n}: {tokens[0]} outside a ROOT block")
                self.joints.append(name)
                self.parents.append(stack[-1] if stack else -1)
                self.offsets.append([0.0, 0.0, 0.0])
                self.channels.append(())
                stack.append(-len(self.joints))  # negative until its "{" is seen
            elif key == "{":
                if not stack or stack[-1] >= 0:
                    raise BvhError(f"{self.where}:{n}: unexpected '{{'")
                stack[-1] = -stack[-1] - 1
            elif key == "}":
                if not stack:
                    raise BvhError(f"{self.where}:{n}: unbalanced '}}'")
                stack.pop()
            elif key == "OFFSET":
                self.offsets[self._open(stack, n)] = self._floats(tokens[1:], 3, n, "OFFSET")
            elif key == "CHANNELS":
                self.channels[self._open(stack, n)] = self._channels(tokens, n)
            elif key == "MOTION":
                if stack:
                    raise BvhError(f"{self.where}:{n}: MOTION before the hierarchy's blocks are closed")
                return pos
            else:
                raise BvhError(f"{self.where}:{n}: unexpected {tokens[0]!r} in the hierarchy")
            pos += 1
        raise BvhError(f"{self.where}: no MOTION section")

    def _open(self, stack: list[int], n: int) -> int:
        if not stack or stack[-1] < 0:
            raise BvhError(f"{self.where}:{n}: OFFSET/CHANNELS outside a joint block")
        return stack[-1]

    def _floats(self, tokens: list[str], count: int, n: int, what: str) -> list[float]:
        try:
            values = [float(t) for t in tokens]
        except ValueError as err:
            raise BvhError(f"{self.where}:{n}: {what} values must be numbers ({err})") from err
        if len(values) != count:
            raise BvhError(f"{self.where}:{n}: {what} needs {count} values, got {len(values)}")
        return values

    def _channels(self, tokens: list[str], n: int) -> tuple[str, ...]:
        try:
            count = int(tokens[1])
        except (IndexError, ValueError) as err:
            raise BvhError(f"{self.where}:{n}: CHANNELS needs a count") from err
        names = tuple(tokens[2:])
        if len(names) != count:
            raise BvhError(f"{self.where}:{n}: CHANNELS says {count} but lists {len(names)}")
        unknown = [c for c in names if c not in ROTATIONS and c not in POSITIONS]
        if unknown:
            raise BvhError(f"{self.where}:{n}: unknown channel(s) {unknown}; allowed: "
                           f"{sorted(ROTATIONS) + sorted(POSITIONS)}")
        return names


def _motion(h: _Hierarchy, lines: list[tuple[int, list[str]]], pos: int, where: str) -> Bvh:
    header = {" ".join(t[:-1]).rstrip(":").lower(): (n, t[-1]) for n, t in lines[pos + 1:pos + 3]}
    if set(header) != {"frames", "frame time"}:
        raise BvhError(f"{where}: expected 'Frames:' and 'Frame Time:' after MOTION")
    try:
        frames, frame_time = int(header["frames"][1]), float(header["frame time"][1])
    except ValueError as err:
        raise BvhError(f"{where}:{header['frames'][0]}: bad Frames/Frame Time ({err})") from err
    width = sum(len(c) for c in h.channels)
    rows = lines[pos + 3:]
    if len(rows) < frames:
        raise BvhError(f"{where}: 'Frames: {frames}' but only {len(rows)} frame lines")
    motion = np.empty((frames, width))
    for i, (n, tokens) in enumerate(rows[:frames]):
        if len(tokens) != width:
            raise BvhError(f"{where}:{n}: frame has {len(tokens)} values, the hierarchy has {width} channels")
        try:
            motion[i] = [float(t) for t in tokens]
        except ValueError as err:
            raise BvhError(f"{where}:{n}: frame values must be numbers ({err})") from err
    return Bvh(tuple(h.joints), tuple(h.parents), np.asarray(h.offsets, dtype=np.float64),
               tuple(h.channels), frame_time, motion)


def euler_matrix(axes: tuple[int, ...], degrees: np.ndarray) -> np.ndarray:
    """[F, 3, 3] ``R_axes[0] @ R_axes[1] @ ...`` for [F, len(axes)] angles in degrees (0=x, 1=y, 2=z)."""
    out = np.broadcast_to(np.eye(3), (len(degrees), 3, 3)).copy()
    for k, axis in enumerate(axes):
        out = out @ _axis_rotation(axis, np.deg2rad(degrees[:, k]))
    return out


def _axis_rotation(axis: int, rad: np.ndarray) -> np.ndarray:
    c, s = np.cos(rad), np.sin(rad)
    r = np.broadcast_to(np.eye(3), (len(rad), 3, 3)).copy()
    i, j = [(1, 2), (2, 0), (0, 1)][axis]  # the plane the axis rotates
    r[:, i, i], r[:, i, j], r[:, j, i], r[:, j, j] = c, -s, s, c
    return r


def forward_kinematics(bvh: Bvh) -> np.ndarray:
    """[F, J, 3] world positions of every joint (End Sites included) per frame, file units."""
    frames, joints = bvh.num_frames, len(bvh.joints)
    positions = np.zeros((frames, joints, 3))
    rotations = np.zeros((frames, joints, 3, 3))
    column = 0
    for j, (parent, channels) in enumerate(zip(bvh.parents, bvh.channels)):
        values = bvh.motion[:, column:column + len(channels)]
        column += len(channels)
        translation = np.broadcast_to(bvh.offsets[j], (frames, 3)).copy()
        for k, name in enumerate(channels):
            if name in POSITIONS:
                translation[:, POSITIONS[name]] += values[:, k]
        rot_cols = [k for k, name in enumerate(channels) if name in ROTATIONS]
        local = euler_matrix(tuple(ROTATIONS[channels[k]] for k in rot_cols), values[:, rot_cols])
        if parent < 0:
            positions[:, j], rotations[:, j] = translation, local
        else:
            step = np.einsum("fij,fj->fi", rotations[:, parent], translation)
            positions[:, j] = positions[:, parent] + step
            rotations[:, j] = rotations[:, parent] @ local
    return positions
