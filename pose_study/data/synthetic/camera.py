"""Pinhole cameras, projection and person-centred crops.

World frame: y up, mm, the floor is y = 0. Camera frame (as stored in ``joints_3d``): x right,
y down, z forward, mm. Pixels: x right, y down, pixel centres at integers (0-based).

Crop convention (``center``/``scale`` of the canonical format): a crop is the square of side
``scale`` source pixels centred on ``center`` in a notional source image taken with the source
intrinsics; it is resampled to ``crop_size`` pixels, so a source pixel position ``p`` maps to
``(p - center) * crop_size / scale + (crop_size - 1) / 2`` in the crop. ``crop_intrinsics``
applies exactly that map to K, so ``joints_2d ~ K_crop @ joints_3d``.
"""

from __future__ import annotations

import numpy as np

UP = np.array([0.0, 1.0, 0.0])


def look_at(position: np.ndarray, target: np.ndarray, roll: np.ndarray | None = None) -> np.ndarray:
    """World-to-camera rotations of cameras at ``position`` looking at ``target``.

    Args:
        position: [B, 3] camera centres, world mm.
        target: [B, 3] points on the optical axis, world mm.
        roll: [B] rotation about the optical axis, radians (None = level camera).

    Returns:
        [B, 3, 3] rotations R with rows (right, down, forward): ``x_cam = R @ (x_world - position)``.
    """
    fwd = _unit(target - position)
    right = _unit(np.cross(fwd, UP))
    down = np.cross(fwd, right)
    if roll is not None:
        c, s = np.cos(roll)[:, None], np.sin(roll)[:, None]
        right, down = c * right + s * down, c * down - s * right
    return np.stack([right, down, fwd], axis=1)


def orbit_position(target: np.ndarray, azimuth: np.ndarray, elevation: np.ndarray,
                   distance: np.ndarray) -> np.ndarray:
    """[B, 3] camera centres on a sphere around ``target`` (angles in radians, distance in mm)."""
    horizontal = np.stack([np.sin(azimuth), np.zeros_like(azimuth), np.cos(azimuth)], -1)
    return target + distance[:, None] * (np.cos(elevation)[:, None] * horizontal
                                         + np.sin(elevation)[:, None] * UP)


def to_camera(points: np.ndarray, rotation: np.ndarray, position: np.ndarray) -> np.ndarray:
    """[B, M, 3] world points (mm) in the camera frame (mm)."""
    return np.einsum("bij,bmj->bmi", rotation, points - position[:, None])


def intrinsics(focal: np.ndarray, principal: np.ndarray) -> np.ndarray:
    """[B, 3, 3] pinhole K from focal lengths [B] (px) and principal points [B, 2] (px)."""
    k = np.zeros((len(focal), 3, 3))
    k[:, 0, 0] = k[:, 1, 1] = focal
    k[:, :2, 2] = principal
    k[:, 2, 2] = 1.0
    return k


def project(k: np.ndarray, points: np.ndarray) -> np.ndarray:
    """[B, M, 2] pixel positions of camera-frame points [B, M, 3] (mm) under K [B, 3, 3]."""
    uvw = np.einsum("bij,bmj->bmi", k, points)
    return uvw[..., :2] / uvw[..., 2:3]


def crop_intrinsics(k_src: np.ndarray, center: np.ndarray, scale: np.ndarray, crop_size: int) -> np.ndarray:
    """[B, 3, 3] K of crops (see the module docstring for the crop convention).

    Args:
        k_src: [B, 3, 3] source intrinsics, source px.
        center: [B, 2] crop centres, source px.
        scale: [B] crop sides, source px.
        crop_size: Crop side, crop px.
    """
    s = crop_size / scale
    a = np.zeros_like(k_src)
    a[:, 0, 0] = a[:, 1, 1] = s
    a[:, :2, 2] = (crop_size - 1) / 2.0 - center * s[:, None]
    a[:, 2, 2] = 1.0
    return a @ k_src


def horizon_row(k: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """[B] image row of the horizon for level cameras (no roll), px; may lie outside the image."""
    fwd = rotation[:, 2]
    flat = _unit(fwd * np.array([1.0, 0.0, 1.0]))  # horizontal viewing direction, world
    cam = np.einsum("bij,bj->bi", rotation, flat)
    return k[:, 1, 1] * cam[:, 1] / cam[:, 2] + k[:, 1, 2]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)
