"""Training losses (reference/seed_system.md §4.3), vectorised and computed in fp32.

Each loss casts its inputs to float32 and disables autocast, so it is exact under bf16
autocast; none loops over samples or joints. Two seed bugs are fixed: missing joints are masked
out of the heatmap loss, and the bone-ratio loss uses only bones whose endpoints are annotated.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from pose_study.skeletons import CANONICAL

DEPTH_EPS = 1e-4  # seed: divide by (number of supervised joints + 1e-4)
LENGTH_EPS = 1e-12  # inside the bone-length sqrt: finite gradient for a zero-length bone

SHANK_WEIGHT = 1.0085885098415446  # seed VarLoss: thigh ≈ 1.0086 × shank
FOREARM_WEIGHT = 1.1375361376887123  # seed VarLoss: upper arm ≈ 1.1375 × forearm


def _bone(a: str, b: str, weight: float = 1.0) -> tuple[int, int, float]:
    return CANONICAL.index(a), CANONICAL.index(b), weight


# Seed VarLoss bone groups (MPII indices in §4.3) mapped onto CANONICAL (H36M-17) joints; the
# weighted 3D lengths within a group should be equal. MPII upper-neck ≈ H36M neck.
BONE_GROUPS: dict[str, tuple[tuple[int, int, float], ...]] = {
    "legs": (_bone("r_ankle", "r_knee", SHANK_WEIGHT), _bone("r_knee", "r_hip"),
             _bone("l_hip", "l_knee"), _bone("l_knee", "l_ankle", SHANK_WEIGHT)),
    "arms": (_bone("r_wrist", "r_elbow", FOREARM_WEIGHT), _bone("r_elbow", "r_shoulder"),
             _bone("l_shoulder", "l_elbow"), _bone("l_elbow", "l_wrist", FOREARM_WEIGHT)),
    "hips": (_bone("r_hip", "pelvis"), _bone("l_hip", "pelvis")),
    "shoulders": (_bone("r_shoulder", "neck"), _bone("l_shoulder", "neck")),
}


def fp32(fn: Callable) -> Callable:
    """Run ``fn`` with floating tensor arguments cast to float32 and autocast disabled."""

    def cast(value: object) -> object:
        return value.float() if isinstance(value, torch.Tensor) and value.is_floating_point() else value

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> torch.Tensor:
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        device_type = tensors[0].device.type if tensors else "cpu"
        with torch.autocast(device_type=device_type, enabled=False):
            return fn(*map(cast, args), **{k: cast(v) for k, v in kwargs.items()})

    return wrapper


@fp32
def heatmap_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """MSE over the maps of annotated joints only.

    Args:
        pred: [B, K, H, W] predicted heatmaps.
        target: [B, K, H, W] target heatmaps (``codecs.encode_heatmaps``).
        valid: [B, K] bool, False for missing joints (their maps contribute nothing).

    Returns:
        Scalar: mean over valid joint maps of the per-pixel mean squared error; 0 if none valid.
    """
    per_map = (pred - target).pow(2).mean(dim=(2, 3))  # [B, K]
    mask = valid.float()
    return (per_map * mask).sum() / mask.sum().clamp(min=1.0)


@fp32
def depth_loss(pred_depth: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 (β = 1) on depth read at the joints, normalised by the supervised joint count.

    Args:
        pred_depth: [B, K] predicted depth at the GT 2D joints (``codecs.sample_maps``).
        target: [B, K] depth targets (``codecs.encode_depth``).
        mask: [B, K] bool, True where depth is supervised.

    Returns:
        Scalar: Σ_masked smoothL1 / (number of masked entries + 1e-4), as the seed.
    """
    mask = mask.bool()
    # Unsupervised entries become 0 vs 0: no loss, no gradient, and NaN targets there are harmless.
    pred = torch.where(mask, pred_depth, 0.0)
    target = torch.where(mask, target, 0.0)
    per_joint = F.smooth_l1_loss(pred, target, reduction="none", beta=1.0)
    return per_joint.sum() / (mask.sum() + DEPTH_EPS)


@functools.lru_cache(maxsize=8)
def _bone_tables(device: torch.device) -> tuple[torch.Tensor, ...]:
    """(parent index [N], child index [N], weight [N], one-hot group [N, G]) over all bones."""
    bones = [(a, b, w, g) for g, group in enumerate(BONE_GROUPS.values()) for a, b, w in group]
    a, b, w, g = zip(*bones)
    as_long = functools.partial(torch.tensor, dtype=torch.long, device=device)
    one_hot = F.one_hot(as_long(g), num_classes=len(BONE_GROUPS)).float()
    return as_long(a), as_long(b), torch.tensor(w, device=device), one_hot


@fp32
def bone_ratio_loss(joints_2d_norm: torch.Tensor, depth: torch.Tensor, valid: torch.Tensor,
                    sample_is_2d: torch.Tensor) -> torch.Tensor:
    """The seed's geometric (VarLoss) loss on 2D-only samples.

    Per sample and bone group (``BONE_GROUPS``), over bones with both endpoints valid:
    l_j = w_j · ‖(Δx, Δy, Δz)‖, E = mean(l_j) (treated as a constant, as the seed's hand-written
    gradient), loss = Σ (l_j - E)² / (2 · num_bones). Summed over groups and 2D-only samples, then
    divided by the batch size B (3D samples included). The gradient flows only into ``depth``.

    Args:
        joints_2d_norm: [B, K, 2] GT joints in heatmap pixels divided by the heatmap side.
        depth: [B, K] predicted depth read at the GT joints (``codecs.sample_maps``).
        valid: [B, K] bool, annotated joints.
        sample_is_2d: [B] bool, True for samples without 3D labels.

    Returns:
        Scalar, ≥ 0.
    """
    a, b, weight, groups = _bone_tables(depth.device)
    xyz = torch.cat([joints_2d_norm.detach(), depth[..., None]], dim=-1)  # [B, K, 3]
    length = weight * ((xyz[:, a] - xyz[:, b]).pow(2).sum(-1) + LENGTH_EPS).sqrt()  # [B, N]
    used = (valid[:, a] & valid[:, b]).float()  # [B, N]
    count = (used @ groups).clamp(min=1.0)  # [B, G]
    mean = ((length * used) @ groups / count).detach()  # [B, G]
    spread = (length - mean @ groups.T).pow(2) * used  # [B, N]
    per_sample = ((spread @ groups) / (2 * count)).sum(-1)  # [B]
    return (per_sample * sample_is_2d.float()).sum() / depth.shape[0]


def over_stacks(stacks: Sequence[tuple[torch.Tensor, torch.Tensor]],
                loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Intermediate supervision: Σ over stacks of ``loss(heatmaps, depth)``.

    Args:
        stacks: The model output's ``stacks``: (heatmaps, depth) per stack.
        loss: Loss of one stack's outputs, e.g. ``lambda hm, d: heatmap_loss(hm, target, valid)``.
    """
    return torch.stack([loss(heatmaps, depth) for heatmaps, depth in stacks]).sum()
