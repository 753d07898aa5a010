"""MPT-style regression transformer (Lin et al.), joints only: heatmap patches + joint queries → 3D.

The K heatmaps [B, K, H, W] are cut into P×P patches (P = ``preset.patch``); each patch (all K
channels) becomes one token through ``Linear(K·P·P → C)`` plus a learned 2D position embedding.
K learned joint query tokens join them, a transformer encoder runs over all tokens, and each joint
token is read out by ``Linear(C → 3)`` as root-relative metres. ``preset.input == "coords"`` (the
ablation) replaces the patch tokens by one token per joint from its normalised 2D coordinates.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pose_study.skeletons import ROOT

OUT_INIT_STD = 0.01  # output weights: first predictions ≈ 0 m instead of ≈ 1 m off
MAX_GRID = 16  # patch rows/columns with their own position embedding; larger grids interpolate it


class MptLifter(nn.Module):
    """Heatmap (or coordinate) tokens and joint queries through a transformer encoder.

    ``forward(x [B, K, H, W], valid [B, K]) -> [B, K, 3]`` (heatmaps; H, W divisible by
    ``preset.patch``), or ``forward(x [B, 1, K, 2], valid [B, 1, K])`` for ``input == "coords"``.
    Invalid joints' heatmaps are zeroed; invalid joints' coordinate tokens are a learned token.
    """

    def __init__(self, preset, num_joints: int) -> None:
        super().__init__()
        width, self.num_joints, self.patch, self.input = preset.width, num_joints, preset.patch, preset.input
        self.queries = nn.Parameter(torch.randn(num_joints, width) * 0.02)
        if self.input == "heatmaps":
            self.patch_embed = nn.Linear(num_joints * self.patch**2, width)
            self.grid_embed = nn.Parameter(torch.randn(MAX_GRID, MAX_GRID, width) * 0.02)
        else:
            self.coord_embed = nn.Linear(2, width)
            self.joint_embed = nn.Parameter(torch.randn(num_joints, width) * 0.02)
            self.missing_token = nn.Parameter(torch.randn(width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, preset.heads, dim_feedforward=2 * width, dropout=preset.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, preset.blocks, enable_nested_tensor=False)
        self.out_norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 3)
        nn.init.normal_(self.head.weight, std=OUT_INIT_STD)  # start near the mean pose (all zeros)
        nn.init.zeros_(self.head.bias)

    def _grid(self, rows: int, cols: int) -> torch.Tensor:
        """[rows·cols, C] position embeddings (the top-left block, interpolated past ``MAX_GRID``)."""
        if rows <= MAX_GRID and cols <= MAX_GRID:
            return self.grid_embed[:rows, :cols].flatten(0, 1)
        grid = F.interpolate(self.grid_embed.permute(2, 0, 1)[None], size=(rows, cols), mode="bilinear",
                             align_corners=True)
        return grid[0].flatten(1).transpose(0, 1)

    def _patch_tokens(self, maps: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        b, k, h, w = maps.shape
        p = self.patch
        if k != self.num_joints or h % p or w % p:
            raise ValueError(f"mpt lifter expects heatmaps [B, {self.num_joints}, H, W] with H, W divisible by "
                             f"patch {p}, got {tuple(maps.shape)}")
        maps = maps.float() * valid.bool()[..., None, None]
        patches = maps.reshape(b, k, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, -1, k * p * p)
        return self.patch_embed(patches) + self._grid(h // p, w // p)

    def _coord_tokens(self, coords: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if coords.ndim != 4 or tuple(coords.shape[1:]) != (1, self.num_joints, 2):
            raise ValueError(f"mpt lifter (coords) expects x [B, 1, {self.num_joints}, 2], got {tuple(coords.shape)}")
        tokens = torch.where(valid.bool()[:, 0, :, None], self.coord_embed(coords[:, 0].float()), self.missing_token)
        return tokens + self.joint_embed

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """[B, K, 3] root-relative metres (the root row is exactly 0)."""
        tokens = self._patch_tokens(x, valid) if self.input == "heatmaps" else self._coord_tokens(x, valid)
        queries = self.queries.expand(x.shape[0], -1, -1)
        out = self.encoder(torch.cat([queries, tokens], dim=1))[:, : self.num_joints]
        pose = self.head(self.out_norm(out))
        return pose - pose[:, ROOT : ROOT + 1]
