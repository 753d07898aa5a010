"""The training objective for one batch: heatmap + weight_3d·depth + weight_var·bone-ratio loss.

Targets are built on the device from the (already augmented) batch. The heatmap loss applies to
every sample and every stack; the depth loss to 3D samples at their true 2D locations; the
geometric (bone-length-ratio) loss to 2D-only samples, with the true 2D and the predicted depth —
as the seed system does (reference/seed_system.md §4.3), but with missing joints masked.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pose_study.data import codecs
from pose_study.data.transforms import Batch
from pose_study.predict import crop_to_heatmap
from pose_study.train import losses


@dataclass(frozen=True)
class LossWeights:
    """Weights of the three loss terms (the heatmap loss has weight 1)."""

    weight_3d: float = 0.0
    weight_var: float = 0.0


@dataclass
class Targets:
    """Targets in heatmap coordinates for one batch."""

    heatmaps: torch.Tensor  # [B, K, H, W]
    valid_2d: torch.Tensor  # [B, K] annotated and near the map
    coords: torch.Tensor  # [B, K, 2] heatmap px
    depth: torch.Tensor  # [B, K] normalised relative depth
    depth_mask: torch.Tensor  # [B, K]


def build_targets(batch: Batch, map_size: tuple[int, int], sigma: float) -> Targets:
    """Heatmap and depth targets for ``batch``; joints outside the map get no depth supervision."""
    coords = crop_to_heatmap(batch.joints_2d)
    h, w = map_size
    inside = (coords[..., 0] >= 0) & (coords[..., 0] <= w - 1) & (coords[..., 1] >= 0) & (coords[..., 1] <= h - 1)
    heatmaps = codecs.encode_heatmaps(coords, batch.valid_2d, map_size, sigma)
    depth = codecs.encode_depth(batch.joints_3d, batch.intrinsics, batch.crop_size)
    root_ok = batch.valid_3d[:, :1]
    depth_mask = batch.valid_3d & root_ok & inside & batch.is_3d[:, None]
    depth = torch.where(depth_mask, depth, torch.zeros_like(depth))
    return Targets(heatmaps, batch.valid_2d & inside, coords, depth, depth_mask)


def compute_losses(outputs: dict, batch: Batch, weights: LossWeights, sigma: float) -> dict[str, torch.Tensor]:
    """Loss terms and their weighted ``total`` (fp32 scalars) for one batch.

    Every stack of the network is supervised (intermediate supervision); depth and geometric
    terms are summed over stacks too.
    """
    stacks = outputs["stacks"]
    targets = build_targets(batch, tuple(stacks[-1][0].shape[-2:]), sigma)
    zero = stacks[-1][0].new_zeros((), dtype=torch.float32)  # accumulators on the device: no host copy
    terms = {"heatmap": zero, "depth": zero, "bone_ratio": zero}
    for heatmaps, depth_maps in stacks:
        terms["heatmap"] = terms["heatmap"] + losses.heatmap_loss(heatmaps.float(), targets.heatmaps, batch.valid_2d)
        if weights.weight_3d == 0 and weights.weight_var == 0:
            continue
        depth_at_truth = codecs.sample_maps(depth_maps.float(), targets.coords)
        if weights.weight_3d > 0:
            terms["depth"] = terms["depth"] + losses.depth_loss(depth_at_truth, targets.depth, targets.depth_mask)
        if weights.weight_var > 0:
            h = heatmaps.shape[-1]
            terms["bone_ratio"] = terms["bone_ratio"] + losses.bone_ratio_loss(
                targets.coords / h, depth_at_truth, targets.valid_2d, ~batch.is_3d)
    out = {name: v.float() for name, v in terms.items()}
    out["total"] = out["heatmap"] + weights.weight_3d * out["depth"] + weights.weight_var * out["bone_ratio"]
    return out
