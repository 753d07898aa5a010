"""The painter: a posed body as depth-sorted, shaded capsules over a background, B images at once.

Every body part is a tapered capsule (a sphere when both ends coincide) between two 3D points,
projected with the crop intrinsics; its pixel radius is the mm radius times ``f / z``. Each
capsule is rasterised only inside its bounding window (one window size per batch, placed per
image), as a z-buffer with a Lambert shade from the capsule's surface normal. A head sphere with
a hair sphere set behind it and two eyes on the front makes the facing direction visible: from
the front the face (skin) and eyes show, from the back the hair.

Colours come from a per-person palette (skin, hair, upper and lower clothing, shoes, sleeves).
Every body radius is at least one pixel, so each joint's own pixel is painted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pose_study.data.synthetic.body import EXTRA_POINTS, RADIUS_NAMES, BodyShape, PosedBody
from pose_study.skeletons import CANONICAL

POINT_NAMES = (*CANONICAL.joints, *EXTRA_POINTS, "belt", "chest_top")
POINT_INDEX = {name: i for i, name in enumerate(POINT_NAMES)}
SLOTS = ("skin", "hair", "upper", "lower", "shoes", "eyes", "forearm", "shin")
PALETTE_UNIFORMS = 14


@dataclass(frozen=True)
class Part:
    """One capsule: end points, radii (named size x factor, mm), colour slot, minimum radius (px)."""

    a: str
    b: str
    ra: tuple[str, float]
    rb: tuple[str, float]
    slot: str
    torso: bool = False
    min_px: float = 1.0


def _limbs(s: str) -> tuple[Part, ...]:
    return (
        Part(f"{s}_shoulder", f"{s}_elbow", ("shoulder", 1), ("elbow", 1), "upper"),
        Part(f"{s}_elbow", f"{s}_wrist", ("elbow", 1), ("wrist", 1), "forearm"),
        Part(f"{s}_wrist", f"{s}_hand", ("wrist", 1), ("hand", 1), "skin"),
        Part(f"{s}_hip", f"{s}_knee", ("thigh_top", 1), ("knee", 1), "lower"),
        Part(f"{s}_knee", f"{s}_ankle", ("knee", 1), ("ankle", 1), "shin"),
        Part(f"{s}_ankle", f"{s}_toe", ("foot", 1), ("foot", 1), "shoes"),
    )


PARTS = (
    Part("pelvis", "belt", ("pelvis", 1), ("waist", 1), "lower", torso=True),
    Part("belt", "chest_top", ("waist", 1), ("chest", 1), "upper", torso=True),
    Part("l_hip", "r_hip", ("hip_bar", 1), ("hip_bar", 1), "lower"),
    Part("l_shoulder", "r_shoulder", ("shoulder_bar", 1), ("shoulder_bar", 1), "upper"),
    Part("neck", "head_center", ("neck", 1), ("neck", 1), "skin"),
    Part("head_center", "head_center", ("head_radius", 1), ("head_radius", 1), "skin"),
    Part("hair_center", "hair_center", ("head_radius", 0.97), ("head_radius", 0.97), "hair"),
    # Thin cores from the head centre to the labelled head joints: hidden inside the head at
    # normal sizes, they keep those joints on painted pixels when the head is a few pixels wide.
    Part("head_center", "head_top", ("head_radius", 0.15), ("head_radius", 0.15), "skin"),
    Part("head_center", "nose", ("head_radius", 0.15), ("head_radius", 0.15), "skin"),
    Part("l_eye", "l_eye", ("head_radius", 0.17), ("head_radius", 0.17), "eyes", min_px=0.6),
    Part("r_eye", "r_eye", ("head_radius", 0.17), ("head_radius", 0.17), "eyes", min_px=0.6),
    *_limbs("l"), *_limbs("r"),
)
PART_START = np.array([POINT_INDEX[p.a] for p in PARTS])
PART_END = np.array([POINT_INDEX[p.b] for p in PARTS])
_SLOT = np.array([SLOTS.index(p.slot) for p in PARTS])
_MIN_PX = np.array([p.min_px for p in PARTS], dtype=np.float32)
_TORSO_DEPTH_RATIO = 0.65  # chest depth / chest width


def figure_points(posed: PosedBody, shape: BodyShape) -> np.ndarray:
    """[B, len(POINT_NAMES), 3] the posed points plus the torso capsule ends, body frame mm."""
    pts = posed.points
    belt = pts[:, 0] + 0.4 * (pts[:, 7] - pts[:, 0])
    # End the chest capsule below the neck so that its dome stops under the chin.
    chest_top = pts[:, 8] - 0.6 * shape.radius("chest")[:, None] * posed.torso_axes[:, :, 1]
    return np.concatenate([pts, belt[:, None], chest_top[:, None]], axis=1)


def part_radii(shape: BodyShape) -> np.ndarray:
    """[B, len(PARTS), 2] capsule radii at both ends, mm."""
    def size(name: str, factor: float) -> np.ndarray:
        value = shape.radius(name) if name in RADIUS_NAMES else shape.length(name)
        return factor * value

    return np.stack([np.stack([size(*p.ra), size(*p.rb)], -1) for p in PARTS], axis=1)


def torso_widths(points_cam: np.ndarray, torso_axes_cam: np.ndarray) -> np.ndarray:
    """[B, len(PARTS)] silhouette width factors: torso capsules are elliptic (wide, shallow).

    Args:
        points_cam: [B, len(POINT_NAMES), 3] camera frame, mm.
        torso_axes_cam: [B, 3, 3] chest (left, up, forward) columns in the camera frame.
    """
    out = np.ones((len(points_cam), len(PARTS)))
    for m, part in enumerate(PARTS):
        if not part.torso:
            continue
        a, b = points_cam[:, POINT_INDEX[part.a]], points_cam[:, POINT_INDEX[part.b]]
        across = np.cross(b - a, (a + b) / 2)  # perpendicular to the axis and the viewing ray
        across /= np.linalg.norm(across, axis=-1, keepdims=True) + 1e-9
        lat = np.einsum("bi,bi->b", torso_axes_cam[:, :, 0], across)
        dep = np.einsum("bi,bi->b", torso_axes_cam[:, :, 2], across)
        out[:, m] = np.sqrt(lat ** 2 + (_TORSO_DEPTH_RATIO * dep) ** 2)
    return out


@dataclass
class BodyLayer:
    """The rasterised body of B images of side S.

    Attributes:
        depth: [B, S, S] float32 camera z of the visible surface, mm (inf = no body).
        part: [B, S, S] int16 index into ``PARTS`` (-1 = no body).
        shade: [B, S, S] float32 Lambert shade in [0, 1].
    """

    depth: np.ndarray
    part: np.ndarray
    shade: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """[B, S, S] bool: body pixels."""
        return self.part >= 0


def paint_body(xy: np.ndarray, z: np.ndarray, radii_px: np.ndarray, focal: np.ndarray,
               light: np.ndarray, size: int) -> BodyLayer:
    """Rasterise every part of B bodies.

    Args:
        xy: [B, len(POINT_NAMES), 2] projected points, crop px.
        z: [B, len(POINT_NAMES)] point depths, mm (> 0).
        radii_px: [B, len(PARTS), 2] capsule end radii, crop px.
        focal: [B] crop focal length, px.
        light: [B, 3] unit vector towards the light, camera frame.
        size: Image side S, px.

    Returns:
        The body layer.
    """
    n = len(xy)
    zbuf = np.full(n * size * size, np.inf, np.float32)
    code = np.full(n * size * size, -1.0, np.float32)  # part index + shade (shade < 1)
    radii = np.maximum(radii_px, _MIN_PX[None, :, None]).astype(np.float32)
    xy, z, focal, light = (v.astype(np.float32) for v in (xy, z, focal, light))
    for m in range(len(PARTS)):
        a, b = xy[:, PART_START[m]], xy[:, PART_END[m]]
        ends = (a, b, z[:, PART_START[m]], z[:, PART_END[m]], radii[:, m])
        for rows in _groups(a, b, radii[:, m].max(axis=1)):
            _paint_part(m, rows, *(v[rows] for v in ends), focal[rows], light[rows], size, zbuf, code)
    part = np.floor(code).astype(np.int16)
    shade = np.where(part >= 0, code - part, 0.0).astype(np.float32)
    shape = (n, size, size)
    return BodyLayer(depth=zbuf.reshape(shape), part=part.reshape(shape), shade=shade.reshape(shape))


def _groups(a: np.ndarray, b: np.ndarray, rmax: np.ndarray, count: int = 8) -> list[np.ndarray]:
    """Image indices split into ``count`` groups of similar capsule window area.

    Each group gets its own window size, so a few large capsules do not inflate the window of the
    whole batch. Grouping changes only which pixels are visited, never a pixel's value.
    """
    extent = np.abs(b - a) + 2 * rmax[:, None] + 1
    return np.array_split(np.argsort(extent[:, 0] * extent[:, 1], kind="stable"), min(count, len(a)))


def _window(a: np.ndarray, b: np.ndarray, rmax: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-image pixel coordinates of a window that holds the capsule: ([B, h], [B, w]) int."""
    lo = np.clip(np.floor(np.minimum(a, b) - rmax[:, None]), 0, size - 1)
    hi = np.clip(np.ceil(np.maximum(a, b) + rmax[:, None]), 0, size - 1)
    extent = (hi - lo).max(axis=0).astype(int) + 1  # [2] (w, h): one window size for the group
    start = np.minimum(lo, size - extent).astype(int)
    xs = start[:, 0:1] + np.arange(extent[0])
    ys = start[:, 1:2] + np.arange(extent[1])
    return ys, xs


def _paint_part(m: int, rows: np.ndarray, a: np.ndarray, b: np.ndarray, za: np.ndarray, zb: np.ndarray,
                r: np.ndarray, focal: np.ndarray, light: np.ndarray, size: int, zbuf: np.ndarray,
                code: np.ndarray) -> None:
    """Z-buffer capsule ``m`` of the images ``rows`` into the flat buffers ``zbuf``/``code`` (in place).

    Args:
        m: Part index.
        rows: [G] image indices; the other arrays hold these images' values ([G, 2] ends in px,
            [G] depths in mm, [G, 2] radii in px, [G] focal in px, [G, 3] light).
    """
    ys, xs = _window(a, b, r.max(axis=1), size)
    ab = (b - a)[:, :, None, None]
    inv = 1.0 / (ab[:, 0] ** 2 + ab[:, 1] ** 2 + 1e-6)
    dx = (xs.astype(np.float32) - a[:, 0:1])[:, None, :]  # [G, 1, w]
    dy = (ys.astype(np.float32) - a[:, 1:2])[:, :, None]  # [G, h, 1]
    t = np.minimum(np.maximum(dx * (ab[:, 0] * inv) + dy * (ab[:, 1] * inv), 0.0), 1.0)
    cx = dx - t * ab[:, 0]
    cy = dy - t * ab[:, 1]
    rad = r[:, 0, None, None] + t * (r[:, 1] - r[:, 0])[:, None, None]
    h = rad * rad - cx * cx - cy * cy
    s = np.sqrt(np.maximum(h, 0.0))
    depth = (za[:, None, None] + t * (zb - za)[:, None, None]) * (1.0 - s / focal[:, None, None])
    depth = np.where(h > 0, depth, np.inf)
    lam = (cx * light[:, 0, None, None] + cy * light[:, 1, None, None] - s * light[:, 2, None, None]) / rad
    value = m + np.minimum(np.maximum(lam, 0.0), 0.999)
    flat = ((rows * size * size)[:, None, None] + ys[:, :, None] * size + xs[:, None, :]).ravel()
    current = zbuf[flat]
    closer = depth.ravel() < current
    zbuf[flat] = np.where(closer, depth.ravel(), current)
    code[flat] = np.where(closer, value.ravel(), code[flat])


# --- appearance -----------------------------------------------------------------------------------

_SKIN = np.array([[255, 224, 196], [241, 194, 160], [224, 172, 130], [198, 134, 94], [141, 85, 54],
                  [96, 58, 38]], np.float32)
_HAIR = np.array([[30, 24, 20], [60, 40, 25], [110, 75, 40], [200, 170, 110], [150, 150, 150],
                  [25, 25, 30], [180, 40, 40], [40, 60, 150]], np.float32)  # last two: caps


def palette(u: np.ndarray) -> np.ndarray:
    """[B, len(SLOTS), 3] RGB colours (0-255) of B people from uniforms [B, PALETTE_UNIFORMS]."""
    n = len(u)
    out = np.zeros((n, len(SLOTS), 3), np.float32)
    out[:, 0] = _SKIN[(u[:, 0] * len(_SKIN)).astype(int)]
    out[:, 1] = _HAIR[(u[:, 1] * len(_HAIR)).astype(int)]
    out[:, 2] = _cloth(u[:, 2:5])
    out[:, 3] = _cloth(u[:, 5:8]) * 0.8
    out[:, 4] = 40.0 + 120.0 * u[:, 8:9] ** 2
    out[:, 5] = 20.0
    out[:, 6] = np.where(u[:, 9:10] < 0.5, out[:, 2], out[:, 0])  # long or short sleeves
    out[:, 7] = np.where(u[:, 10:11] < 0.8, out[:, 3], out[:, 0])  # trousers or shorts
    return out


def _cloth(u: np.ndarray) -> np.ndarray:
    """[B, 3] clothing colours: a random hue, sometimes washed out or near black/white."""
    hue = u[:, 0:1] * 6.0  # HSV hue to RGB, the usual branch-free formula
    rgb = np.clip(np.abs((hue + np.array([0.0, 4.0, 2.0])) % 6.0 - 3.0) - 1.0, 0.0, 1.0)
    sat = np.where(u[:, 1:2] < 0.3, 0.15, 0.75)
    value = 40.0 + 200.0 * u[:, 2:3]
    return (value * (1.0 - sat + sat * rgb)).astype(np.float32)


def shade_body(layer: BodyLayer, colours: np.ndarray, ambient: np.ndarray) -> np.ndarray:
    """[B, S, S, 3] float32 body colours (0-255; background pixels are 0).

    Args:
        layer: The rasterised body.
        colours: [B, len(SLOTS), 3] palettes.
        ambient: [B] ambient light share in [0, 1].
    """
    per_part = colours[:, _SLOT]  # [B, len(PARTS), 3]
    index = np.maximum(layer.part, 0)
    rows = np.arange(len(index))[:, None, None]
    light = ambient[:, None, None] + (1.0 - ambient[:, None, None]) * layer.shade
    out = per_part[rows, index] * light[..., None].astype(np.float32)
    return np.where(layer.mask[..., None], out, 0.0).astype(np.float32)
