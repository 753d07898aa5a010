"""APTPose-style sequence lifter (Yang et al.): hierarchical masked encoders, temporal transformer,
padding decoder, temporal aggregator and a learned reprojection module.

* Anatomy-aware encoder. Per frame, four spatial encoding modules (SEMs, one per mask level of
  ``masks.MASK_LEVELS``) embed the K joints (``Linear(2 → d)``, the level's learnable padding
  token where the joint is masked or invalid, plus a learned joint embedding) and keep one
  feature **per joint**: an MLP block that mixes across joints and, per joint, across channels,
  giving F^level ∈ R^{K×d} (d = width / ``JOINT_DIM_DIVISOR``). The four are fused per joint by
  element-wise multiplication (``fusion="add"``: summed, the ablation), flattened (F^H ∈ R^{K·d})
  and embedded as one token per frame; the temporal encoding module (a transformer) runs over the
  frames. With a temporal mask (pre-training), only the unmasked frames enter it.
* Padding decoder (pre-training, and the sequence output of fine-tuning): the encoded frames
  back at their time positions, masked frames filled with a learned temporal padding embedding,
  one transformer block, a linear head: [B, T, K, 3] root-relative metres.
* Temporal aggregator (fine-tuning and inference): strided temporal convolutions (kernel 3,
  stride 3, with the centre of each triplet as residual, as in P-STMO's strided encoder on which
  APTPose builds) fold the T = 3ⁿ encoded frames into one, and a linear head gives the centre
  frame's 3D pose — instead of reading the decoder's centre frame.
* Reprojection: ``reprojection="learned"`` (the paper: "a combination of MLP and residual
  networks") maps each predicted 3D pose to its 2D pose in ``inputs.normalise_2d`` units;
  ``"analytic"`` (the ablation) is :func:`reproject_2d`, the exact camera projection when the
  camera is known and a closed-form weak-perspective fit otherwise.
"""

from __future__ import annotations

import torch
from torch import nn

from pose_study.lifters import inputs
from pose_study.lifters.masks import MASK_LEVELS
from pose_study.skeletons import ROOT

OUT_INIT_STD = 0.01  # output weights: first predictions ≈ 0 m instead of ≈ 1 m off
MIN_DEPTH_MM = 100.0  # reprojected joints are kept this far in front of the camera
JOINT_DIM_DIVISOR = 4  # per-joint feature width d = width / this (keeps the SEMs cheap next to the TEM)
AGGREGATION_STRIDE = 3  # the aggregator folds 3 frames into 1 per stage, so T must be a power of 3


def _head(width: int, out: int) -> nn.Linear:
    """A linear output layer that starts near zero (the mean pose)."""
    head = nn.Linear(width, out)
    nn.init.normal_(head.weight, std=OUT_INIT_STD)
    nn.init.zeros_(head.bias)
    return head


def _transformer(width: int, heads: int, blocks: int, dropout: float) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=2 * width, dropout=dropout,
                                       activation="gelu", batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, blocks, enable_nested_tensor=False)


class _SpatialEncoder(nn.Module):
    """One mask level's SEM: [B, T, K, 2] joints + hidden [B, T, K] → [B, T, K, d] per-joint features."""

    def __init__(self, num_joints: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.embed = nn.Linear(2, dim)
        self.mask_token = nn.Parameter(torch.randn(dim) * 0.02)  # the level's shared padding parameters
        self.joint_embed = nn.Parameter(torch.randn(num_joints, dim) * 0.02)
        self.joint_norm, self.channel_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.joint_mix = nn.Linear(num_joints, num_joints)  # across joints, per channel
        self.channel_mix = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout),
                                         nn.Linear(2 * dim, dim))  # across channels, per joint

    def forward(self, x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        tokens = torch.where(hidden[..., None], self.mask_token, self.embed(x)) + self.joint_embed
        tokens = tokens + self.joint_mix(self.joint_norm(tokens).transpose(-1, -2)).transpose(-1, -2)
        return tokens + self.channel_mix(self.channel_norm(tokens))


class _AggregationStage(nn.Module):
    """[B, T, C] → [B, T/3, C]: a stride-3 temporal convolution plus each triplet's centre frame."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.norm, self.ffn_norm = nn.LayerNorm(width), nn.LayerNorm(width)
        self.conv = nn.Conv1d(width, width, AGGREGATION_STRIDE, stride=AGGREGATION_STRIDE)
        self.ffn = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(2 * width, width))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        centre = frames[:, AGGREGATION_STRIDE // 2 :: AGGREGATION_STRIDE]
        out = centre + self.conv(self.norm(frames).transpose(1, 2)).transpose(1, 2)
        return out + self.ffn(self.ffn_norm(out))


class TemporalAggregator(nn.Module):
    """Encoded frames [B, T, C] (T = 3ⁿ) → the centre frame's pose [B, K, 3] (root-relative metres)."""

    def __init__(self, frames: int, width: int, num_joints: int, dropout: float) -> None:
        super().__init__()
        stages = 0
        while AGGREGATION_STRIDE**stages < frames:
            stages += 1
        if AGGREGATION_STRIDE**stages != frames:
            raise ValueError(f"the apt aggregator folds frames by {AGGREGATION_STRIDE}: frames must be a "
                             f"power of {AGGREGATION_STRIDE} (1, 3, 9, 27, 81, 243), got {frames}")
        self.num_joints = num_joints
        self.stages = nn.Sequential(*(_AggregationStage(width, dropout) for _ in range(stages)))
        self.norm = nn.LayerNorm(width)
        self.head = _head(width, num_joints * 3)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        folded = self.stages(frames)[:, 0]
        pose = self.head(self.norm(folded)).unflatten(-1, (self.num_joints, 3))
        return pose - pose[..., ROOT : ROOT + 1, :]


class LearnedReprojection(nn.Module):
    """The learned reprojection: [..., K, 3] root-relative metres → [..., K, 2] ``normalise_2d`` units.

    A linear embedding, two residual MLP blocks and a linear output, over the whole pose.
    """

    def __init__(self, num_joints: int, width: int, dropout: float, blocks: int = 2) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.embed = nn.Linear(num_joints * 3, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Dropout(dropout),
                          nn.Linear(width, width)) for _ in range(blocks))
        self.out = nn.Linear(width, num_joints * 2)

    def forward(self, pose_m: torch.Tensor) -> torch.Tensor:
        h = self.embed(pose_m.flatten(-2))
        for block in self.blocks:
            h = h + block(h)
        return self.out(h).unflatten(-1, (self.num_joints, 2))


class AptLifter(nn.Module):
    """Masked-pose-modeling sequence lifter.

    ``forward(x [B, T, K, 2], valid [B, T, K]) -> [B, K, 3]`` is the temporal aggregator's centre
    frame; ``x`` is ``inputs.normalise_2d`` of crop-pixel joints, T = ``preset.frames`` (a power of
    3). ``forward(..., sequence=True)`` returns a dict with the decoder's ``sequence`` [B, T, K, 3],
    the aggregator's ``centre`` [B, K, 3] (None under a temporal mask) and ``reprojected`` (the
    learned module's [B, T, K, 2], or None with ``reprojection="analytic"``). Output rows are
    root-relative (the root row is exactly 0).
    """

    def __init__(self, preset, num_joints: int) -> None:
        super().__init__()
        width, self.num_joints, self.num_frames = preset.width, num_joints, preset.frames
        dim = max(1, width // JOINT_DIM_DIVISOR)
        self.fusion = preset.fusion
        self.encoders = nn.ModuleDict({level: _SpatialEncoder(num_joints, dim, preset.dropout)
                                       for level in MASK_LEVELS})
        self.fuse_norm = nn.LayerNorm(dim)
        self.frame_embed = nn.Linear(num_joints * dim, width)
        self.time_embed = nn.Parameter(torch.randn(preset.frames, width) * 0.02)
        self.temporal = _transformer(width, preset.heads, preset.blocks, preset.dropout)
        self.padding = nn.Parameter(torch.randn(width) * 0.02)  # temporal padding embedding of masked frames
        self.decoder_time_embed = nn.Parameter(torch.randn(preset.frames, width) * 0.02)
        self.decoder = _transformer(width, preset.heads, 1, preset.dropout)
        self.decoder_norm = nn.LayerNorm(width)
        self.decoder_head = _head(width, num_joints * 3)
        self.aggregator = TemporalAggregator(preset.frames, width, num_joints, preset.dropout)
        self.reprojector = (LearnedReprojection(num_joints, width, preset.dropout)
                            if preset.reprojection == "learned" else None)

    def _check(self, x: torch.Tensor, masks: dict[str, torch.Tensor] | None,
               temporal_mask: torch.Tensor | None) -> None:
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.num_frames, self.num_joints, 2):
            raise ValueError(f"apt lifter expects x [B, {self.num_frames}, {self.num_joints}, 2], got "
                             f"{tuple(x.shape)}")
        unknown = sorted(set(masks or {}) - set(MASK_LEVELS))
        if unknown:
            raise ValueError(f"unknown mask level(s) {unknown}; choices: {MASK_LEVELS}")
        if temporal_mask is not None:
            counts = temporal_mask.sum(-1)
            if tuple(temporal_mask.shape) != tuple(x.shape[:2]) or (counts != counts[0]).any() or \
                    counts[0] >= self.num_frames:
                raise ValueError(f"temporal_mask must be [B, {self.num_frames}] bool with the same number (< T) "
                                 f"of masked frames per sample (masks.sample_temporal_mask), got "
                                 f"{tuple(temporal_mask.shape)}")

    def _fuse(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Per-joint fusion of the level features [B, T, K, d] → frame tokens [B, T, width]."""
        fused = features[0]
        for feature in features[1:]:
            fused = fused * feature if self.fusion == "multiply" else fused + feature
        return self.frame_embed(self.fuse_norm(fused).flatten(-2))

    def encode(self, x: torch.Tensor, valid: torch.Tensor, masks: dict[str, torch.Tensor] | None = None,
               temporal_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The anatomy-aware encoder: ([B, T', width] encoded frames, [B, T'] their time indices or None).

        T' = T without a temporal mask (indices None), else the unmasked frames in time order.
        """
        self._check(x, masks, temporal_mask)
        missing = ~valid.bool()
        features = [self.encoders[level](x, missing | masks[level] if masks and level in masks else missing)
                    for level in MASK_LEVELS]
        tokens = self._fuse(features) + self.time_embed
        if temporal_mask is None:
            return self.temporal(tokens), None
        keep = self.num_frames - int(temporal_mask[0].sum())
        # the unmasked frames' indices, in time order
        order = torch.sort(temporal_mask.to(torch.int8), dim=1, stable=True).indices[:, :keep]
        kept = tokens.gather(1, order[..., None].expand(-1, -1, tokens.shape[-1]))
        return self.temporal(kept), order

    def decode(self, encoded: torch.Tensor, order: torch.Tensor | None) -> torch.Tensor:
        """The padding decoder: encoded frames (at ``order``) + padding elsewhere → [B, T, K, 3] metres."""
        if order is None:
            full = encoded
        else:
            b, _, width = encoded.shape
            full = self.padding.expand(b, self.num_frames, width).clone()
            full = full.scatter(1, order[..., None].expand(-1, -1, width), encoded)
        frames = self.decoder(full + self.decoder_time_embed)
        pose = self.decoder_head(self.decoder_norm(frames)).unflatten(-1, (self.num_joints, 3))
        return pose - pose[..., ROOT : ROOT + 1, :]

    def forward_sequence(self, x: torch.Tensor, valid: torch.Tensor,
                         masks: dict[str, torch.Tensor] | None = None,
                         temporal_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor | None]:
        """Every output of one pass.

        Args:
            x: [B, T, K, 2] normalised 2D joints.
            valid: [B, T, K] bool; invalid joints get each level's padding token.
            masks: Level → [B, T, K] bool (True = masked) for the levels to mask; levels left out
                (or ``masks=None``) hide only the invalid joints.
            temporal_mask: [B, T] bool (True = frame masked; ``masks.sample_temporal_mask``), or None.

        Returns:
            ``sequence`` [B, T, K, 3] (decoder), ``centre`` [B, K, 3] (aggregator; None under a
            temporal mask, whose encoding has fewer frames) and ``reprojected`` [B, T, K, 2]
            (learned reprojection of ``sequence``, or None), metres / ``normalise_2d`` units.
        """
        encoded, order = self.encode(x, valid, masks, temporal_mask)
        sequence = self.decode(encoded, order)
        centre = self.aggregator(encoded) if order is None else None
        reprojected = self.reprojector(sequence) if self.reprojector is not None else None
        return {"sequence": sequence, "centre": centre, "reprojected": reprojected}

    def forward(self, x: torch.Tensor, valid: torch.Tensor, masks: dict[str, torch.Tensor] | None = None,
                sequence: bool = False, temporal_mask: torch.Tensor | None = None):
        """Centre frame [B, K, 3] from the aggregator (``sequence=True``: :meth:`forward_sequence`'s dict).

        ``masks``, ``temporal_mask`` and ``sequence`` let training go through ``forward`` (so DDP
        wrappers see it).
        """
        if sequence:
            return self.forward_sequence(x, valid, masks, temporal_mask)
        encoded, _ = self.encode(x, valid, masks)
        return self.aggregator(encoded)

    @staticmethod
    def reproject_2d(pred_rel_m: torch.Tensor, joints_2d_px: torch.Tensor, valid: torch.Tensor,
                     root_mm: torch.Tensor | None = None, intrinsics: torch.Tensor | None = None) -> torch.Tensor:
        """See :func:`reproject_2d`."""
        return reproject_2d(pred_rel_m, joints_2d_px, valid, root_mm, intrinsics)


def reproject_2d(pred_rel_m: torch.Tensor, joints_2d_px: torch.Tensor, valid: torch.Tensor,
                     root_mm: torch.Tensor | None = None, intrinsics: torch.Tensor | None = None) -> torch.Tensor:
        """See :func:`reproject_2d`."""
        return reproject_2d(pred_rel_m, joints_2d_px, valid, root_mm, intrinsics)


def reproject_2d(pred_rel_m: torch.Tensor, joints_2d_px: torch.Tensor, valid: torch.Tensor,
                 root_mm: torch.Tensor | None = None, intrinsics: torch.Tensor | None = None) -> torch.Tensor:
    """The analytic reprojection (APTPose's ablation; MPT's 2D loss): a 3D pose back to crop pixels.

    With a camera (``root_mm`` and ``intrinsics``) the pose is placed at the root and projected
    exactly (``inputs.reproject``; depths are kept ≥ ``MIN_DEPTH_MM`` in front of the camera so a
    wild prediction cannot divide by ~0). Without one, the closed-form weak-perspective fit to the
    observed 2D joints is used (``inputs.fit_weak_perspective``), which is what 2D-only data allow.

    Args:
        pred_rel_m: [..., K, 3] root-relative metres.
        joints_2d_px: [..., K, 2] observed joints (used by the weak-perspective fit only).
        valid: [..., K] bool, the joints the fit uses.
        root_mm: [..., 3] root joint in the camera frame, mm, or None.
        intrinsics: [..., 3, 3] crop-pixel pinhole matrix, or None.

    Returns:
        [..., K, 2] crop pixels.
    """
    if (root_mm is None) != (intrinsics is None):
        raise ValueError("reproject_2d needs both root_mm and intrinsics (a camera) or neither")
    if root_mm is None:
        return inputs.fit_weak_perspective(pred_rel_m, joints_2d_px, valid)
    min_z = (MIN_DEPTH_MM - root_mm[..., None, 2:].float()) / inputs.MM_PER_M
    pred = torch.cat([pred_rel_m[..., :2], torch.maximum(pred_rel_m[..., 2:].float(), min_z)], dim=-1)
    return inputs.reproject(pred, root_mm, intrinsics)
