"""A graph convolution lifter over the skeleton (after Zhao et al. 2019, SemGCN, kept small).

Each joint is a node carrying its T frames' normalised 2D coordinates and validity flags. A graph
convolution mixes each joint with itself and its skeleton neighbours through the symmetrically
normalised adjacency of ``CANONICAL`` (parents plus self loops), re-weighted by one learnable factor
per edge (SemGCN's semantic edge weights), with separate weights for the joint itself and for its
neighbours. A stem and ``blocks`` residual graph layers of ``width`` channels (each also adding a
linear map of the mean over joints, so that every joint sees the whole pose in one layer) are
followed by a graph convolution to 3 channels per joint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from pose_study.skeletons import CANONICAL, ROOT, Skeleton

if TYPE_CHECKING:
    from pose_study.presets import LifterPreset


def normalised_adjacency(skeleton: Skeleton) -> torch.Tensor:
    """[K, K] ``D^-1/2 (A + I) D^-1/2`` of the skeleton's bones (undirected) with self loops."""
    k = skeleton.num_joints
    adjacency = torch.eye(k)
    for child, parent in skeleton.bones:
        adjacency[child, parent] = adjacency[parent, child] = 1.0
    inv_sqrt = adjacency.sum(1).rsqrt()
    return inv_sqrt[:, None] * adjacency * inv_sqrt[None, :]


class GraphConv(nn.Module):
    """``y = (Â ⊙ E ⊙ I) x W_self + (Â ⊙ E ⊙ (1 − I)) x W_nbr + b`` over [B, K, C] node features.

    Â is the normalised adjacency (a buffer) and E a learnable weight per entry, initialised to 1;
    only the entries on edges and self loops matter, since Â is zero elsewhere.
    """

    def __init__(self, in_channels: int, out_channels: int, adjacency: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("adjacency", adjacency.clone(), persistent=False)
        self.register_buffer("eye", torch.eye(adjacency.shape[0]), persistent=False)
        self.edge_weight = nn.Parameter(torch.ones_like(adjacency))
        self.self_weight = nn.Linear(in_channels, out_channels, bias=False)
        self.neighbour_weight = nn.Linear(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weighted = self.adjacency * self.edge_weight
        own = weighted.diagonal()[:, None]  # [K, 1]
        neighbours = weighted * (1 - self.eye)
        # (x W)ᵀ Nᵀ: one [B·C, K] × [K, K] product (N @ x would run one small product per sample)
        mixed = (self.neighbour_weight(x).transpose(1, 2) @ neighbours.T).transpose(1, 2)
        return own * self.self_weight(x) + mixed


class GraphLayer(nn.Module):
    """GraphConv (+ a linear map of the mean over joints) → BatchNorm over channels → ReLU → Dropout."""

    def __init__(self, in_channels: int, out_channels: int, adjacency: torch.Tensor, dropout: float) -> None:
        super().__init__()
        self.conv = GraphConv(in_channels, out_channels, adjacency)
        self.context = nn.Linear(in_channels, out_channels, bias=False)
        self.norm = nn.BatchNorm1d(out_channels)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x) + self.context(x.mean(1, keepdim=True))
        return self.drop(self.act(self.norm(y.transpose(1, 2)).transpose(1, 2)))


class ResidualGraphLayer(GraphLayer):
    """A ``GraphLayer`` of ``width`` → ``width`` channels with an identity shortcut."""

    def __init__(self, width: int, adjacency: torch.Tensor, dropout: float) -> None:
        super().__init__(width, width, adjacency, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + super().forward(x)


class GraphLifter(nn.Module):
    """Graph convolution lifter on the canonical skeleton.

    Args:
        preset: A ``LifterPreset`` of kind ``graph`` (``width``, ``blocks``, ``frames``, ``dropout``).
        num_joints: K; must be ``CANONICAL.num_joints`` (the graph is the canonical skeleton).
    """

    def __init__(self, preset: LifterPreset, num_joints: int) -> None:
        super().__init__()
        if num_joints != CANONICAL.num_joints:
            raise ValueError(f"graph lifters use the {CANONICAL.name} skeleton of {CANONICAL.num_joints} "
                             f"joints; got num_joints={num_joints}")
        adjacency = normalised_adjacency(CANONICAL)
        self.stem = GraphLayer(preset.frames * 3, preset.width, adjacency, preset.dropout)
        self.blocks = nn.Sequential(*(ResidualGraphLayer(preset.width, adjacency, preset.dropout)
                                      for _ in range(preset.blocks)))
        self.head = GraphConv(preset.width, 3, adjacency)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """[B, T, K, 2] normalised 2D, [B, T, K] bool → [B, K, 3] root-relative metres."""
        mask = valid.to(x.dtype)
        features = torch.cat([x * mask[..., None], mask[..., None]], -1)  # [B, T, K, 3]
        nodes = features.permute(0, 2, 1, 3).flatten(2)  # [B, K, 3T]
        out = self.head(self.blocks(self.stem(nodes)))
        return out - out[:, ROOT : ROOT + 1]
