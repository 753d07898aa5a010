"""From network output to joints: 2D in crop pixels and 3D in camera millimetres.

2D comes from the heatmaps (argmax with sub-pixel refinement), the relative depth is read from
joint k's depth map at the predicted 2D location, and the pose is back-projected with the
sample's crop intrinsics and the **ground-truth root depth** (as image-based methods evaluated on
H36M do: the absolute distance to the camera is not predicted). Results are then root-relative.

Heatmap pixel i covers crop pixels [s·i, s·i + s), so its centre is crop pixel s·i + (s − 1)/2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pose_study.data import codecs
from pose_study.data.transforms import Batch
from pose_study.skeletons import CANONICAL, ROOT

STRIDE = 4  # every preset outputs heatmaps at 1/4 of the input resolution


def crop_to_heatmap(points: torch.Tensor, stride: int = STRIDE) -> torch.Tensor:
    """Crop pixel coordinates → heatmap pixel coordinates (pixel centres at integers in both)."""
    return (points + 0.5) / stride - 0.5


def heatmap_to_crop(points: torch.Tensor, stride: int = STRIDE) -> torch.Tensor:
    """Heatmap pixel coordinates → crop pixel coordinates."""
    return (points + 0.5) * stride - 0.5


@dataclass
class Prediction:
    """Predicted joints for a batch. B samples, K joints.

    Attributes:
        joints_2d: [B, K, 2] crop pixels.
        confidence: [B, K] heatmap maxima.
        depth: [B, K] normalised relative depth as the network outputs it (codecs.encode_depth units).
        joints_3d: [B, K, 3] camera mm with the ground-truth root depth (NaN where unknown).
    """

    joints_2d: torch.Tensor
    confidence: torch.Tensor
    depth: torch.Tensor
    joints_3d: torch.Tensor


@torch.no_grad()
def network_maps(model: torch.nn.Module, images: torch.Tensor, flip_test: bool = False
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Heatmaps and depth maps ([B, K, H, W] each, fp32); with ``flip_test`` averaged with the
    flipped image's maps mapped back (left/right channels swapped, width mirrored)."""
    out = model(images)
    heatmaps, depth = out["heatmaps"].float(), out["depth"].float()
    if flip_test:
        perm = torch.as_tensor(CANONICAL.flip_permutation(), device=images.device)
        flipped = model(images.flip(-1))
        heatmaps = (heatmaps + codecs.flip_back(flipped["heatmaps"].float(), perm)) / 2
        depth = (depth + codecs.flip_back(flipped["depth"].float(), perm)) / 2
    return heatmaps, depth


def back_project(joints_2d: torch.Tensor, depth: torch.Tensor, batch: Batch) -> torch.Tensor:
    """[B, K, 3] camera mm from crop-pixel 2D, normalised depth and the GT root depth.

    Z_k = Z_root + decode_depth(depth)_k, then [X, Y, Z] = Z · K⁻¹ [u, v, 1].
    """
    root_z = batch.joints_3d[:, ROOT, 2]
    root_z = torch.where(batch.valid_3d[:, ROOT], root_z, torch.full_like(root_z, float("nan")))
    z = root_z[:, None] + codecs.decode_depth(depth, root_z, batch.intrinsics, batch.crop_size)
    ones = torch.ones_like(joints_2d[..., :1])
    rays = torch.cat([joints_2d, ones], -1) @ torch.linalg.inv(batch.intrinsics).transpose(1, 2)
    return rays * z[..., None]


@torch.no_grad()
def predict(model: torch.nn.Module, batch: Batch, flip_test: bool = False) -> Prediction:
    """Predict 2D and 3D joints for ``batch`` (model in eval mode is the caller's job)."""
    heatmaps, depth_maps = network_maps(model, batch.images, flip_test)
    coords, confidence = codecs.decode_heatmaps(heatmaps)
    depth = codecs.sample_maps(depth_maps, coords)
    joints_2d = heatmap_to_crop(coords)
    return Prediction(joints_2d, confidence, depth, back_project(joints_2d, depth, batch))


@torch.no_grad()
def lift_ground_truth_2d(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """[B, K, 3] mm: the model's depth read at the *true* 2D joints, back-projected.

    Scoring this separates depth error from 2D localisation error.
    """
    _, depth_maps = network_maps(model, batch.images)
    depth = codecs.sample_maps(depth_maps, crop_to_heatmap(batch.joints_2d))
    return back_project(batch.joints_2d, depth, batch)
