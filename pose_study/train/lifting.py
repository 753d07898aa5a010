"""The pose-only training loop: lifters trained on 2D/3D joints without images.

Used by ``train-lifter`` and ``pretrain-pose``. Per step: set the learning rate, draw a batch
(``sample(batch_size, generator)``), flip half of it left/right and add Gaussian noise to its 2D
joints (``augment``), compute the loss terms (``loss(model, batch, generator)``, a dict with
``"total"``), backward, clip, Adam step. Every random draw comes from one CPU ``torch.Generator``
and the global RNG (dropout) is reseeded from (seed, step) each step, so a resumed run is
bit-identical to an uninterrupted one.

The guarantees of the detector loop (``pose_study.train.loop``) hold here too: a checkpoint
(model, optimiser, generator, progress, run fingerprint) every ``checkpoint_every`` steps and at
the end; SIGTERM saves one and raises ``TrainingInterrupted``; a non-finite loss raises
``FloatingPointError`` naming the step and the terms before any checkpoint could hold it;
validation (MPJPE in mm from ground-truth 2D) every ``eval_every`` steps goes into the learning
curve with the compute so far.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pose_study import metrics
from pose_study.data.codecs import encode_heatmaps
from pose_study.data.poses import PoseData
from pose_study.lifters.batch import PoseBatch
from pose_study.lifters.inputs import normalise_2d, relative_3d
from pose_study.predict import STRIDE, crop_to_heatmap
from pose_study.skeletons import CANONICAL
from pose_study.train import accounting
from pose_study.train.accounting import Progress
from pose_study.train.checkpoint import kept, load_checkpoint, model_state, save_checkpoint
from pose_study.train.loop import TrainingInterrupted, _sigterm_flag

log = logging.getLogger(__name__)

LossFn = Callable[[nn.Module, PoseBatch, torch.Generator], dict[str, torch.Tensor]]
Sampler = Callable[[int, torch.Generator], PoseBatch]
Validator = Callable[[nn.Module], tuple[str, float]]
EVAL_BATCH = 1024


@dataclass(frozen=True)
class PoseLoopSpec:
    """Loop settings shared by the pose-only stages (``pose_loop`` in the study schema).

    Attributes:
        seed: Seeds the initial weights, the batch generator and dropout.
        device: ``auto``, ``cpu`` or ``cuda[:i]``.
        eval_every: Validate (and add a learning-curve row) every N steps and at the end.
        eval_samples: Evenly spaced validation samples per validation.
        log_every: Log the running loss every N steps.
        checkpoint_every: Write resume state every N steps and at the end.
        grad_clip: Maximum gradient norm, or None.
        lr_decay: Factor applied to the LR at each of the schedule's ``lr_steps``.
    """

    seed: int = 0
    device: str = "auto"
    eval_every: int = 200
    eval_samples: int = 512
    log_every: int = 100
    checkpoint_every: int = 500
    grad_clip: float | None = 1.0
    lr_decay: float = 0.1

    def __post_init__(self) -> None:
        for name in ("eval_every", "eval_samples", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be > 0 or None, got {self.grad_clip}")


@dataclass(frozen=True)
class Schedule:
    """What is trained how long.

    Attributes:
        name: Phase name in logs and the learning curve (the stage name).
        steps: Optimiser steps.
        lr: Initial Adam learning rate.
        lr_steps: Fractions of ``steps`` after which the LR is multiplied by ``PoseLoopSpec.lr_decay``.
        batch_size: Samples (sequences for sequence lifters) per step.
        noise_px: Standard deviation of the Gaussian noise added to the 2D joints (crop px).
        flip: Mirror a random half of every batch left/right.
    """

    name: str
    steps: int
    lr: float
    lr_steps: tuple[float, ...] = ()
    batch_size: int = 256
    noise_px: float = 0.0
    flip: bool = True


# --- augmentation ---------------------------------------------------------------------------------


def flip_batch(batch: PoseBatch, flip: torch.Tensor) -> PoseBatch:
    """Mirror the samples where ``flip`` ([B] bool) is True: 2D about the crop centre, 3D x → −x.

    Left and right joints swap (``CANONICAL.flip_permutation``) and the intrinsics of 3D samples
    change so that the flipped 2D joints stay the projection of the flipped 3D joints.
    """
    perm = torch.as_tensor(CANONICAL.flip_permutation(), device=batch.joints_2d.device)
    last = batch.crop_size - 1.0  # pixel centres at integers: x ↦ (S − 1) − x
    mirror = torch.tensor([[-1.0, 0.0, last], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], device=batch.intrinsics.device)
    negate_x = torch.tensor([-1.0, 1.0, 1.0], device=batch.intrinsics.device)
    j2 = batch.joints_2d[:, :, perm] * torch.tensor([-1.0, 1.0], device=batch.joints_2d.device)
    j2 = j2 + torch.tensor([last, 0.0], device=j2.device)
    j3 = batch.joints_3d[:, :, perm] * negate_x
    k = mirror @ batch.intrinsics * negate_x  # K' = F K diag(-1, 1, 1)
    f2, f3 = flip[:, None, None, None], flip[:, None, None]
    camera = (flip & batch.is_3d)[:, None, None, None]  # 2D-only samples keep their identity intrinsics
    return PoseBatch(torch.where(f2, j2, batch.joints_2d), torch.where(f3, batch.valid_2d[:, :, perm], batch.valid_2d),
                     torch.where(f2, j3, batch.joints_3d), torch.where(f3, batch.valid_3d[:, :, perm], batch.valid_3d),
                     torch.where(camera, k, batch.intrinsics), batch.is_3d, batch.crop_size)


def augment(batch: PoseBatch, noise_px: float, flip: bool, generator: torch.Generator) -> PoseBatch:
    """Random left/right flips (p = 0.5 per sample), then Gaussian noise on the 2D joints.

    Draws the flips, then the noise, from ``generator`` (on the host), so the draws do not depend
    on the device.
    """
    device = batch.joints_2d.device
    if flip:
        flags = torch.rand(len(batch.is_3d), generator=generator) < 0.5
        batch = flip_batch(batch, flags.to(device, non_blocking=True))
    if noise_px > 0:
        noise = torch.randn(batch.joints_2d.shape, generator=generator) * noise_px
        batch = PoseBatch(batch.joints_2d + noise.to(device, non_blocking=True), batch.valid_2d, batch.joints_3d,
                          batch.valid_3d, batch.intrinsics, batch.is_3d, batch.crop_size)
    return batch


# --- lifter inputs and targets --------------------------------------------------------------------


def lifter_inputs(model: nn.Module, batch: PoseBatch, heatmap_sigma: float = 0.75) -> tuple[torch.Tensor, torch.Tensor]:
    """The lifter's input for ``batch``: normalised coords [B, T, K, 2] (T = ``model.frames``), or
    Gaussian heatmaps of the centre frame's 2D joints [B, K, S/4, S/4] for heatmap lifters."""
    if model.input_kind == "heatmaps":
        centre = batch.centre()
        size = batch.crop_size // STRIDE
        joints = crop_to_heatmap(centre.joints_2d[:, 0])
        return encode_heatmaps(joints, centre.valid_2d[:, 0], size, heatmap_sigma), centre.valid_2d[:, 0]
    if batch.frames != model.frames:
        t0 = (batch.frames - model.frames) // 2
        batch = PoseBatch(*(getattr(batch, n)[:, t0:t0 + model.frames] for n in
                            ("joints_2d", "valid_2d", "joints_3d", "valid_3d", "intrinsics")),
                          batch.is_3d, batch.crop_size)
    return normalise_2d(batch.joints_2d, batch.valid_2d), batch.valid_2d


def centre_targets(batch: PoseBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Root-relative 3D joints of the centre frame in metres [B, K, 3] and their validity [B, K]."""
    centre = batch.centre()
    return relative_3d(centre.joints_3d[:, 0], centre.valid_3d[:, 0]), centre.valid_3d[:, 0]


def masked_mse(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the coordinates of valid joints (0 when none is valid)."""
    weight = valid.unsqueeze(-1).to(pred.dtype).expand_as(pred)
    return ((pred - target) ** 2 * weight).sum() / weight.sum().clamp(min=1.0)


def centre_mse_loss(model: nn.Module, batch: PoseBatch,
                    generator: torch.Generator) -> dict[str, torch.Tensor]:  # noqa: ARG001
    """The single-frame lifter loss: MSE (metres) of the centre frame's root-relative 3D joints."""
    x, valid = lifter_inputs(model, batch)
    target, target_valid = centre_targets(batch)
    pose = masked_mse(model(x, valid), target, target_valid)
    return {"total": pose, "pose": pose}


# --- validation -----------------------------------------------------------------------------------


def validate_lifter(model: nn.Module, val: PoseData, max_samples: int, heatmap_sigma: float = 0.75,
                    batch_size: int = EVAL_BATCH) -> tuple[str, float]:
    """MPJPE (mm, root-relative) from ground-truth 2D on an evenly spaced subset of ``val``."""
    index = torch.from_numpy(np.unique(np.linspace(0, len(val) - 1, min(max_samples, len(val))).astype(np.int64)))
    was_training = model.training
    model.eval()
    preds, gts, valids = [], [], []
    with torch.no_grad():
        for start in range(0, len(index), batch_size):
            batch = val.gather(index[start:start + batch_size])
            x, valid = lifter_inputs(model, batch, heatmap_sigma)
            centre = batch.centre()
            preds.append((model(x, valid) * 1000.0).float().cpu().numpy())
            gts.append(centre.joints_3d[:, 0].cpu().numpy())
            valids.append(centre.valid_3d[:, 0].cpu().numpy())
    model.train(was_training)
    pred, gt, valid = (np.concatenate(a) for a in (preds, gts, valids))
    return "mpjpe_mm", float(metrics.mpjpe(pred, gt, valid).value)


# --- the loop -------------------------------------------------------------------------------------


@dataclass
class PoseTraining:
    """Everything one pose-only run needs besides its schedule and loop settings.

    Attributes:
        model: The lifter, on its device.
        loss: ``(model, batch, generator) -> {"total": ..., ...}``.
        sample: ``(batch_size, generator) -> PoseBatch`` (un-augmented).
        validate: ``(model) -> (metric name, value)``, lower is better.
        flops_per_sample: Forward FLOPs per sample (one training sample costs 3×).
        prior_flops: Training FLOPs spent before this run (pre-training), for ``flops_total``.
        run_id: Fingerprint of the run's settings and inputs; other checkpoints are not resumed.
    """

    model: nn.Module
    loss: LossFn
    sample: Sampler
    validate: Validator
    flops_per_sample: int
    prior_flops: float = 0.0
    run_id: str = ""


def train_poses(run: PoseTraining, schedule: Schedule, loop: PoseLoopSpec, checkpoint_dir: Path) -> Progress:
    """Train ``run.model`` for ``schedule.steps`` steps (resuming from ``checkpoint_dir``); returns the progress."""
    model = run.model
    generator = torch.Generator().manual_seed(loop.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=schedule.lr)
    progress = _resume(run, optimizer, generator, checkpoint_dir)
    device = next(model.parameters()).device
    forked = [device] if device.type == "cuda" else []
    with _sigterm_flag() as stop, torch.random.fork_rng(devices=forked):
        running, window, t0 = 0.0, 0, time.perf_counter()
        while progress.step < schedule.steps:
            terms = _step(run, schedule, loop, optimizer, generator, progress.step)
            _raise_if_bad(terms, progress.step, checkpoint_dir)
            progress.step += 1
            progress.samples += schedule.batch_size
            now = time.perf_counter()
            progress.seconds += now - t0
            t0 = now
            running, window = running + float(terms["total"]), window + 1
            last = progress.step == schedule.steps
            if progress.step % loop.log_every == 0 or last:
                log.info("step %d/%d [%s] loss %.5f  %.0f s", progress.step, schedule.steps, schedule.name,
                         running / window, progress.seconds)
                running, window = 0.0, 0
            if progress.step % loop.eval_every == 0 or last:
                _record_validation(run, schedule, progress, float(terms["total"]))
                t0 = time.perf_counter()
            if progress.step % loop.checkpoint_every == 0 or last or stop["flag"]:
                _save(run, optimizer, generator, progress, checkpoint_dir)
            if stop["flag"] and not last:
                raise TrainingInterrupted(f"SIGTERM at step {progress.step}; checkpoint saved in {checkpoint_dir}; "
                                          "rerun the same command to resume")
    return progress


def _step(run: PoseTraining, schedule: Schedule, loop: PoseLoopSpec, optimizer: torch.optim.Optimizer,
          generator: torch.Generator, step: int) -> dict[str, torch.Tensor]:
    """One optimiser step; returns the detached loss terms."""
    torch.manual_seed(loop.seed * 1_000_003 + step)  # dropout: a function of (seed, step), so resume is exact
    _set_lr(optimizer, schedule, step, loop.lr_decay)
    batch = augment(run.sample(schedule.batch_size, generator), schedule.noise_px, schedule.flip, generator)
    run.model.train()
    terms = run.loss(run.model, batch, generator)
    if not bool(torch.isfinite(terms["total"])):
        return {k: v.detach() for k, v in terms.items()}
    optimizer.zero_grad(set_to_none=True)
    terms["total"].backward()
    if loop.grad_clip:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), loop.grad_clip)
    optimizer.step()
    return {k: v.detach() for k, v in terms.items()}


def _set_lr(optimizer: torch.optim.Optimizer, schedule: Schedule, step: int, decay: float) -> None:
    drops = sum(step >= math.ceil(f * schedule.steps) for f in schedule.lr_steps)
    for group in optimizer.param_groups:
        group["lr"] = schedule.lr * decay**drops


def _raise_if_bad(terms: dict[str, torch.Tensor], step: int, checkpoint_dir: Path) -> None:
    if bool(torch.isfinite(terms["total"])):
        return
    text = " ".join(f"{k}={float(v):.4g}" for k, v in terms.items())
    raise FloatingPointError(f"non-finite loss at step {step + 1}: {text}; {kept(checkpoint_dir)} "
                             "(lower the learning rate or set grad_clip)")


def _record_validation(run: PoseTraining, schedule: Schedule, progress: Progress, loss: float) -> None:
    name, value = run.validate(run.model)
    log.info("step %d validation %s = %.3f", progress.step, name, value)
    progress.curve.append(accounting.curve_row(schedule.name, progress, run.flops_per_sample, run.prior_flops,
                                               loss, name, value))


def _save(run: PoseTraining, optimizer: torch.optim.Optimizer, generator: torch.Generator, progress: Progress,
          checkpoint_dir: Path) -> None:
    save_checkpoint(checkpoint_dir, {"run_id": run.run_id, "model": model_state(run.model),
                                     "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
                                     "progress": progress.state()})


def _resume(run: PoseTraining, optimizer: torch.optim.Optimizer, generator: torch.Generator,
            checkpoint_dir: Path) -> Progress:
    state = load_checkpoint(checkpoint_dir)
    if state is None:
        return Progress()
    if state.get("run_id") != run.run_id:
        log.warning("checkpoint in %s belongs to other settings; starting afresh", checkpoint_dir)
        return Progress()
    run.model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    progress = Progress.from_state(state["progress"])
    log.info("resuming from checkpoint %s at step %d", checkpoint_dir, progress.step)
    return progress
