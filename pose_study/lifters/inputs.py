"""What lifters read and what their output means in pixels: pure functions, batched torch (any device).

* ``normalise_2d``: crop-pixel joints → the scale- and translation-free coordinates every
  ``coords`` lifter takes.
* ``relative_3d``: camera-frame joints in mm → the lifters' target (root-relative metres).
* ``project`` / ``reproject`` / ``fit_weak_perspective``: 3D back to crop pixels, with a camera
  (3D data) or with a least-squares scale and translation (2D-only data).
* ``lifter_input`` / ``lift``: frames around each sample, the input of any
  lifter, and batched inference.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from pose_study.skeletons import ROOT
from pose_study.weights import unwrap

MM_PER_M = 1000.0
MIN_SCALE_PX = 1e-6  # the normalising scale of a pose whose valid joints coincide (or of none)
MIN_DEPTH_MM = 1e-3  # depths are clamped here before dividing (points at or behind the camera)
MIN_SPREAD = 1e-12  # the squared spread of a lifted pose below which weak perspective keeps scale 0


def _centre(joints_2d: torch.Tensor, weight: torch.Tensor, root: int) -> torch.Tensor:
    """[..., 1, 2]: the root where it is valid, else the mean of the valid joints (0 if none)."""
    count = weight.sum(-1)[..., None, None].clamp_min(1)
    mean = (joints_2d * weight[..., None]).sum(-2, keepdim=True) / count
    root_valid = weight[..., root : root + 1, None] > 0
    return torch.where(root_valid, joints_2d[..., root : root + 1, :], mean)


def normalise_2d(joints_2d: torch.Tensor, valid: torch.Tensor, root: int = ROOT) -> torch.Tensor:
    """Translation- and scale-free 2D joints: the input of every ``coords`` lifter.

    Each pose (the last two dimensions) is centred on its root joint, or on the mean of its valid
    joints when the root is missing, and divided by the RMS distance of its valid joints to that
    centre. Invalid joints are zero.

    Args:
        joints_2d: [..., K, 2] crop pixels (e.g. [B, T, K, 2] or [N, K, 2]).
        valid: [..., K] bool, False for missing joints.
        root: Root joint index (pelvis).

    Returns:
        [..., K, 2] float32, unitless; RMS norm 1 over the valid joints of each pose.
    """
    weight = valid.to(torch.float32)
    joints_2d = joints_2d.to(torch.float32)
    centred = (joints_2d - _centre(joints_2d, weight, root)) * weight[..., None]
    mean_sq = centred.square().sum((-2, -1)) / weight.sum(-1).clamp_min(1)
    scale = mean_sq.sqrt().clamp_min(MIN_SCALE_PX)
    return centred / scale[..., None, None]


def relative_3d(joints_3d_mm: torch.Tensor, valid_3d: torch.Tensor, root: int = ROOT) -> torch.Tensor:
    """The lifters' target: root-relative 3D joints in metres.

    Args:
        joints_3d_mm: [..., K, 3] camera frame, mm.
        valid_3d: [..., K] bool. A pose whose root is invalid has no root-relative joints.
        root: Root joint index (pelvis).

    Returns:
        [..., K, 3] float32 metres; zero for invalid joints and for every joint of a pose without
        a valid root (the root row is always zero).
    """
    joints = joints_3d_mm.to(torch.float32)
    keep = valid_3d & valid_3d[..., root : root + 1]
    return (joints - joints[..., root : root + 1, :]) / MM_PER_M * keep[..., None]


def project(points_mm: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Pinhole projection of camera-frame points.

    Args:
        points_mm: [..., K, 3] camera frame (x right, y down, z forward), mm.
        intrinsics: [..., 3, 3] pinhole matrix in (crop) pixels, batch dimensions as ``points_mm``.

    Returns:
        [..., K, 2] pixels. Depths below ``MIN_DEPTH_MM`` are clamped there.
    """
    image = points_mm.to(torch.float32) @ intrinsics.to(torch.float32).transpose(-1, -2)
    return image[..., :2] / image[..., 2:].clamp_min(MIN_DEPTH_MM)


def reproject(pred_rel_m: torch.Tensor, root_mm: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Project a root-relative pose placed at a known root position.

    Exact for ground truth: ``reproject(relative_3d(gt, valid), gt[..., ROOT, :], K)`` equals
    ``project(gt, K)`` at the valid joints.

    Args:
        pred_rel_m: [..., K, 3] root-relative joints, metres.
        root_mm: [..., 3] root joint in the camera frame, mm.
        intrinsics: [..., 3, 3] pinhole matrix in pixels.

    Returns:
        [..., K, 2] pixels.
    """
    points_mm = pred_rel_m.to(torch.float32) * MM_PER_M + root_mm.to(torch.float32)[..., None, :]
    return project(points_mm, intrinsics)


def fit_weak_perspective(pred_rel_m: torch.Tensor, joints_2d_px: torch.Tensor,
                         valid: torch.Tensor) -> torch.Tensor:
    """Weak-perspective reprojection for data without a camera: the best scale and 2D shift.

    Finds per pose the scale s and translation t minimising ``Σ_valid ||s · xy_k + t − p_k||²``
    (closed form: centre both point sets on their valid means, s = <xy, p> / <xy, xy>) and applies
    them to every joint.

    Args:
        pred_rel_m: [..., K, 3] root-relative joints, metres (only x, y are used).
        joints_2d_px: [..., K, 2] observed joints, pixels.
        valid: [..., K] bool: the joints the fit uses.

    Returns:
        [..., K, 2] pixels. A pose with no valid joint, or whose valid joints coincide in x, y,
        gets scale 0 (every joint at the mean of its valid observations, or at 0).
    """
    weight = valid.to(torch.float32)[..., None]
    xy, obs = pred_rel_m[..., :2].to(torch.float32), joints_2d_px.to(torch.float32)
    count = weight.sum(-2, keepdim=True).clamp_min(1)
    xy_mean = (xy * weight).sum(-2, keepdim=True) / count
    obs_mean = (obs * weight).sum(-2, keepdim=True) / count
    xy_c, obs_c = (xy - xy_mean) * weight, (obs - obs_mean) * weight
    spread = xy_c.square().sum((-2, -1), keepdim=True)
    scale = (xy_c * obs_c).sum((-2, -1), keepdim=True) / spread.clamp_min(MIN_SPREAD)
    scale = torch.where(spread > MIN_SPREAD, scale, torch.zeros_like(scale))
    return scale * (xy - xy_mean) + obs_mean


def _gather_frames(coords: torch.Tensor, valid: torch.Tensor, windows: torch.Tensor | None,
                   frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, K, 2] normalised coords → ([M, T, K, 2], [M, T, K]) by ``windows`` [M, T] (T = 1: itself)."""
    if frames == 1:
        return coords[:, None], valid[:, None]
    if windows is None:
        raise ValueError(f"a {frames}-frame lifter needs windows (data.poses.sequence_windows), got None")
    if tuple(windows.shape[1:]) != (frames,):
        raise ValueError(f"windows must be [N, {frames}] for a {frames}-frame lifter, "
                         f"got {tuple(windows.shape)}")
    windows = torch.as_tensor(windows).to(coords.device, torch.long)
    return coords[windows], valid[windows]


def lifter_input(lifter: nn.Module, joints_2d_px: torch.Tensor, valid: torch.Tensor,
                 heatmaps: torch.Tensor | None = None,
                 windows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The input of ``lifter`` for N samples.

    Args:
        lifter: A module from ``lifters.build_lifter`` (``input_kind``, ``frames`` set).
        joints_2d_px: [N, K, 2] crop pixels.
        valid: [N, K] bool.
        heatmaps: [N, K, H, W] heatmaps (peak ≈ 1); required by heatmap lifters, ignored otherwise.
        windows: [M, T] int64 indices into the N rows (``sequence_windows``); required by sequence
            lifters (T = ``lifter.frames`` > 1), ignored by single-frame ones. The output has one
            row per row of ``windows``.

    Returns:
        ``(x, valid)``: heatmap lifters ``([N, K, H, W], [N, K])``; coords lifters
        ``([N, T, K, 2] normalise_2d coordinates, [N, T, K])`` (M rows for sequence lifters).

    Raises:
        ValueError: a required ``heatmaps`` or ``windows`` is missing or mis-shaped.
    """
    plain = unwrap(lifter)
    if plain.input_kind == "heatmaps":
        if heatmaps is None:
            raise ValueError(f"lifter {plain.preset_name!r} takes heatmaps; got heatmaps=None")
        return heatmaps, valid.bool()
    return _gather_frames(normalise_2d(joints_2d_px, valid), valid.bool(), windows, plain.frames)


def _chunk_inputs(plain: nn.Module, coords: torch.Tensor, valid: torch.Tensor, heatmaps: torch.Tensor | None,
                  windows: torch.Tensor | None, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``rows`` of the lifter input, from precomputed normalised ``coords`` (coords lifters)."""
    if plain.input_kind == "heatmaps":
        return heatmaps[rows], valid[rows]
    if plain.frames == 1:
        return _gather_frames(coords[rows], valid[rows], None, 1)
    return _gather_frames(coords, valid, windows[rows], plain.frames)


@torch.no_grad()
def lift(lifter: nn.Module, joints_2d_px: torch.Tensor, valid: torch.Tensor,
         heatmaps: torch.Tensor | None = None, windows: torch.Tensor | None = None,
         batch_size: int = 1024) -> torch.Tensor:
    """Root-relative 3D joints of N samples: the lifter in eval mode, no gradients, in batches.

    Args:
        lifter: A module from ``lifters.build_lifter``; runs on the device of its parameters.
        joints_2d_px: [N, K, 2] crop pixels.
        valid: [N, K] bool.
        heatmaps: [N, K, H, W]; heatmap lifters only.
        windows: [N, T] int64 (``sequence_windows``); sequence lifters only.
        batch_size: Samples per forward pass.

    Returns:
        [N, K, 3] float32 metres, root-relative, on the device of ``joints_2d_px``. The lifter's
        train/eval mode is restored afterwards.

    Raises:
        ValueError: ``batch_size`` < 1, or a required ``heatmaps``/``windows`` is missing.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    plain = unwrap(lifter)
    if plain.input_kind == "heatmaps" and heatmaps is None:
        raise ValueError(f"lifter {plain.preset_name!r} takes heatmaps; got heatmaps=None")
    if plain.input_kind == "coords" and plain.frames > 1 and windows is None:
        raise ValueError(f"a {plain.frames}-frame lifter needs windows (data.poses.sequence_windows), "
                         "got None")
    device = next(lifter.parameters()).device
    valid = valid.bool().to(device)
    windows = torch.as_tensor(windows) if windows is not None else None
    coords = normalise_2d(joints_2d_px.to(device), valid) if plain.input_kind == "coords" else None
    heatmaps = heatmaps.to(device) if heatmaps is not None else None
    was_training = lifter.training
    lifter.eval()
    try:
        chunks = [slice(start, start + batch_size) for start in range(0, valid.shape[0], batch_size)]
        out = [lifter(*_chunk_inputs(plain, coords, valid, heatmaps, windows, rows)) for rows in chunks]
    finally:
        lifter.train(was_training)
    if not out:
        return torch.zeros(0, valid.shape[1], 3, device=joints_2d_px.device)
    return torch.cat(out).float().to(joints_2d_px.device)
