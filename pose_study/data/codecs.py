"""Target codecs: heatmaps and depth maps <-> joint coordinates. Batched torch, any device.

Coordinates are in *heatmap pixels*: x right, y down, pixel centres at integers (0-based), so a
map of side W covers x ∈ [-0.5, W - 0.5]. Heatmap targets follow the seed
(reference/seed_system.md §2.4: unnormalised Gaussian, peak 1, σ = 2 px) but are centred on the
sub-pixel location (the seed truncated it to int). Depth targets follow §2.5: weak-perspective,
root-relative depth normalised by the crop side.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pose_study.skeletons import ROOT

OUTSIDE_SIGMAS = 3.0  # a joint farther than 3σ outside the map gets an all-zero map (seed's window)
LOG_FLOOR = 1e-10  # heatmap values are clamped here before the log in sub-pixel refinement


def _size(size: int | Sequence[int]) -> tuple[int, int]:
    """(H, W) from a side or an (H, W) pair."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def encode_heatmaps(joints: torch.Tensor, valid: torch.Tensor, size: int | Sequence[int],
                    sigma: float = 2.0) -> torch.Tensor:
    """Gaussian heatmap targets.

    Args:
        joints: [B, K, 2] (x, y) in heatmap pixels.
        valid: [B, K] bool, False for missing joints.
        size: Map side, or (H, W).
        sigma: Gaussian standard deviation in heatmap pixels.

    Returns:
        [B, K, H, W] float32: exp(-d² / 2σ²) around the sub-pixel joint (peak 1 at the joint);
        all zeros for invalid joints and joints more than 3σ outside the map.
    """
    h, w = _size(size)
    joints = joints.float()
    x, y = joints[..., 0], joints[..., 1]
    margin = OUTSIDE_SIGMAS * sigma
    inside = (x >= -margin) & (x <= w - 1 + margin) & (y >= -margin) & (y <= h - 1 + margin)
    keep = (valid.bool() & inside).float()
    xs = torch.arange(w, device=joints.device, dtype=torch.float32)
    ys = torch.arange(h, device=joints.device, dtype=torch.float32)
    gx = torch.exp(-((xs - x[..., None]) ** 2) / (2 * sigma**2))  # [B, K, W]
    gy = torch.exp(-((ys - y[..., None]) ** 2) / (2 * sigma**2))  # [B, K, H]
    return gy[..., :, None] * gx[..., None, :] * keep[..., None, None]


def _gather(maps: torch.Tensor, ix: torch.Tensor, iy: torch.Tensor) -> torch.Tensor:
    """maps[b, k, iy, ix] for [B, K] index tensors, clamped into the map."""
    h, w = maps.shape[-2:]
    flat = iy.clamp(0, h - 1) * w + ix.clamp(0, w - 1)
    return maps.flatten(2).gather(2, flat[..., None])[..., 0]


def _quarter_shift(maps: torch.Tensor, ix: torch.Tensor, iy: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """±0.25 px toward the higher neighbour in x and in y (Newell's refinement)."""
    sx = (_gather(maps, ix + 1, iy) - _gather(maps, ix - 1, iy)).sign() * 0.25
    sy = (_gather(maps, ix, iy + 1) - _gather(maps, ix, iy - 1)).sign() * 0.25
    return sx, sy


def decode_heatmaps(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Argmax with DARK-style sub-pixel refinement (Zhang et al., CVPR'20).

    A second-order Taylor expansion of log(heatmap) on the 3×3 stencil around the integer argmax
    (shifted inward at the border) gives the Newton step ``-H⁻¹ ∇``, which is exact for a Gaussian.
    The result is kept within 1 px of the argmax. Where the Hessian is not negative definite, a
    quarter-pixel shift toward the higher neighbour is used instead.

    Args:
        heatmaps: [B, K, H, W], H and W ≥ 3.

    Returns:
        (coords [B, K, 2] (x, y) in heatmap pixels, maxvals [B, K] heatmap value at the argmax).
    """
    maps = heatmaps.detach().float()
    h, w = maps.shape[-2:]
    assert h >= 3 and w >= 3, f"heatmaps too small for sub-pixel refinement: {tuple(maps.shape)}"
    maxvals, flat = maps.flatten(2).max(dim=2)
    ix, iy = flat % w, flat // w
    cx, cy = ix.clamp(1, w - 2), iy.clamp(1, h - 2)  # stencil centre, inside the map
    logs = maps.clamp(min=LOG_FLOOR).log()

    def at(dx: int, dy: int) -> torch.Tensor:
        return _gather(logs, cx + dx, cy + dy)

    c = at(0, 0)
    gx, gy = (at(1, 0) - at(-1, 0)) / 2, (at(0, 1) - at(0, -1)) / 2
    hxx, hyy = at(1, 0) - 2 * c + at(-1, 0), at(0, 1) - 2 * c + at(0, -1)
    hxy = (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1)) / 4
    det = hxx * hyy - hxy**2
    newton = (hxx < 0) & (det > 0)
    safe_det = torch.where(newton, det, torch.ones_like(det))
    # Newton step from the stencil centre: -H⁻¹ g, H⁻¹ = [[hyy, -hxy], [-hxy, hxx]] / det.
    nx = cx - (hyy * gx - hxy * gy) / safe_det
    ny = cy - (hxx * gy - hxy * gx) / safe_det
    sx, sy = _quarter_shift(maps, ix, iy)
    x = torch.where(newton, nx, ix + sx)
    y = torch.where(newton, ny, iy + sy)
    coords = torch.stack([x.clamp(ix - 1, ix + 1), y.clamp(iy - 1, iy + 1)], dim=-1)
    return coords, maxvals


def soft_argmax(heatmaps: torch.Tensor, beta: float = 100.0) -> torch.Tensor:
    """Differentiable expected location under softmax(beta · heatmap) over each map.

    Args:
        heatmaps: [B, K, H, W].
        beta: Softmax temperature inverse; large values approach the argmax.

    Returns:
        [B, K, 2] (x, y) in heatmap pixels, float32.
    """
    h, w = heatmaps.shape[-2:]
    probs = torch.softmax(beta * heatmaps.float().flatten(2), dim=2).view(*heatmaps.shape[:2], h, w)
    xs = torch.arange(w, device=heatmaps.device, dtype=torch.float32)
    ys = torch.arange(h, device=heatmaps.device, dtype=torch.float32)
    x = (probs.sum(dim=2) * xs).sum(dim=-1)
    y = (probs.sum(dim=3) * ys).sum(dim=-1)
    return torch.stack([x, y], dim=-1)


def sample_maps(maps: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinear value of channel k at coords k: the depth read at the joint.

    Args:
        maps: [B, K, H, W].
        coords: [B, K, 2] (x, y) in heatmap pixels; outside the map the border value is used.

    Returns:
        [B, K] float32, differentiable w.r.t. ``maps``.
    """
    b, k, h, w = maps.shape
    scale = coords.new_tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)])
    grid = (coords.float() * scale - 1).reshape(b * k, 1, 1, 2)
    values = F.grid_sample(maps.float().reshape(b * k, 1, h, w), grid, mode="bilinear",
                           padding_mode="border", align_corners=True)
    return values.view(b, k)


def flip_back(maps: torch.Tensor, flip_perm: Sequence[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
    """Map the output for a horizontally mirrored image back onto the original image.

    Mirrors along W (heatmap x → W-1-x) and swaps left/right channels:
    ``out[:, j] = maps.flip(-1)[:, flip_perm[j]]``. Exact when the image mirror is x → S-1-x and
    heatmap pixel u is centred on input pixel 4u + 1.5 (S = 4W). Average the result with the
    un-flipped output for flip test-time augmentation.

    Args:
        maps: [B, K, H, W] heatmaps or depth maps of the mirrored image.
        flip_perm: [K] permutation, e.g. ``CANONICAL.flip_permutation()``.

    Returns:
        [B, K, H, W].
    """
    perm = torch.as_tensor(np.asarray(flip_perm), dtype=torch.long, device=maps.device)
    if perm.shape != (maps.shape[1],):
        raise ValueError(f"flip_perm has shape {tuple(perm.shape)}, expected ({maps.shape[1]},)")
    return maps.flip(-1).index_select(1, perm)


def focal_px(intrinsics: torch.Tensor) -> torch.Tensor:
    """[B, 3, 3] crop-pixel intrinsics → [B] f = mean(fx, fy) in crop pixels."""
    return (intrinsics[:, 0, 0] + intrinsics[:, 1, 1]).float() / 2


def encode_depth(joints_3d_mm: torch.Tensor, intrinsics: torch.Tensor, crop_size: float,
                 root: int = ROOT) -> torch.Tensor:
    """Depth-map targets, weak perspective as the seed (reference/seed_system.md §2.5).

    ``d_j = (Z_j - Z_root) · f / (Z_root · S)``: the root-relative depth scaled like x, y at the
    root's distance (mm → crop pixels via f / Z_root), then divided by the crop side, so that
    (x/W, y/H, d) is an isotropic pose in units of the crop.

    Args:
        joints_3d_mm: [B, K, 3] camera frame, mm (z forward, > 0).
        intrinsics: [B, 3, 3] pinhole K in crop pixels.
        crop_size: S, crop side in pixels (the network input side).
        root: Root joint index (pelvis).

    Returns:
        [B, K] float32, unitless; 0 at the root.
    """
    z = joints_3d_mm[..., 2].float()
    z_root = z[:, root : root + 1]
    return (z - z_root) * focal_px(intrinsics)[:, None] / (z_root * crop_size)


def decode_depth(depth: torch.Tensor, root_depth_mm: torch.Tensor, intrinsics: torch.Tensor,
                 crop_size: float) -> torch.Tensor:
    """Inverse of ``encode_depth``: root-relative depth back in mm.

    ``Z_j - Z_root = d_j · S · Z_root / f``: undo the division by the crop side S (→ crop
    pixels), then convert crop pixels to mm at the root's distance Z_root (pinhole: 1 px =
    Z_root / f mm). Add ``root_depth_mm`` for absolute Z.

    Args:
        depth: [B, K] network depth values (as ``encode_depth``).
        root_depth_mm: [B] root distance Z_root in mm (ground truth or estimated).
        intrinsics: [B, 3, 3] pinhole K in crop pixels.
        crop_size: S, crop side in pixels.

    Returns:
        [B, K] float32 root-relative depth, mm.
    """
    scale = crop_size * root_depth_mm.float() / focal_px(intrinsics)
    return depth.float() * scale[:, None]
