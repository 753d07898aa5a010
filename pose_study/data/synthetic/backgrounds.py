"""Backgrounds, clutter and occluders, painted for B images at once (numpy, no pixel loops).

Every function takes uniforms ``u`` [B, n] (n given by the ``*_UNIFORMS`` constants) so that the
caller controls the random stream, and returns float32 RGB in 0-255 of shape [B, S, S, 3].
"""

from __future__ import annotations

import numpy as np

GRADIENT_UNIFORMS = 7
TEXTURE_UNIFORMS = 4 * 4 + 9 * 9
SHAPE_UNIFORMS = 12  # per clutter shape or occluder
OUTDOOR_UNIFORMS = 8


def _colour(u: np.ndarray) -> np.ndarray:
    """[B, 3] RGB (0-255) from [B, 3] uniforms."""
    return (30.0 + 210.0 * u).astype(np.float32)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [0, 1]: ([1, S, 1] rows, [1, 1, S] columns)."""
    c = ((np.arange(size, dtype=np.float32) + 0.5) / size)
    return c[None, :, None], c[None, None, :]


def gradient(u: np.ndarray, size: int) -> np.ndarray:
    """Linear two-colour gradient in a random direction. u: [B, GRADIENT_UNIFORMS]."""
    y, x = _grid(size)
    angle = (2 * np.pi * u[:, 6]).astype(np.float32)[:, None, None]
    g = 0.5 + (x - 0.5) * np.cos(angle) + (y - 0.5) * np.sin(angle)
    c0, c1 = _colour(u[:, 0:3]), _colour(u[:, 3:6])
    return c0[:, None, None] + np.clip(g, 0, 1)[..., None] * (c1 - c0)[:, None, None]


def _upsample_matrix(cells: int, size: int) -> np.ndarray:
    """[S, cells] bilinear interpolation weights from a coarse grid to S pixels."""
    pos = (np.arange(size) + 0.5) / size * (cells - 1)
    lo = np.minimum(np.floor(pos).astype(int), cells - 2)
    frac = pos - lo
    m = np.zeros((size, cells), np.float32)
    m[np.arange(size), lo] = 1 - frac
    m[np.arange(size), lo + 1] = frac
    return m


def value_noise(u: np.ndarray, size: int) -> np.ndarray:
    """[B, S, S] smooth noise in [0, 1] (4x4 and 9x9 octaves). u: [B, TEXTURE_UNIFORMS]."""
    out = np.zeros((len(u), size, size), np.float32)
    start = 0
    for cells, weight in ((4, 0.6), (9, 0.4)):
        grid = u[:, start:start + cells * cells].reshape(-1, cells, cells).astype(np.float32)
        m = _upsample_matrix(cells, size)
        out += weight * (m @ grid @ m.T)  # stacked matmul: per image, independent of the batch
        start += cells * cells
    return out


def textured(base: np.ndarray, noise: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """Modulate [B, S, S, 3] colours by [B, S, S] noise with per-image strength [B]."""
    factor = 1.0 + amount[:, None, None].astype(np.float32) * (noise - 0.5)
    return base * factor[..., None]


def shape_mask(u: np.ndarray, size: int, scale: tuple[float, float], centre: np.ndarray | None = None
               ) -> np.ndarray:
    """[B, S, S] bool masks of rotated ellipses, boxes or bars.

    Args:
        u: [B, SHAPE_UNIFORMS] uniforms (columns 6-9 are used here; the others are the caller's).
        size: Image side, px.
        scale: (min, max) half-size as a fraction of the image side.
        centre: [B, 2] shape centres in px (None: anywhere in the image).
    """
    y, x = (v * size for v in _grid(size))
    if centre is None:
        centre = u[:, 0:2] * size
    half = size * (scale[0] + (scale[1] - scale[0]) * u[:, 6:8])
    kind = (u[:, 8] * 3).astype(int)  # 0 ellipse, 1 box, 2 bar
    half[:, 1] = np.where(kind == 2, half[:, 1] * 0.25, half[:, 1])
    angle = np.pi * u[:, 9]
    c, s = np.cos(angle), np.sin(angle)
    dx = (x - centre[:, 0, None, None]).astype(np.float32)  # [B, 1, S]
    dy = (y - centre[:, 1, None, None]).astype(np.float32)  # [B, S, 1]

    def axis(cx: np.ndarray, cy: np.ndarray, h: np.ndarray) -> np.ndarray:  # rotated, scaled coordinate
        wx, wy = ((v / h).astype(np.float32)[:, None, None] for v in (cx, cy))
        return dx * wx + dy * wy

    p2 = np.square(axis(c, s, half[:, 0]))
    q2 = np.square(axis(-s, c, half[:, 1]))
    metric = np.where((kind == 0)[:, None, None], p2 + q2, np.maximum(p2, q2))  # L2 ellipse, Linf box
    return metric < 1.0


def clutter(image: np.ndarray, u: np.ndarray, count: int, active: float, texture: np.ndarray) -> np.ndarray:
    """Paint up to ``count`` flat, lightly textured shapes over ``image`` [B, S, S, 3].

    Args:
        image: Background so far.
        u: [B, count * SHAPE_UNIFORMS] uniforms.
        count: Number of shape slots (later slots paint over earlier ones).
        active: Probability that a slot holds a shape.
        texture: [B, S, S] noise in [0, 1] that modulates the shapes' colours.
    """
    n, size = image.shape[:2]
    label = np.zeros((n, size, size), np.int8)
    colours = np.zeros((n, count + 1, 3), np.float32)
    for k in range(count):
        uk = u[:, k * SHAPE_UNIFORMS:(k + 1) * SHAPE_UNIFORMS]
        on = (uk[:, 5] < active)[:, None, None]
        label = np.where(shape_mask(uk, size, (0.05, 0.35)) & on, np.int8(k + 1), label)
        colours[:, k + 1] = _colour(np.stack([uk[:, 2], uk[:, 3], (uk[:, 4] + uk[:, 2]) % 1.0], -1))
    shaded = colours[np.arange(n)[:, None, None], label] * (0.8 + 0.3 * texture)[..., None]
    return np.where((label > 0)[..., None], shaded, image)


def studio(wall: np.ndarray, floor: np.ndarray, size: int) -> np.ndarray:
    """Plain studio: vertical blend from wall [B, 3] to floor [B, 3] colours (RGB 0-255)."""
    y, _ = _grid(size)
    t = np.clip((y - 0.45) * 3.0, 0, 1)[..., None]  # [1, S, 1, 1]
    return wall[:, None, None].astype(np.float32) * (1 - t) + floor[:, None, None].astype(np.float32) * t \
        + np.zeros((1, 1, size, 1), np.float32)


_GROUNDS = np.array([[70, 110, 50], [150, 130, 95], [105, 105, 110], [200, 200, 205], [120, 90, 60]],
                    np.float32)  # grass, sand, asphalt, snow, soil


def outdoor(u: np.ndarray, noise: np.ndarray, horizon: np.ndarray, size: int) -> np.ndarray:
    """Sky over textured ground, split at the horizon row.

    Args:
        u: [B, OUTDOOR_UNIFORMS] uniforms.
        noise: [B, S, S] value noise for the ground texture.
        horizon: [B] horizon row in px (may lie outside the image).
        size: Image side, px.
    """
    y = np.arange(size, dtype=np.float32)[None, :, None]
    h = horizon.astype(np.float32)[:, None, None]
    top = np.stack([60 + 60 * u[:, 0], 110 + 60 * u[:, 0], 200 + 50 * u[:, 1]], -1).astype(np.float32)
    low = np.full_like(top, 225.0)
    t = np.clip((h - y) / (0.6 * size), 0, 1)[..., None]  # 0 at the horizon, 1 high up
    sky = low[:, None, None] * (1 - t) + top[:, None, None] * t
    ground_colour = _GROUNDS[(u[:, 2] * len(_GROUNDS)).astype(int)] * (0.8 + 0.4 * u[:, 3:4])
    ground = ground_colour[:, None, None].astype(np.float32) * (0.6 + 0.8 * noise[..., None])
    return np.where((y >= h)[..., None], ground, sky + np.zeros((1, 1, size, 1), np.float32))


def occluders(image: np.ndarray, u: np.ndarray, anchors: np.ndarray, count: int, active: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """Paint boxes and bars in front of the person, each anchored near a joint.

    Args:
        image: [B, S, S, 3] the rendered image so far.
        u: [B, count * SHAPE_UNIFORMS] uniforms.
        anchors: [B, K, 2] joint positions, px; slot k picks a joint from its uniforms.
        count: Number of occluder slots (the first is always present).
        active: Probability that each further slot holds an occluder.

    Returns:
        (image with occluders, [B, S, S] bool occluder mask).
    """
    n, size = image.shape[:2]
    covered = np.zeros((n, size, size), bool)
    for k in range(count):
        uk = u[:, k * SHAPE_UNIFORMS:(k + 1) * SHAPE_UNIFORMS]
        joint = (uk[:, 0] * anchors.shape[1]).astype(int)
        centre = anchors[np.arange(n), joint] + (uk[:, 10:12] - 0.5) * 0.2 * size
        on = (uk[:, 5] < active) | (k == 0)
        mask = shape_mask(uk, size, (0.08, 0.25), centre=centre) & on[:, None, None]
        colour = _colour(uk[:, 2:5])
        stripes = 0.85 + 0.15 * np.sign(np.sin(np.arange(size, dtype=np.float32) * (0.5 + uk[:, 3, None])))
        image = np.where(mask[..., None], colour[:, None, None] * stripes[:, None, :, None], image)
        covered |= mask
    return image, covered
