"""Pose-only objectives of the APTPose and MPT arms, and the synthetic inputs they train on.

* APTPose (Yang et al.): :func:`apt_pretrain_loss` (masked pose modeling at every enabled mask
  level in parallel plus temporal masking, the padding decoder's 3D loss on 3D samples,
  reprojection loss on every sample), :func:`sequence_pose_loss` (fine-tuning: pose and
  bone-vector L2 on the decoded sequence and on the aggregator's centre frame) and
  :func:`sequences_from_images` (2D images → short noisy sequences).
* MPT (Lin et al.): :func:`virtual_cameras` (the paper's 4 fixed cameras, or random ones) and
  :func:`synthesize_heatmaps` (at the detector's heatmap σ) turn 3D poses into detector-like
  heatmaps; :func:`mpt_pretrain_loss` regresses 3D from them (masked joints, noise, jitter; L1 on
  3D and on the 2D reprojection).

Every loss returns a dict of fp32 scalar tensors with a ``"total"`` entry. "L2" terms are mean
Euclidean distances over valid joints (MPJPE-style; metres for 3D, crop sides for 2D); "L1" terms
are mean absolute coordinate errors.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from pose_study.data import codecs
from pose_study.lifters import inputs
from pose_study.lifters.apt import reproject_2d
from pose_study.data.poses import PoseBatch
from pose_study.lifters.masks import MASK_LEVELS, mask_groups, sample_mask, sample_temporal_mask
from pose_study.predict import STRIDE, crop_to_heatmap
from pose_study.skeletons import CANONICAL, ROOT
from pose_study.weights import unwrap

BOX_MARGIN = 1.25  # virtual crops: box side = margin × the pose's longer 2D extent, as the converters' default
DISTANCE_MM = (3000.0, 6000.0)  # virtual camera distance to the root
MAX_PITCH_DEG = 30.0  # virtual camera elevation, ± this

# MPT's 4 fixed virtual cameras (Lin et al., appendix A: "the camera parameters from Subject 1 of
# Human3.6M"): (yaw°, pitch°, distance mm) of each S1 camera seen from a root 900 mm above the
# floor at the world origin, from the public extrinsics (translation, mm, Z up) as in
# VideoPose3D's ``common/h36m_dataset.py``: yaw = azimuth atan2(y, x), pitch = elevation of the
# camera above the root (positive: looking down), distance = camera to root. The root sits on
# the optical axis, as with the random cameras.
H36M_S1_CAMERAS = (
    (69.6, 7.2, 5328.0),  # 54138969
    (-70.9, 7.5, 5421.0),  # 55011271
    (109.5, 6.1, 5564.0),  # 58860488
    (-115.7, 9.3, 4188.0),  # 60457274
)
VIRTUAL_CAMERAS = ("fixed", "random")  # MPT pre-training: the paper's 4 cameras, or a random one per sample


# --- small pieces ---------------------------------------------------------------------------------

def _randn(shape: Sequence[int], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Standard normal draws on the generator's device, moved to ``device``."""
    draw = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(*shape, generator=generator, device=draw).to(device)


def _rand(shape: Sequence[int], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Uniform [0, 1) draws on the generator's device, moved to ``device``."""
    draw = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(*shape, generator=generator, device=draw).to(device)


def _masked_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``weight`` is True (0 when none), fp32."""
    weight = weight.to(torch.float32)
    return (values.float() * weight).sum() / weight.sum().clamp_min(1)


def _mean_distance(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean distance over the valid rows of [..., K, D] (0 when none)."""
    return _masked_mean(torch.linalg.vector_norm(pred.float() - target.float(), dim=-1), valid)


def _mean_abs(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean absolute coordinate error over the valid rows of [..., K, D] (0 when none)."""
    err = (pred.float() - target.float()).abs().mean(dim=-1)
    return _masked_mean(err, valid)


def _bones(joints: torch.Tensor, valid: torch.Tensor, parents: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Bone vectors (joint − parent) [..., J, D] and their validity [..., J], one per non-root joint."""
    child = [j for j, p in enumerate(parents) if p >= 0]
    parent = [parents[j] for j in child]
    return joints[..., child, :] - joints[..., parent, :], valid[..., child] & valid[..., parent]


# --- APTPose ---------------------------------------------------------------------------------------

def sequence_pose_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
                       parents: Sequence[int] = CANONICAL.parents,
                       centre: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """APTPose fine-tuning loss: pose and bone-vector L2, on the whole sequence and on the centre frame.

    Args:
        pred: [B, T, K, 3] predicted root-relative metres.
        target: [B, T, K, 3] ground truth, same units.
        valid: [B, T, K] bool; a bone counts where both its joints are valid.
        parents: Parent index per joint (``-1`` for the root); default ``CANONICAL``'s.
        centre: [B, K, 3] the centre-frame prediction (APTPose: the temporal aggregator's), or
            None to use ``pred``'s centre frame.

    Returns:
        ``pose_sequence``, ``pose_centre``, ``bone_sequence``, ``bone_centre`` (mean Euclidean
        errors, metres) and ``total`` = their sum.
    """
    if pred.shape != target.shape or pred.shape[:-1] != valid.shape or pred.shape[-2] != len(parents):
        raise ValueError(f"pred {tuple(pred.shape)}, target {tuple(target.shape)} and valid {tuple(valid.shape)} "
                         f"must be [B, T, K, 3] / [B, T, K] with K = {len(parents)}")
    c = pred.shape[1] // 2
    centre = pred[:, c] if centre is None else centre
    bone_pred, bone_valid = _bones(pred, valid.bool(), parents)
    bone_target, _ = _bones(target, valid.bool(), parents)
    bone_centre, _ = _bones(centre, valid[:, c].bool(), parents)
    terms = {"pose_sequence": _mean_distance(pred, target, valid),
             "pose_centre": _mean_distance(centre, target[:, c], valid[:, c]),
             "bone_sequence": _mean_distance(bone_pred, bone_target, bone_valid),
             "bone_centre": _mean_distance(bone_centre, bone_target[:, c], bone_valid[:, c])}
    return {**terms, "total": sum(terms.values())}


def level_masks(levels: Iterable[str], shape: Sequence[int], ratio: float, generator: torch.Generator | None,
                device: torch.device | str) -> dict[str, torch.Tensor]:
    """One independent ``sample_mask`` per enabled level (``CANONICAL`` groups): level → [B, T, K] bool."""
    if shape[-1] != CANONICAL.num_joints:
        raise ValueError(f"mask levels are defined on {CANONICAL.name} ({CANONICAL.num_joints} joints), "
                         f"got K = {shape[-1]}")
    masks = {}
    for level in levels:
        if level not in MASK_LEVELS:
            raise ValueError(f"unknown mask level {level!r}; choices: {MASK_LEVELS}")
        masks[level] = sample_mask(mask_groups(CANONICAL, level), shape, ratio, generator, device)
    return masks


def _apt_reprojection(pred: torch.Tensor, batch: PoseBatch) -> torch.Tensor:
    """[B, T, K, 2] px: through the camera for 3D samples, weak perspective for 2D-only ones."""
    has_camera = batch.is_3d.bool()[:, None]  # [B, 1]
    safe_root = torch.zeros(3, device=pred.device)  # a placeholder camera that keeps 2D-only rows finite
    safe_root[2] = DISTANCE_MM[0]
    root = torch.where(has_camera[..., None], batch.joints_3d[..., ROOT, :].float(), safe_root)
    eye = torch.eye(3, device=pred.device)
    intrinsics = torch.where(has_camera[..., None, None], batch.intrinsics.float(), eye)
    exact = reproject_2d(pred, batch.joints_2d, batch.valid_2d, root, intrinsics)
    weak = reproject_2d(pred, batch.joints_2d, batch.valid_2d)
    return torch.where(has_camera[..., None, None], exact, weak)


def _learned_reprojection_loss(reprojected: torch.Tensor, batch: PoseBatch) -> torch.Tensor:
    """Mean distance of the learned reprojection to the true 2D, both in ``normalise_2d`` units."""
    return _mean_distance(reprojected, inputs.normalise_2d(batch.joints_2d, batch.valid_2d), batch.valid_2d)


def apt_pretrain_loss(model: nn.Module, batch: PoseBatch, levels: Iterable[str], ratio: float, lambda_3d: float,
                      lambda_2d: float, generator: torch.Generator | None = None,
                      temporal_ratio: float = 0.0) -> dict[str, torch.Tensor]:
    """APTPose masked pose modeling: reconstruct the 3D sequence from hierarchically masked 2D.

    Each enabled level draws its own mask (``ratio`` of the joints, whole groups) and feeds it to
    its own encoder; a temporal mask hides ``temporal_ratio`` of the frames from the encoder, and
    the padding decoder reconstructs every frame. The input is ``normalise_2d`` of the
    ground-truth 2D of every frame.

    Args:
        model: An ``AptLifter`` (possibly DDP-wrapped).
        batch: [B, T] frames, T = the model's frames; 3D and 2D-only samples may mix.
        levels: Enabled mask levels (subset of ``MASK_LEVELS``; empty → nothing masked).
        ratio: Fraction of joints each level masks.
        lambda_3d: Weight of ``loss_3d`` (mean joint distance to ``relative_3d``, metres, 3D samples).
        lambda_2d: Weight of ``loss_2d``, on every sample: with the learned reprojection module
            (the paper's), the mean distance of its 2D to ``normalise_2d`` of the true 2D
            (unitless, RMS 1 per pose); with ``reprojection="analytic"``, the mean reprojection
            distance / crop size (exact camera for 3D samples, weak perspective for 2D-only ones).
        generator: Random source of the masks.
        temporal_ratio: Fraction of frames masked (``masks.sample_temporal_mask``; 0: none).

    Returns:
        ``loss_3d``, ``loss_2d``, ``mask_fraction`` (masked joints / all, over levels),
        ``frame_fraction`` (masked frames / all) and ``total`` = λ3D·loss_3d + λ2D·loss_2d.
    """
    b, t, k = batch.valid_2d.shape
    device = batch.joints_2d.device
    masks = level_masks(levels, (b, t, k), ratio, generator, device)
    frames = sample_temporal_mask((b, t), temporal_ratio, generator, device) if temporal_ratio > 0 else None
    x = inputs.normalise_2d(batch.joints_2d, batch.valid_2d)
    out = model(x, batch.valid_2d, masks=masks, sequence=True, temporal_mask=frames)
    pred = out["sequence"]
    valid_3d = batch.valid_3d.bool() & batch.is_3d.bool()[:, None, None]
    has_target = valid_3d & valid_3d[..., ROOT : ROOT + 1]
    loss_3d = _mean_distance(pred, inputs.relative_3d(batch.joints_3d, valid_3d), has_target)
    if out["reprojected"] is not None:
        loss_2d = _learned_reprojection_loss(out["reprojected"], batch)
    else:
        reprojected = _apt_reprojection(pred, batch)
        loss_2d = _mean_distance(reprojected, batch.joints_2d, batch.valid_2d) / batch.crop_size
    fraction = torch.stack([m.float().mean() for m in masks.values()]).mean() if masks else pred.new_zeros(())
    frame_fraction = frames.float().mean() if frames is not None else pred.new_zeros(())
    return {"loss_3d": loss_3d, "loss_2d": loss_2d, "mask_fraction": fraction.detach(),
            "frame_fraction": frame_fraction.detach(), "total": lambda_3d * loss_3d + lambda_2d * loss_2d}


def sequences_from_images(batch: PoseBatch, frames: int, noise_px: float, jitter_px: float,
                          generator: torch.Generator | None = None) -> PoseBatch:
    """Single images as short sequences: the pose repeated ``frames`` times with noise and jitter.

    Each frame gets its own translation (jitter, one Gaussian 2D offset per frame, σ = ``jitter_px``)
    and independent per-joint Gaussian noise (σ = ``noise_px``); invalid joints stay where they are.
    3D labels, validity and intrinsics are repeated unchanged.

    Args:
        batch: T = 1 batch.
        frames: Output T (odd).
        noise_px, jitter_px: Standard deviations in crop pixels.
        generator: Random source.

    Returns:
        The T = ``frames`` batch.
    """
    if batch.frames != 1:
        raise ValueError(f"sequences_from_images takes single frames (T = 1), got T = {batch.frames}")
    if frames < 1 or frames % 2 == 0:
        raise ValueError(f"frames must be odd and ≥ 1, got {frames}")
    b, _, k, _ = batch.joints_2d.shape
    device = batch.joints_2d.device
    shift = jitter_px * _randn((b, frames, 1, 2), generator, device) + noise_px * _randn((b, frames, k, 2),
                                                                                        generator, device)
    joints_2d = batch.joints_2d.float() + shift * batch.valid_2d[..., None]

    def repeat(x: torch.Tensor) -> torch.Tensor:
        return x.expand(b, frames, *x.shape[2:]).clone()

    return PoseBatch(joints_2d, repeat(batch.valid_2d), repeat(batch.joints_3d), repeat(batch.valid_3d),
                     repeat(batch.intrinsics), batch.is_3d, batch.crop_size)


# --- MPT -------------------------------------------------------------------------------------------

def _rotation(yaw: torch.Tensor, pitch: torch.Tensor) -> torch.Tensor:
    """[B, 3, 3] = R_x(pitch) @ R_y(yaw) (camera axes: y down, so R_y turns about the vertical)."""
    cy, sy, cp, sp = yaw.cos(), yaw.sin(), pitch.cos(), pitch.sin()
    zero, one = torch.zeros_like(yaw), torch.ones_like(yaw)
    r_y = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).view(-1, 3, 3)
    r_x = torch.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).view(-1, 3, 3)
    return r_x @ r_y


def _crop_intrinsics(points_mm: torch.Tensor, valid: torch.Tensor, crop_size: int) -> torch.Tensor:
    """[B, 3, 3] intrinsics that frame the valid joints like the converters' crops (side = margin × extent)."""
    uv = points_mm[..., :2] / points_mm[..., 2:]
    big = torch.finfo(uv.dtype).max
    lo = torch.where(valid[..., None], uv, big).amin(dim=-2)
    hi = torch.where(valid[..., None], uv, -big).amax(dim=-2)
    extent = (hi - lo).amax(dim=-1).clamp_min(1e-6)  # [B]
    focal = crop_size / (BOX_MARGIN * extent)
    centre = (crop_size - 1) / 2 - focal[:, None] * (lo + hi) / 2  # [B, 2]
    intrinsics = torch.zeros(points_mm.shape[0], 3, 3, device=points_mm.device)
    intrinsics[:, 0, 0], intrinsics[:, 1, 1], intrinsics[:, 2, 2] = focal, focal, 1.0
    intrinsics[:, :2, 2] = centre
    return intrinsics


def _random_views(b: int, generator: torch.Generator | None, device: torch.device
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[B] yaw, pitch (radians) and distance (mm) of random views (see ``random_virtual_cameras``)."""
    yaw = 2 * math.pi * _rand((b,), generator, device)
    pitch = math.radians(MAX_PITCH_DEG) * (2 * _rand((b,), generator, device) - 1)
    distance = DISTANCE_MM[0] + (DISTANCE_MM[1] - DISTANCE_MM[0]) * _rand((b,), generator, device)
    return yaw, pitch, distance


def _fixed_views(b: int, generator: torch.Generator | None, device: torch.device
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[B] yaw, pitch (radians) and distance (mm): one of ``H36M_S1_CAMERAS`` per sample, uniformly."""
    table = torch.tensor(H36M_S1_CAMERAS, device=device)
    pick = (_rand((b,), generator, device) * len(H36M_S1_CAMERAS)).long().clamp_max(len(H36M_S1_CAMERAS) - 1)
    views = table[pick]
    return torch.deg2rad(views[:, 0]), torch.deg2rad(views[:, 1]), views[:, 2]


def _look(joints_3d_mm: torch.Tensor, valid: torch.Tensor, crop_size: int, yaw: torch.Tensor,
          pitch: torch.Tensor, distance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The root-relative pose rotated by (yaw, pitch), placed ``distance`` down the optical axis, with crop intrinsics."""
    joints = joints_3d_mm.float()
    rel = (joints - joints[:, ROOT : ROOT + 1]) * valid[..., None]
    points = rel @ _rotation(yaw, pitch).transpose(-1, -2)
    points = points + torch.stack([torch.zeros_like(distance), torch.zeros_like(distance), distance], -1)[:, None]
    return points, _crop_intrinsics(points, valid, crop_size)


def virtual_cameras(joints_3d_mm: torch.Tensor, crop_size: int, generator: torch.Generator | None = None,
                    valid: torch.Tensor | None = None, mode: str = "fixed") -> tuple[torch.Tensor, torch.Tensor]:
    """Look at each pose through a virtual camera: one of MPT's 4 fixed ones, or a random one.

    ``fixed`` (the paper): yaw, pitch and distance of one of the Human3.6M S1 cameras
    (``H36M_S1_CAMERAS``), drawn uniformly per sample. The source poses are in their own camera's
    frame, so the yaw turns the pose about that camera's vertical axis (the paper's world frame is
    not known here: a labelled approximation). ``random``: see ``random_virtual_cameras``. Both
    frame the valid joints with the same crop intrinsics (``BOX_MARGIN``).

    Args:
        joints_3d_mm: [B, K, 3] camera-frame poses, mm.
        crop_size: Crop side S in pixels.
        generator: Random source.
        valid: [B, K] bool joints that must fit the crop (default: all).
        mode: One of ``VIRTUAL_CAMERAS``.

    Returns:
        (points_cam_mm [B, K, 3] in the virtual camera frame, intrinsics [B, 3, 3] crop pixels).
    """
    if mode not in VIRTUAL_CAMERAS:
        raise ValueError(f"pretrain_pose.virtual_cameras must be one of {VIRTUAL_CAMERAS}, got {mode!r}")
    b, k, _ = joints_3d_mm.shape
    device = joints_3d_mm.device
    valid = torch.ones(b, k, dtype=torch.bool, device=device) if valid is None else valid.bool()
    views = (_fixed_views if mode == "fixed" else _random_views)(b, generator, device)
    return _look(joints_3d_mm, valid, crop_size, *views)


def view_sequences(batch: PoseBatch, crop_size: int, generator: torch.Generator | None = None,
                   mode: str = "fixed") -> PoseBatch:
    """Pose-only sequences seen through one virtual camera each (``virtual_cameras``' views).

    Every frame of a sequence is looked at from the same view, root-relative and framed by its own
    crop intrinsics (as the converters crop every frame around the person); the 2D labels are the
    projections of the valid joints.

    Args:
        batch: [B, T] frames of poses without a camera (``joints_3d`` mm in a frame with y down,
            e.g. a pose-only split's world frame), ``crop_size`` unused.
        crop_size: Crop side S in pixels of the 2D it makes.
        generator: Random source of the views.
        mode: One of ``VIRTUAL_CAMERAS``.

    Returns:
        The batch with ``joints_3d`` in each virtual camera's frame, crop ``intrinsics``,
        ``joints_2d`` (crop px) and ``valid_2d`` = ``valid_3d``, at ``crop_size``.
    """
    if mode not in VIRTUAL_CAMERAS:
        raise ValueError(f"pretrain_pose.virtual_cameras must be one of {VIRTUAL_CAMERAS}, got {mode!r}")
    b, t, k, _ = batch.joints_3d.shape
    device = batch.joints_3d.device
    views = (_fixed_views if mode == "fixed" else _random_views)(b, generator, device)
    yaw, pitch, distance = (v.repeat_interleave(t) for v in views)
    valid = batch.valid_3d.bool().reshape(b * t, k)
    points, intrinsics = _look(batch.joints_3d.reshape(b * t, k, 3), valid, crop_size, yaw, pitch, distance)
    px = inputs.project(points, intrinsics)
    return PoseBatch(px.reshape(b, t, k, 2), valid.reshape(b, t, k), points.reshape(b, t, k, 3),
                     batch.valid_3d, intrinsics.reshape(b, t, 3, 3), batch.is_3d, crop_size)


def random_virtual_cameras(joints_3d_mm: torch.Tensor, crop_size: int, generator: torch.Generator | None = None,
                           valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Look at each pose through a random virtual camera.

    The pose is rotated about its root by a yaw uniform on the full circle (about the camera's
    vertical axis) and a pitch uniform in ±``MAX_PITCH_DEG``, placed on the optical axis at a
    distance uniform in ``DISTANCE_MM``, and given crop intrinsics whose square box (centred on
    the valid joints' 2D extent, side ``BOX_MARGIN`` × its longer side) fills the crop.

    Args:
        joints_3d_mm: [B, K, 3] camera-frame poses, mm.
        crop_size: Crop side S in pixels.
        generator: Random source.
        valid: [B, K] bool joints that must fit the crop (default: all).

    Returns:
        (points_cam_mm [B, K, 3] in the virtual camera frame, intrinsics [B, 3, 3] crop pixels).
    """
    return virtual_cameras(joints_3d_mm, crop_size, generator, valid, mode="random")


def synthesize_heatmaps(joints_2d_px: torch.Tensor, valid: torch.Tensor, crop_size: int, sigma: float,
                        jitter_px: float = 0.0, noise_std: float = 0.0, mask: torch.Tensor | None = None,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Detector-like heatmaps of known joints: Gaussian peaks at jittered positions, plus noise.

    Args:
        joints_2d_px: [B, K, 2] crop pixels.
        valid: [B, K] bool.
        crop_size: Crop side S (divisible by the heatmap stride 4); maps are S/4 × S/4.
        sigma: Gaussian σ in heatmap pixels.
        jitter_px: σ of a per-joint Gaussian shift of the peak, crop pixels.
        noise_std: σ of additive per-pixel Gaussian noise (the result is clamped ≥ 0).
        mask: [B, K] bool masked joints (masked pose modeling), or None.
        generator: Random source.

    Returns:
        [B, K, S/4, S/4] float32; invalid and masked joints are all-zero maps (no noise).
    """
    if crop_size % STRIDE:
        raise ValueError(f"crop_size must be divisible by the heatmap stride {STRIDE}, got {crop_size}")
    b, k, _ = joints_2d_px.shape
    device = joints_2d_px.device
    keep = valid.bool() if mask is None else valid.bool() & ~mask.bool()
    coords = joints_2d_px.float()
    if jitter_px > 0:
        coords = coords + jitter_px * _randn((b, k, 2), generator, device)
    size = crop_size // STRIDE
    maps = codecs.encode_heatmaps(crop_to_heatmap(coords), keep, size, sigma)
    if noise_std > 0:
        maps = (maps + noise_std * _randn(maps.shape, generator, device)).clamp_min(0)
    return maps * keep[..., None, None]


def _mpt_input(model: nn.Module, px: torch.Tensor, visible: torch.Tensor, batch: PoseBatch, sigma: float,
               jitter_px: float, noise_std: float, mask: torch.Tensor,
               generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's input: synthetic heatmaps, or (``input_kind == "coords"``) normalised jittered coords."""
    if unwrap(model).input_kind == "heatmaps":
        maps = synthesize_heatmaps(px, visible, batch.crop_size, sigma, jitter_px, noise_std, mask, generator)
        return maps, visible & ~mask
    coords = px + jitter_px * _randn(px.shape, generator, px.device) if jitter_px > 0 else px
    seen = visible & ~mask
    return inputs.normalise_2d(coords, seen)[:, None], seen[:, None]


def mpt_pretrain_loss(model: nn.Module, batch: PoseBatch, mask_ratio: float, sigma: float, jitter_px: float,
                      noise_std: float, lambda_3d: float, lambda_2d: float,
                      generator: torch.Generator | None = None, cameras: str = "fixed") -> dict[str, torch.Tensor]:
    """MPT pre-training: 3D poses → virtual cameras → masked noisy heatmaps → 3D.

    Args:
        model: An ``MptLifter`` (possibly DDP-wrapped), ``input_kind`` heatmaps or coords.
        batch: T = 1 batch of 3D samples (2D-only samples carry no loss).
        mask_ratio: Fraction of joints whose heatmaps are masked (joint level).
        sigma: Heatmap σ, heatmap pixels: the detector's training σ, so that zero-shot input (a
            detector's heatmaps) looks like pre-training input.
        jitter_px: Per-joint peak jitter σ, crop pixels.
        noise_std: Additive heatmap noise σ.
        lambda_3d: Weight of ``loss_3d`` (L1 to the virtual camera's ``relative_3d``, metres).
        lambda_2d: Weight of ``loss_2d`` (L1 of the reprojection through the virtual camera, px / crop size).
        generator: Random source (cameras, masks, jitter, noise).
        cameras: ``virtual_cameras`` mode: ``fixed`` (the paper's 4) or ``random``.

    Returns:
        ``loss_3d``, ``loss_2d`` and ``total`` = λ3D·loss_3d + λ2D·loss_2d.
    """
    if batch.frames != 1:
        raise ValueError(f"mpt pre-training takes single frames (T = 1), got T = {batch.frames}")
    joints, device = batch.joints_3d[:, 0], batch.joints_3d.device
    visible = batch.valid_3d[:, 0].bool() & batch.is_3d.bool()[:, None]
    points, intrinsics = virtual_cameras(joints, batch.crop_size, generator, visible, cameras)
    px = inputs.project(points, intrinsics)
    b, k = visible.shape
    joint_groups = tuple((j,) for j in range(k))
    mask = sample_mask(joint_groups, (b, 1, k), mask_ratio, generator, device)[:, 0]
    x, x_valid = _mpt_input(model, px, visible, batch, sigma, jitter_px, noise_std, mask, generator)
    pred = model(x, x_valid)
    target_valid = visible & visible[:, ROOT : ROOT + 1]
    loss_3d = _mean_abs(pred, inputs.relative_3d(points, visible), target_valid)
    reprojected = reproject_2d(pred, px, visible, points[:, ROOT], intrinsics)
    loss_2d = _mean_abs(reprojected, px, target_valid) / batch.crop_size
    return {"loss_3d": loss_3d, "loss_2d": loss_2d, "total": lambda_3d * loss_3d + lambda_2d * loss_2d}
