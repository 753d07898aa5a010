"""Augmentation applied to whole batches on the device: one batched affine resample per batch.

Scale, rotation and horizontal flip are one 2×3 affine per sample, applied to the images with
``grid_sample`` and to the labels with the same matrix, so image and labels cannot drift apart.
A flip also swaps left/right joints (masks travel with their joints, so a missing joint stays
missing — the seed drew phantom heatmaps for flipped missing joints). For 3D samples the crop
intrinsics are updated to ``A @ K`` so ``joints_2d ~ K' @ joints_3d`` still holds, and the 3D
joints are mirrored (x → −x) with the same left/right swap.

Coordinates are crop pixels with pixel centres at integers; normalised coordinates follow
``align_corners=False`` (u = (2x + 1)/S − 1).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pose_study.skeletons import CANONICAL

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class AugmentSpec:
    """Augmentation ranges, as the seed (reference/seed_system.md §2.3).

    Attributes:
        scale: Crop-side jitter: factor = clip(1 + N(0,1)·scale, 1 − scale, 1 + scale).
        rotation_deg: Rotation σ in degrees, clipped at 2σ; applied to 2D samples only (as the seed).
        rotation_prob: Probability that a 2D sample is rotated.
        flip_prob: Probability of a horizontal flip.
        colour: Per-sample colour jitter: each RGB channel is multiplied by U(1 − colour, 1), as Zhou
            et al.'s ``hg3d`` code did with 0.4 (§2.3); 0 (the seed's v2 recipe) draws nothing.
    """

    scale: float = 0.25
    rotation_deg: float = 30.0
    rotation_prob: float = 0.6
    flip_prob: float = 0.5
    colour: float = 0.0

    def __post_init__(self) -> None:
        for name in ("scale", "rotation_prob", "flip_prob", "colour"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"augment.{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.rotation_deg <= 90.0:
            raise ValueError(f"augment.rotation_deg must be in [0, 90], got {self.rotation_deg}")


@dataclass
class Batch:
    """One training/evaluation batch on the device. B samples, K joints, S crop side.

    Attributes:
        images: [B, 3, S, S] float, ImageNet-normalised RGB.
        joints_2d: [B, K, 2] crop pixels.
        valid_2d: [B, K] bool.
        joints_3d: [B, K, 3] camera mm (zeros for 2D-only samples).
        valid_3d: [B, K] bool (all False for 2D-only samples).
        intrinsics: [B, 3, 3] crop-pixel intrinsics (identity for 2D-only samples).
        is_3d: [B] bool, sample carries 3D labels.
    """

    images: torch.Tensor
    joints_2d: torch.Tensor
    valid_2d: torch.Tensor
    joints_3d: torch.Tensor
    valid_3d: torch.Tensor
    intrinsics: torch.Tensor
    is_3d: torch.Tensor

    @property
    def crop_size(self) -> int:
        return self.images.shape[-1]


@functools.lru_cache(maxsize=None)
def normalising_constants(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """1 / (255 std) and mean / std as [1, 3, 1, 1] tensors, made once per device (a copy to a GPU
    from a Python list would sync with it at every step)."""
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    return (1.0 / (255.0 * std)).to(device), (mean / std).to(device)


def normalise_images(images_u8: torch.Tensor) -> torch.Tensor:
    """[B, S, S, 3] uint8 RGB → [B, 3, S, S] float32, ImageNet mean/std (RGB order, unlike the seed)."""
    x = images_u8.permute(0, 3, 1, 2).float().div_(255.0)
    mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def sample_affines(batch_size: int, is_3d: torch.Tensor, spec: AugmentSpec,
                   generator: torch.Generator) -> torch.Tensor:
    """Draw per-sample augmentations as [B, 2, 2] linear maps in normalised coordinates.

    The map sends an input point u_in to the output point u_out = M @ u_in (about the crop centre).
    Random numbers come from ``generator`` (on the CPU) so runs are reproducible and resumable.
    """
    n = torch.randn(batch_size, generator=generator)
    zoom = 1.0 / (1.0 + n * spec.scale).clamp(1.0 - spec.scale, 1.0 + spec.scale)
    angle = (torch.randn(batch_size, generator=generator) * spec.rotation_deg).clamp(
        -2 * spec.rotation_deg, 2 * spec.rotation_deg)
    rotate = (torch.rand(batch_size, generator=generator) < spec.rotation_prob) & ~is_3d.cpu()
    angle = torch.where(rotate, angle, torch.zeros_like(angle)) * (math.pi / 180.0)
    flip = torch.rand(batch_size, generator=generator) < spec.flip_prob
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    mirror = torch.ones(batch_size, 2)
    mirror[:, 0] = torch.where(flip, -1.0, 1.0)
    return torch.diag_embed(mirror) @ rot * zoom.view(-1, 1, 1)


def sample_colours(batch_size: int, spec: AugmentSpec, generator: torch.Generator) -> torch.Tensor | None:
    """[B, 3] per-channel colour factors U(1 − ``spec.colour``, 1), or None (nothing drawn) when off."""
    if spec.colour == 0.0:
        return None
    return 1.0 - spec.colour * torch.rand(batch_size, 3, generator=generator)


def apply_colours(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Multiply each sample's RGB channels, in [0, 1] pixel units, by ``factors`` ([B, 3]).

    ``images`` are ImageNet-normalised NCHW, n = (x − mean)/std, so x·c is n·c + (c − 1)·mean/std.
    """
    c = factors.to(images.device, images.dtype)[:, :, None, None]
    _, mean_over_std = normalising_constants(images.device)
    return images * c + (c - 1) * mean_over_std.to(images.dtype)


def apply_affines(batch: Batch, linear: torch.Tensor) -> Batch:
    """Resample images and transform every label with the per-sample maps from ``sample_affines``."""
    linear = linear.to(batch.images.device)
    s = batch.crop_size
    grid = sampling_grid(torch.linalg.inv(linear), s)
    images = F.grid_sample(batch.images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    pixel = _pixel_affine(linear, s)  # [B, 3, 3] crop px → crop px
    joints_2d = _apply_h(pixel, batch.joints_2d)
    flipped = linear.det() < 0
    # 3D joints of flipped samples are mirrored (x → −x); K' = A·K·diag(−1, 1, 1) keeps
    # joints_2d ~ K'·joints_3d exact for every sample.
    mirror = torch.diag_embed(torch.stack(
        [torch.where(flipped, -1.0, 1.0), torch.ones_like(flipped, dtype=torch.float32),
         torch.ones_like(flipped, dtype=torch.float32)], dim=-1)).to(pixel)
    out = Batch(images, joints_2d, batch.valid_2d, batch.joints_3d, batch.valid_3d,
                pixel @ batch.intrinsics @ mirror, batch.is_3d)
    return _swap_left_right(out, flipped)


def sampling_grid(inverse: torch.Tensor, size: int) -> torch.Tensor:
    """``F.affine_grid`` for [B, 2, 2] maps without translation on a square ``size`` crop
    (``align_corners=False``), built by broadcasting: [B, size, size, 2].

    The values of ``affine_grid`` with a zero translation column (bit for bit on the CPU; tested),
    6-8× faster on one CPU thread: ``affine_grid`` multiplies a [B, S², 3] base grid by the
    matrices with ``bmm``, which is slow for an inner size of 3.
    """
    b = len(inverse)
    base = torch.linspace(-1.0, 1.0, size, device=inverse.device, dtype=inverse.dtype) * (size - 1) / size
    grid = torch.empty((b, size, size, 2), device=inverse.device, dtype=inverse.dtype)
    for row in range(2):  # output coordinate `row` = inverse[row, 0] * x + inverse[row, 1] * y
        torch.add(inverse[:, row, 0].view(b, 1, 1) * base.view(1, 1, size),
                  inverse[:, row, 1].view(b, 1, 1) * base.view(1, size, 1), out=grid[..., row])
    return grid


def _pixel_affine(linear: torch.Tensor, size: int) -> torch.Tensor:
    """Homogeneous [B,3,3] pixel-space affine of a normalised-space linear map about the centre."""
    c = (size - 1) / 2.0
    out = torch.zeros(len(linear), 3, 3, device=linear.device, dtype=linear.dtype)
    out[:, :2, :2] = linear
    out[:, :2, 2] = c - c * linear.sum(dim=-1)  # c - linear @ [c, c], with no host tensor
    out[:, 2, 2] = 1.0
    return out


def _apply_h(affine: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    return points @ affine[:, :2, :2].transpose(1, 2) + affine[:, None, :2, 2]


@functools.lru_cache(maxsize=None)
def _flip_permutation(device: torch.device) -> torch.Tensor:
    """``CANONICAL``'s left/right permutation, copied to each device once."""
    return torch.as_tensor(CANONICAL.flip_permutation()).to(device)


def _swap_left_right(batch: Batch, flipped: torch.Tensor) -> Batch:
    """Swap left/right joint slots (and mirror 3D x) for the flipped samples."""
    perm = _flip_permutation(batch.images.device)
    pick = flipped.view(-1, 1)
    sign = torch.where(flipped, -1.0, 1.0).view(-1, 1, 1)
    mirror3d = torch.cat([batch.joints_3d[..., :1] * sign, batch.joints_3d[..., 1:]], dim=-1)
    batch.joints_2d = torch.where(pick[..., None], batch.joints_2d[:, perm], batch.joints_2d)
    batch.valid_2d = torch.where(pick, batch.valid_2d[:, perm], batch.valid_2d)
    batch.joints_3d = torch.where(pick[..., None], mirror3d[:, perm], batch.joints_3d)
    batch.valid_3d = torch.where(pick, batch.valid_3d[:, perm], batch.valid_3d)
    return batch


def flip_intrinsics_check(batch: Batch) -> torch.Tensor:
    """Max reprojection error (px) of valid 3D joints: ``K @ X`` vs ``joints_2d`` (for tests/asserts)."""
    proj = batch.joints_3d @ batch.intrinsics.transpose(1, 2)
    uv = proj[..., :2] / proj[..., 2:].clamp_min(1e-6)
    err = (uv - batch.joints_2d).norm(dim=-1)
    return torch.where(batch.valid_3d, err, torch.zeros_like(err)).max()
