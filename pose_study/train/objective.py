"""Training objectives for one batch, one per ``arms.OBJECTIVES`` entry.

* ``DepthObjective`` (Zhou et al.): heatmap + weight_3d·depth + weight_var·bone-ratio loss.
  Targets are built on the device from the (already augmented) batch. The heatmap loss applies
  to every sample and every stack; the depth loss to 3D samples at their true 2D locations; the
  geometric (bone-length-ratio) loss to 2D-only samples, with the true 2D and the predicted depth
  — as the seed system does (reference/seed_system.md §4.3), but with missing joints masked.
* ``HeatmapObjective``: the heatmap loss only (``ft_2d``, ``apt_pose``).
* ``GuidedObjective`` (L2D-Pose): λ_H·heatmap + λ_O·OHKLM + the 3D losses of frozen lifters fed
  with the soft-argmax of the last stack's heatmaps, on the batch's 3D samples (heatmap terms at
  the public code's ½·MSE scale, ``guidance``); with several lifters, λ_single times that (3D
  terms weighted by Dynamic Weight Average, with lifter dropout) + λ_local·local + λ_global·global
  (``guidance.multi_lifter_loss``, the paper's eq. 8).
* ``EndToEndObjective`` (MPT): heatmap + λ·L1 of a trainable heatmap lifter's 3D, which runs
  inside the network (``DetectorWithLifter``) so one optimiser, checkpoint and DDP wrapper serve both.

An objective returns its terms (``terms``, in order, plus ``total``) as fp32 scalars; the loop
logs them and names them when one is not finite. State (DWA history) goes into the checkpoint
through ``state_dict``/``load_state_dict``. Random numbers (lifter dropout) come from the loop's
generator, so a resumed run draws what the uninterrupted one would have.

The augmentation keeps the ground-truth relative 3D a valid target: 3D samples are never
rotated, flips mirror x with a left/right swap, and zoom changes only the 2D scale, which
``lifters.inputs.normalise_2d`` removes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pose_study.data import codecs
from pose_study.data.transforms import Batch
from pose_study.lifters.inputs import normalise_2d, relative_3d
from pose_study.predict import crop_to_heatmap, heatmap_to_crop
from pose_study.skeletons import ROOT
from pose_study.train import guidance, losses
from pose_study.train.guidance import GuidanceSpec


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


# --- objectives -----------------------------------------------------------------------------------


class Objective:
    """What a phase optimises. Subclasses set the class attributes and implement ``__call__``.

    Attributes:
        name: Names the phase of the lifter arms (``arms.OBJECTIVES``).
        terms: Loss terms returned besides ``total``, in the order the NaN message lists them.
        uses_depth: Reads the depth maps (else DDP must look for unused parameters).
        val_lifter: Validates through this lifter (MPJPE from the detector's soft-argmax 2D), or
            None for the network's own 3D.
        val_windows: [N, T] rows of each validation sample's window (``data.poses.sequence_windows``)
            when ``val_lifter`` is a T-frame sequence lifter, else None.
        beta: Soft-argmax sharpness of the lifter input.
    """

    name: str = ""
    terms: tuple[str, ...] = ()
    uses_depth: bool = False
    val_lifter: nn.Module | None = None
    val_windows: torch.Tensor | None = None
    beta: float = 100.0

    def __call__(self, outputs: dict, batch: Batch, sigma: float,
                 generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Loss terms and ``total`` for ``outputs`` of the network on ``batch``."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:  # noqa: ARG002 - stateless by default
        return None


class DepthObjective(Objective):
    """Zhou et al.'s loss: heatmap + weight_3d·depth + weight_var·bone-ratio (``compute_losses``)."""

    name = "depth"
    terms = ("heatmap", "depth", "bone_ratio")

    def __init__(self, weights: LossWeights = LossWeights()) -> None:
        self.weights = weights
        self.uses_depth = weights.weight_3d != 0 or weights.weight_var != 0

    def __call__(self, outputs, batch, sigma, generator=None):
        return compute_losses(outputs, batch, self.weights, sigma)


class HeatmapObjective(Objective):
    """The heatmap loss alone; ``val_lifter`` (frozen) only scores the detector in 3D."""

    name = "heatmap"
    terms = ("heatmap",)

    def __init__(self, val_lifter: nn.Module | None = None, beta: float = 100.0,
                 val_windows: torch.Tensor | None = None) -> None:
        self.val_lifter, self.beta, self.val_windows = val_lifter, beta, val_windows

    def __call__(self, outputs, batch, sigma, generator=None):
        stacks = outputs["stacks"]
        targets = build_targets(batch, tuple(stacks[-1][0].shape[-2:]), sigma)
        heatmap = stacked_heatmap_loss(stacks, targets, batch.valid_2d)
        return {"heatmap": heatmap, "total": heatmap}


class GuidedObjective(Objective):
    """L2D-Pose: heatmap, OHKLM and 3D losses through frozen lifters (one, or several with DWA).

    Args:
        lifters: Frozen single-frame ``coords`` lifters (``freeze``); the first scores validation.
        spec: Loss weights and settings.
    """

    name = "guided"

    def __init__(self, lifters: list[nn.Module], spec: GuidanceSpec) -> None:
        if not lifters:
            raise ValueError("the guided objective needs at least one lifter")
        for lifter in lifters:
            if lifter.input_kind != "coords" or lifter.frames != 1:
                raise ValueError(f"guide lifter {lifter.preset_name!r} must take single-frame coords "
                                 f"(has input {lifter.input_kind!r}, {lifter.frames} frames)")
        self.lifters, self.spec, self.beta = list(lifters), spec, spec.beta
        self.val_lifter = self.lifters[0]
        self.multi = len(self.lifters) > 1
        self.dwa = guidance.DynamicWeightAverage(len(self.lifters), spec.dwa_temperature)
        self.terms = ("heatmap", "ohklm", "xy", "z") + (("single", "local", "global") if self.multi else ())

    def __call__(self, outputs, batch, sigma, generator=None):
        s, stacks = self.spec, outputs["stacks"]
        targets = build_targets(batch, tuple(stacks[-1][0].shape[-2:]), sigma)
        preds = [lift_heatmaps(lifter, stacks[-1][0], self.beta) for lifter in self.lifters]
        target, valid = target_3d(batch)
        if self.multi:
            if generator is None:
                raise ValueError("the multi-lifter objective needs the loop's generator (lifter dropout)")
            keep = guidance.lifter_dropout(len(preds), s.lifter_dropout, generator)
            out = guidance.multi_lifter_loss(preds, target, valid, self.dwa.weights(), keep, s.lambda_xy, s.lambda_z,
                                             s.lambda_local, s.lambda_global)
            self.dwa.update(out.pop("per_lifter"))
            lifted, consistency, errors = out["single"], out.pop("consistency"), out.pop("joint_errors")
        else:
            xy, z, errors = guidance.lifted_3d_losses(preds[0], target, valid)
            out, lifted, consistency = {"xy": xy, "z": z}, s.lambda_xy * xy + s.lambda_z * z, 0.0
        hard = targets.valid_2d & valid
        ohklm = s.heatmap_factor * sum(guidance.ohklm_loss(h.float(), targets.heatmaps, hard, errors, s.top_k)
                                       for h, _ in stacks)
        heatmap = s.heatmap_factor * stacked_heatmap_loss(stacks, targets, batch.valid_2d)
        single = s.lambda_heatmap * heatmap + s.lambda_ohklm * ohklm + lifted
        total = s.lambda_single * single + consistency if self.multi else single
        return {"heatmap": heatmap, "ohklm": ohklm, **out, "total": total}

    def state_dict(self) -> dict:
        return {"dwa": self.dwa.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.dwa.load_state_dict(state["dwa"])


class EndToEndObjective(Objective):
    """Heatmap loss + λ·L1 of the trainable lifter's 3D (``outputs["lifted"]``, ``DetectorWithLifter``).

    Args:
        lifter: The trainable lifter inside the network (also scores validation).
        lambda_3d: Weight of the L1 term.
        beta: Soft-argmax sharpness, for a ``coords`` lifter.
    """

    name = "end_to_end"
    terms = ("heatmap", "lift_l1")

    def __init__(self, lifter: nn.Module, lambda_3d: float, beta: float = 100.0) -> None:
        self.val_lifter, self.lambda_3d, self.beta = lifter, lambda_3d, beta

    def __call__(self, outputs, batch, sigma, generator=None):
        stacks = outputs["stacks"]
        targets = build_targets(batch, tuple(stacks[-1][0].shape[-2:]), sigma)
        heatmap = stacked_heatmap_loss(stacks, targets, batch.valid_2d)
        target, valid = target_3d(batch)
        mask = valid.float()
        l1 = ((outputs["lifted"].float() - target).abs().sum(-1) * mask).sum() / (3 * mask.sum().clamp(min=1.0))
        return {"heatmap": heatmap, "lift_l1": l1, "total": heatmap + self.lambda_3d * l1}


class DetectorWithLifter(nn.Module):
    """A detector and a trainable lifter fed with its last heatmaps, as one network.

    ``forward`` returns the detector's outputs plus ``lifted`` ([B, K, 3] metres), so the
    optimiser, checkpoints, DDP and ``predict`` treat the pair like any detector.
    """

    def __init__(self, detector: nn.Module, lifter: nn.Module, beta: float = 100.0) -> None:
        super().__init__()
        self.detector, self.lifter, self.beta = detector, lifter, beta

    def forward(self, images: torch.Tensor) -> dict:
        out = self.detector(images)
        return {**out, "lifted": lift_heatmaps(self.lifter, out["heatmaps"], self.beta)}


def freeze(lifter: nn.Module, device: torch.device) -> nn.Module:
    """``lifter`` on ``device`` in eval mode with ``requires_grad`` off: gradients pass through it
    to its input (the detector) but never change it."""
    return lifter.to(device).eval().requires_grad_(False)


def lift_heatmaps(lifter: nn.Module, heatmaps: torch.Tensor, beta: float = 100.0) -> torch.Tensor:
    """[B, K, 3] metres: ``lifter`` applied to a detector's heatmaps [B, K, H, W], differentiably.

    ``heatmaps`` lifters take the maps; ``coords`` lifters take ``soft_argmax(beta)`` → crop
    pixels → ``normalise_2d`` (every joint counts as detected).
    """
    valid = torch.ones(heatmaps.shape[:2], dtype=torch.bool, device=heatmaps.device)
    if lifter.input_kind == "heatmaps":
        return lifter(heatmaps, valid)
    coords = heatmap_to_crop(codecs.soft_argmax(heatmaps, beta))
    return lifter(normalise_2d(coords[:, None], valid[:, None]), valid[:, None])


def target_3d(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Root-relative 3D targets in metres [B, K, 3] and their mask [B, K] (3D samples, valid root)."""
    valid = batch.valid_3d & batch.valid_3d[:, ROOT : ROOT + 1] & batch.is_3d[:, None]
    return relative_3d(batch.joints_3d, valid), valid


def stacked_heatmap_loss(stacks: list, targets: Targets, valid: torch.Tensor) -> torch.Tensor:
    """The heatmap loss of annotated joints (``valid`` [B, K]) summed over every stack."""
    return sum(losses.heatmap_loss(h.float(), targets.heatmaps, valid) for h, _ in stacks)
