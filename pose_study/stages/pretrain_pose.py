"""Stage ``pretrain_pose``: pre-training a lifter from poses alone (no images).

* ``apt`` lifters (APTPose, Yang et al.): hierarchical masked pose modeling on 2D pose sequences of
  the 3D training split (or of the pose-only sets, below), with temporal masking
  (``temporal_mask_ratio`` of the frames hidden from the encoder, filled by the padding decoder)
  (``lifters.pretraining.apt_pretrain_loss``: λ_3D · 3D reconstruction + λ_2D · reprojection,
  learned or analytic per the lifter's ``reprojection`` option). With ``--train-2d`` datasets, half
  of every batch are 2D-only images made into short sequences by repetition with noise and jitter
  (``sequences_from_images``), supervised by reprojection only.
* ``mpt`` lifters (MPT, Lin et al.): Gaussian heatmaps synthesised from the 3D training poses (or the
  pose-only sets') through virtual cameras (the paper's 4 fixed ones, or random), with masked
  joints, noise and jitter (``mpt_pretrain_loss``), at the detector's heatmap σ (the plan gives
  every pose stage's loop ``finetune_3d.loop.heatmap_sigma``, ``plan.Plan.detector_heatmap_sigma``).

Pose-only sets (``--train-pose``, repeatable; the study's ``train_pose`` role: motion capture without
images, e.g. a synthetic ``mocap`` pool, CMU mocap or AMASS) replace ``--train-3d`` as the source of
the 3D poses; they are pooled. They have no camera: ``apt`` sequences are seen through one virtual
camera each (``pretraining.view_sequences``, ``virtual_cameras`` as MPT's), ``mpt`` poses go through
MPT's virtual cameras as usual; both at the crop size of the validation split.

Validation: MPJPE (mm, root-relative) on the validation split from ground-truth 2D (apt: windows of
the split's clips; mpt: Gaussian heatmaps of σ = ``loop.heatmap_sigma`` at the ground-truth joints).
Outputs as ``train_lifter``: ``model.pt`` (``lifters.save_lifter``), ``metrics.json`` (stage
``pretrain_pose``), ``curve.csv``, ``spec.json``; resume state in ``--checkpoint-dir``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pose_study import lifters
from pose_study._spec import load_spec_arg
from pose_study.data.batches import random_indices
from pose_study.data.formats import check_split, read_info
from pose_study.data.poses import PoseData
from pose_study.data.poses import PoseBatch
from pose_study.lifters.masks import MASK_LEVELS
from pose_study.lifters.pretraining import VIRTUAL_CAMERAS
from pose_study.stages import _training
from pose_study.stages._pose_training import freeze_options, pose_loop, sampler, setup, train_and_write
from pose_study.train import checkpoint
from pose_study.train.lifting import PoseTask
from pose_study.train.loop import LoopSpec

KINDS = ("apt", "mpt")  # the lifter kinds this stage pre-trains


@dataclass(frozen=True)
class PretrainPoseSpec:
    """Resolved settings of one pose pre-training run.

    Attributes:
        lifter: Preset name of kind ``apt`` or ``mpt`` (``pose_study.lifters.LIFTERS``).
        steps: Optimiser steps.
        lr: Initial Adam learning rate (MPT: 2e-4, the paper's; APTPose states none).
        lr_steps: Fractions of ``steps`` after which the LR drops ×``loop.lr_decay``.
        mask_levels: APTPose mask levels in use (``lifters.masks.MASK_LEVELS``; empty: no masking).
        mask_ratio: Share of joints masked (APTPose levels; MPT masked-joint modeling).
        temporal_mask_ratio: Share of each window's frames hidden from the APTPose encoder (filled
            by the padding decoder); APTPose does not state a value, 0.5 here.
        lambda_3d: Weight of the 3D reconstruction loss.
        lambda_2d: Weight of the 2D reprojection loss.
        noise_px: Gaussian noise on every 2D joint of the input sequences (apt), crop px.
        jitter_px: σ of the per-frame shift of image sequences (apt) or the per-joint peak shift of
            synthetic heatmaps (mpt), crop px.
        virtual_cameras: MPT's cameras (``lifters.pretraining.VIRTUAL_CAMERAS``): ``fixed``, the
            paper's 4 Human3.6M S1 cameras, or ``random`` (any yaw, pitch ± 30°, 3–6 m).
        heatmap_noise: σ of the additive per-pixel noise on synthetic heatmaps of peak 1 (mpt).
        options: Lifter ablation options (``lifters.OPTIONS``) as sorted (key, value) pairs.
        loop: Loop settings (``batch_size``: samples, sequences for apt, per step; ``heatmap_sigma``:
            Gaussian σ of the synthetic and validation heatmaps of mpt lifters, heatmap px: the plan
            gives it the detector's σ, so zero-shot input looks like pre-training input).
    """

    lifter: str
    steps: int = 2000
    lr: float = 2e-4
    lr_steps: tuple[float, ...] = (0.75,)
    mask_levels: tuple[str, ...] = MASK_LEVELS
    mask_ratio: float = 0.3
    temporal_mask_ratio: float = 0.5
    lambda_3d: float = 1.0
    lambda_2d: float = 0.5
    noise_px: float = 1.0
    jitter_px: float = 2.0
    virtual_cameras: str = "fixed"
    heatmap_noise: float = 0.05
    options: tuple[tuple[str, Any], ...] = ()
    loop: LoopSpec = field(default_factory=pose_loop)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", freeze_options(self.options, "PretrainPoseSpec"))
        object.__setattr__(self, "mask_levels", tuple(self.mask_levels))
        preset = lifters.resolve_preset(self.lifter, dict(self.options))
        if preset.kind not in KINDS:
            raise ValueError(f"pretrain_pose pre-trains lifters of kind {KINDS}; {self.lifter!r} is {preset.kind!r}")
        unknown = sorted(set(self.mask_levels) - set(MASK_LEVELS))
        if unknown:
            raise ValueError(f"unknown mask level(s) {unknown}; choices: {list(MASK_LEVELS)}")
        if not 0 <= self.mask_ratio <= 1:
            raise ValueError(f"mask_ratio must be in [0, 1], got {self.mask_ratio}")
        if not 0 <= self.temporal_mask_ratio < 1:
            raise ValueError(f"temporal_mask_ratio must be in [0, 1), got {self.temporal_mask_ratio}")
        if self.steps < 1:
            raise ValueError(f"steps must be ≥ 1, got {self.steps}")
        if min(self.lambda_3d, self.lambda_2d, self.noise_px, self.jitter_px, self.heatmap_noise) < 0:
            raise ValueError("lambda_3d, lambda_2d, noise_px, jitter_px and heatmap_noise must be ≥ 0")
        if self.virtual_cameras not in VIRTUAL_CAMERAS:
            raise ValueError(f"virtual_cameras must be one of {VIRTUAL_CAMERAS}, got {self.virtual_cameras!r}")

    @property
    def kind(self) -> str:
        return lifters.resolve_preset(self.lifter, dict(self.options)).kind


# --- losses and samplers --------------------------------------------------------------------------


def apt_loss(spec: PretrainPoseSpec):
    """``(model, batch, generator) -> terms``: APTPose masked pose modeling."""

    def loss(model: nn.Module, batch: PoseBatch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        from pose_study.lifters import pretraining

        return pretraining.apt_pretrain_loss(model, batch, levels=spec.mask_levels, ratio=spec.mask_ratio,
                                             lambda_3d=spec.lambda_3d, lambda_2d=spec.lambda_2d, generator=generator,
                                             temporal_ratio=spec.temporal_mask_ratio)

    return loss


def mpt_loss(spec: PretrainPoseSpec):
    """``(model, batch, generator) -> terms``: MPT heatmaps from 3D poses through virtual cameras (fixed or random)."""

    def loss(model: nn.Module, batch: PoseBatch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        from pose_study.lifters import pretraining

        return pretraining.mpt_pretrain_loss(model, batch, mask_ratio=spec.mask_ratio,
                                             sigma=spec.loop.heatmap_sigma, jitter_px=spec.jitter_px,
                                             noise_std=spec.heatmap_noise, lambda_3d=spec.lambda_3d,
                                             lambda_2d=spec.lambda_2d, generator=generator,
                                             cameras=spec.virtual_cameras)

    return loss


def mixed_sampler(spec: PretrainPoseSpec, from_3d, images: PoseData, frames: int):
    """Half of every batch from the 3D sequences (the sampler ``from_3d``), half from 2D images made into
    ``frames``-long sequences.

    The images' frames get jitter here; per-joint noise (``noise_px``) comes from the loop, as for
    the 3D sequences.
    """

    def sample(batch_size: int, generator: torch.Generator) -> PoseBatch:
        from pose_study.lifters import pretraining

        n3 = batch_size - batch_size // 2
        single = images.gather(random_indices(len(images), batch_size - n3, generator))
        made = pretraining.sequences_from_images(single, frames, 0.0, spec.jitter_px, generator)
        return concat_pose_batches([from_3d(n3, generator), made])

    return sample


def concat_pose_batches(batches: list[PoseBatch]) -> PoseBatch:
    """One batch of the samples of ``batches`` (same frames and crop size)."""
    sizes = {b.crop_size for b in batches}
    if len(sizes) != 1:
        raise ValueError(f"batches of different crop sizes {sorted(sizes)} cannot be mixed")
    names = ("joints_2d", "valid_2d", "joints_3d", "valid_3d", "intrinsics", "is_3d")
    return PoseBatch(*(torch.cat([getattr(b, n) for b in batches]) for n in names), sizes.pop())


def concat_pose_data(parts: list[PoseData]) -> PoseData:
    """Several splits as one (2D-only image pools, pooled pose-only sets); keeps the first split's info.

    Windows (splits loaded with ``frames`` > 1) are kept, shifted to the pooled rows.
    """
    if len({p.crop_size for p in parts}) != 1:
        raise ValueError(f"datasets of different crop sizes {sorted({p.crop_size for p in parts})}")
    if len({p.frames for p in parts}) != 1:
        raise ValueError(f"datasets loaded with different window lengths {sorted({p.frames for p in parts})}")
    names = ("joints_2d", "valid_2d", "joints_3d", "valid_3d", "intrinsics", "is_3d")
    windows = None
    if parts[0].windows is not None:
        offsets = [sum(len(q) for q in parts[:i]) for i in range(len(parts))]
        windows = torch.cat([p.windows + offset for p, offset in zip(parts, offsets)])
    columns = (torch.cat([getattr(p, n) for p in parts]) for n in names)
    return PoseData(parts[0].info, *columns, parts[0].crop_size, windows)


def viewed_sampler(spec: PretrainPoseSpec, poses: PoseData, frames: int, crop_size: int):
    """Pose-only ``frames``-long sequences through one virtual camera each, at ``crop_size`` (apt)."""
    draw = sampler(poses, frames)

    def sample(batch_size: int, generator: torch.Generator) -> PoseBatch:
        from pose_study.lifters import pretraining

        sequences = draw(batch_size, generator)
        return pretraining.view_sequences(sequences, crop_size, generator, spec.virtual_cameras)

    return sample


def load_poses(train_3d: Path | None, train_pose: list[Path], device: torch.device, frames: int,
               crop_size: int) -> PoseData:
    """The training poses: the pose-only sets pooled (at ``crop_size``, the validation split's), else
    the 3D training split."""
    if not train_pose:
        if train_3d is None:
            raise ValueError("pretrain_pose needs its poses: --train-3d (a 3D training split) or "
                             "--train-pose (pose-only sets)")
        return PoseData.load(train_3d, device, frames)
    parts = [replace(PoseData.load(p, device, frames), crop_size=crop_size) for p in train_pose]
    pooled = concat_pose_data(parts)
    if not pooled.has_3d:
        raise ValueError(f"pretrain_pose: the pose-only sets {[str(p) for p in train_pose]} hold no 3D poses")
    return pooled


# --- the stage ------------------------------------------------------------------------------------


def run(spec: PretrainPoseSpec, train_3d: Path | None, val_3d: Path, train_2d: list[Path] | None,
        out: _training.TrainOutputs, train_pose: list[Path] | None = None) -> dict:
    """Pre-train ``spec.lifter``; returns the metrics written to ``out.metrics``.

    ``train_pose`` (pose-only sets), when given, replaces ``train_3d`` as the source of the poses.
    """
    train_pose = list(train_pose or [])
    if not train_pose and train_3d is not None:
        check_split(train_3d, "--train-3d", needs_3d=True)
    check_split(val_3d, "--val-3d", needs_3d=True)
    for path in train_pose:
        check_split(path, "--train-pose", needs_3d=True)
    for path in train_2d or []:
        check_split(path, "--train-2d")
    checkpoint.claim_folder(out.checkpoint_dir)
    device = setup(spec.loop)
    model = lifters.build_lifter(spec.lifter, options=dict(spec.options)).to(device)
    frames = model.frames
    val = PoseData.load(val_3d, device, frames)
    train = load_poses(train_3d, train_pose, device, frames if spec.kind == "apt" else 1, val.crop_size)
    if not train.has_3d or not val.has_3d:
        raise ValueError(f"pretrain_pose needs 3D labels in both splits: {train_3d} and {val_3d}")
    images = [PoseData.load(p, device) for p in train_2d or []]
    if spec.kind == "apt":
        poses = viewed_sampler(spec, train, frames, val.crop_size) if train_pose else sampler(train, frames)
        sample = mixed_sampler(spec, poses, concat_pose_data(images), frames) if images else poses
        loss, noise = apt_loss(spec), spec.noise_px
    else:
        sample, loss, noise = sampler(train, 1), mpt_loss(spec), 0.0  # mpt: noise goes on the heatmaps
    task = PoseTask(loss, sample, val, spec.loop, noise)
    identity = {"inputs": _training.input_identity(train, val, *images),
                "poses": [str(Path(p).name) for p in train_pose]}
    extra = {"dataset_3d": val.info.dataset, "datasets_2d": [p.info.dataset for p in images],
             "datasets_pose": sorted({read_info(p).dataset for p in train_pose}),
             "pose_samples": len(train)}
    return train_and_write("pretrain_pose", spec, model, task, identity, out, None, extra)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", required=True, help="PretrainPoseSpec as inline JSON or a spec.json path")
    parser.add_argument("--train-3d", type=Path,
                        help="3D training split (.h5): the poses (without --train-pose)")
    parser.add_argument("--train-pose", type=Path, action="append", default=[],
                        help="pose-only split (.h5), repeatable: the poses, pooled, instead of --train-3d")
    parser.add_argument("--val-3d", type=Path, required=True, help="3D validation split (.h5)")
    parser.add_argument("--train-2d", type=Path, action="append", default=[],
                        help="2D training split (.h5), repeatable: extra 2D-only sequences (apt lifters)")
    _training.add_output_arguments(parser)


def main(args: argparse.Namespace) -> None:
    run(load_spec_arg(PretrainPoseSpec, args.spec), args.train_3d, args.val_3d, args.train_2d,
        _training.outputs_from_args(args), args.train_pose)
