"""Square crops around a person: image resampling and the matching point / intrinsics transform.

Pixel convention (the canonical format's): pixel centres sit at integer coordinates, 0-based, so
pixel ``i`` covers ``[i - 0.5, i + 0.5]``. A crop of ``side`` source pixels centred on ``center`` is
resampled to ``size``×``size`` crop pixels; the source interval ``center ± side / 2`` maps onto
``[-0.5, size - 0.5]``, i.e.

    crop = (source - center) * size / side + (size - 1) / 2

Converters call :func:`box_from_points` (or a dataset's own box), then :func:`crop_image` for the
pixels and :func:`crop_matrix` for joints, head boxes and camera intrinsics. Regions outside the
source image are zero (black).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image


def crop_matrix(center: np.ndarray, side: float, size: int) -> np.ndarray:
    """Affine map from source pixels to crop pixels.

    Args:
        center: [2] crop centre (x, y) in source pixels.
        side: Crop side length in source pixels (> 0).
        size: Crop side length in crop pixels.

    Returns:
        [3, 3] homogeneous matrix ``A`` with ``crop = A @ [x, y, 1]``.
    """
    if not side > 0:
        raise ValueError(f"crop side must be positive, got {side}")
    s = size / side
    half = (size - 1) / 2
    return np.array([[s, 0.0, half - s * center[0]],
                     [0.0, s, half - s * center[1]],
                     [0.0, 0.0, 1.0]])


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a [3, 3] affine ``matrix`` to [..., 2] points (source px → crop px)."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:2, :2].T + matrix[:2, 2]


def crop_intrinsics(intrinsics: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Intrinsics [3, 3] in source px → the same camera's intrinsics in crop px (``A @ K``).

    Lens distortion acts on normalised camera coordinates, before ``K``, so distortion
    coefficients are unchanged by the crop.
    """
    return matrix @ np.asarray(intrinsics, dtype=np.float64)


def box_from_points(points: np.ndarray, valid: np.ndarray, margin: float) -> tuple[np.ndarray, float]:
    """Square box around the valid points: centre of their extent, side = margin × longer extent.

    Args:
        points: [J, 2] source pixels.
        valid: [J] bool.
        margin: Enlargement of the tight box (e.g. 1.25).

    Returns:
        (center [2], side) in source pixels; side is 0 when fewer than two distinct points exist.
    """
    pts = np.asarray(points, dtype=np.float64)[np.asarray(valid, dtype=bool)]
    if len(pts) == 0:
        return np.zeros(2), 0.0
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return (lo + hi) / 2, float(margin * (hi - lo).max())


def crop_image(image: Image.Image | np.ndarray, center: np.ndarray, side: float, size: int) -> np.ndarray:
    """Resample the square ``center ± side / 2`` of ``image`` to a ``size``×``size`` RGB crop.

    Uses Pillow's resampling (bilinear, antialiased when shrinking); outside the image is black.

    Args:
        image: Source image (PIL image or [H, W, 3] uint8 array).
        center: [2] crop centre, source pixels (pixel centres at integers).
        side: Crop side length in source pixels.
        size: Output side length in pixels.

    Returns:
        [size, size, 3] uint8 RGB.
    """
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image = image.convert("RGB")
    # Pillow puts pixel centres at +0.5, so our continuous x is Pillow's x - 0.5.
    x0, y0 = center[0] + 0.5 - side / 2, center[1] + 0.5 - side / 2
    ix0, iy0 = math.floor(x0) - 1, math.floor(y0) - 1
    ix1, iy1 = math.ceil(x0 + side) + 1, math.ceil(y0 + side) + 1
    region = image.crop((ix0, iy0, ix1, iy1))  # zero-padded where it leaves the image
    box = (x0 - ix0, y0 - iy0, x0 - ix0 + side, y0 - iy0 + side)
    out = region.resize((size, size), Image.BILINEAR, box=box)
    return np.asarray(out, dtype=np.uint8)
