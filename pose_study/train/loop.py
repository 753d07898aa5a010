"""The one training loop, used by ``pretrain-2d`` and ``finetune-3d``.

A run is a list of *phases* (e.g. fusion, then fusion + geometric loss), each with its own data
mixture, objective (``pose_study.train.objective``) and learning-rate schedule; the global step
runs across phases. Per step: draw a batch (3D and 2D parts in a fixed proportion), augment it on
the device, forward under autocast (bf16 on CUDA), loss in fp32, backward, clip, step. Validation, logging, checkpoints
and finiteness checks happen every N steps, so the step itself makes no host sync on CUDA.

Resume: a checkpoint (model, optimiser, generator and global RNG states, objective state such as
Dynamic Weight Average history, progress, spec fingerprint) is written every ``checkpoint_every``
steps and at the end; rerunning the same command resumes from it.
SIGTERM (what SLURM sends at a time limit or on preemption) saves a checkpoint and stops with
``TrainingInterrupted``, which the CLI turns into a non-zero exit.

Multi-GPU: under torchrun the same loop runs once per rank (``pose_study.train.distributed``):
the network is wrapped in DDP, each rank draws its own batches from its own generator, progress
counts the samples of all ranks, and only rank 0 validates and writes checkpoints (which hold
every rank's generator state, so a resumed job draws what the uninterrupted one would have).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from pose_study import metrics
from pose_study.data.batches import SplitTensors, concat_batches, random_indices, sequential_batches
from pose_study.data.transforms import AugmentSpec, Batch, apply_affines, sample_affines
from pose_study.predict import predict
from pose_study.train import accounting, distributed
from pose_study.train.accounting import Progress
from pose_study.train.checkpoint import kept, load_checkpoint, model_state, save_checkpoint
from pose_study.train.objective import DepthObjective, LossWeights, Objective, lift_heatmaps

log = logging.getLogger(__name__)
OPTIMIZERS = ("adam", "rmsprop", "sgd")


class TrainingInterrupted(RuntimeError):
    """SIGTERM arrived; a checkpoint was saved and the run can be resumed."""


@dataclass(frozen=True)
class Phase:
    """A stretch of training with one data mixture and one objective.

    Attributes:
        name: Shown in logs and the learning curve (e.g. ``"pretrain_2d"``, ``"fusion"``).
        steps: Optimiser steps in this phase.
        lr: Initial learning rate (a fresh optimiser starts each phase, as the seed's stages did).
        lr_steps: Fractions of the phase after which the LR is multiplied by ``LoopSpec.lr_decay``.
        weights: Loss weights of the default objective (``DepthObjective(weights)``).
        fraction_3d: Share of each batch drawn from the 3D training set (0 = 2D only, 1 = 3D only).
        objective: What the phase optimises; None means ``DepthObjective(weights)``.
    """

    name: str
    steps: int
    lr: float
    lr_steps: tuple[float, ...] = ()
    weights: LossWeights = LossWeights()
    fraction_3d: float = 0.0
    objective: Objective | None = None

    def __post_init__(self) -> None:
        if self.objective is None:
            object.__setattr__(self, "objective", DepthObjective(self.weights))


@dataclass(frozen=True)
class LoopSpec:
    """Settings of the loop shared by both training stages (see config/synthetic.yaml for meanings)."""

    batch_size: int = 32
    sigma: float = 2.0
    optimizer: str = "adam"
    weight_decay: float = 0.0
    lr_decay: float = 0.1
    grad_clip: float | None = None
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    eval_every: int = 100
    eval_samples: int = 256
    log_every: int = 20
    checkpoint_every: int = 100

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {self.batch_size}")


@dataclass
class TrainData:
    """The splits a run reads. ``val`` decides the validation metric (MPJPE if it has 3D)."""

    val: SplitTensors
    train_2d: SplitTensors | None = None
    train_3d: SplitTensors | None = None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use 'auto' or 'cpu'")
    return torch.device(name)


def fingerprint(*parts: object) -> str:
    """A short hash of the run's settings: a checkpoint from other settings is never resumed."""
    text = json.dumps([asdict(p) if hasattr(p, "__dataclass_fields__") else p for p in parts],
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- the loop -------------------------------------------------------------------------------------


def train(model: torch.nn.Module, phases: list[Phase], data: TrainData, spec: LoopSpec,
          checkpoint_dir: Path, flops_per_image: int, prior_flops: float = 0.0,
          run_id: str = "") -> Progress:
    """Train ``model`` through ``phases``; returns the final progress (curve included).

    Args:
        model: On its device already.
        phases: Run in order; the global step continues across them.
        data: Training and validation splits.
        spec: Loop settings.
        checkpoint_dir: Where resume state lives (outside the stage's declared outputs).
        flops_per_image: Forward FLOPs per image, for the curve's compute axis.
        prior_flops: Training FLOPs spent before this run (pre-training), added to ``flops_total``.
        run_id: Fingerprint of everything that defines the run (spec, inputs); see ``fingerprint``.
    """
    info = distributed.current()
    generator = torch.Generator().manual_seed(distributed.rank_seed(spec.seed, info))
    progress, resume = _resume(model, generator, checkpoint_dir, run_id, info, phases)
    depth_unused = any(not p.objective.uses_depth for p in phases)
    net = distributed.wrap(model, info, find_unused=depth_unused)
    net = torch.compile(net) if spec.compile else net
    ctx = _RunContext(net, model, data, spec, checkpoint_dir, flops_per_image, prior_flops, run_id, generator,
                      phases, info)
    with _sigterm_flag() as stop:
        ctx.stop = stop
        first = 0
        for index, phase in enumerate(phases):
            if progress.step < first + phase.steps:
                optimizer = _optimizer(model, phase, spec)
                if resume is not None and resume["phase"] == index:
                    optimizer.load_state_dict(resume["optimizer"])
                _run_phase(ctx, index, phase, first, optimizer, progress)
            first += phase.steps
    return progress


@dataclass
class _RunContext:
    net: torch.nn.Module
    model: torch.nn.Module
    data: TrainData
    spec: LoopSpec
    checkpoint_dir: Path
    flops_per_image: int
    prior_flops: float
    run_id: str
    generator: torch.Generator
    phases: list[Phase]
    info: distributed.DistInfo = distributed.DistInfo()
    stop: dict | None = None


def _run_phase(ctx: _RunContext, index: int, phase: Phase, first: int,
               optimizer: torch.optim.Optimizer, progress: Progress) -> None:
    spec, device = ctx.spec, ctx.data.val.device
    bad = torch.full((), -1, dtype=torch.long, device=device)  # first non-finite step, on device
    names = phase.objective.terms
    bad_terms = torch.zeros(len(names), device=device)
    running, window, window_start = torch.zeros((), device=device), 0, time.perf_counter()
    t0 = window_start
    sync_every = 1 if device.type == "cpu" else spec.log_every
    last = first + phase.steps
    while progress.step < last:
        _set_lr(optimizer, phase, progress.step - first, spec.lr_decay)
        batch = draw_batch(ctx.data, spec, phase, ctx.generator)
        terms = train_step(ctx.net, ctx.model, optimizer, batch, phase.objective, spec, ctx.generator)
        step_t = torch.full((), progress.step, dtype=torch.long, device=device)  # a fill, not a copy
        finite = torch.isfinite(terms["total"])
        newly_bad = (bad < 0) & ~finite
        bad = torch.where(newly_bad, step_t, bad)
        bad_terms = torch.where(newly_bad, torch.stack([terms[n] for n in names]), bad_terms)
        running += torch.where(finite, terms["total"], torch.zeros_like(terms["total"]))
        progress.step += 1
        window += 1
        progress.samples += len(batch.is_3d) * ctx.info.world_size
        now = time.perf_counter()
        progress.seconds += now - t0
        t0 = now
        at_sync = progress.step % sync_every == 0 or progress.step == last
        if at_sync:
            _raise_if_bad(_agreed_bad(bad, ctx.info), dict(zip(names, bad_terms)), ctx.checkpoint_dir)
        if progress.step % spec.log_every == 0 or progress.step == last:
            if ctx.info.is_main:
                _log_step(phase, progress, last, running.item() / window,
                          spec.batch_size * ctx.info.world_size * window / max(now - window_start, 1e-9))
            running.zero_()
            window, window_start = 0, time.perf_counter()
        if (progress.step % spec.eval_every == 0 or progress.step == last) and ctx.info.is_main:
            _record_validation(ctx, phase, progress, float(terms["total"]))
            t0 = time.perf_counter()
        stop = _agreed_stop(ctx, at_sync, device)
        if progress.step % spec.checkpoint_every == 0 or progress.step == last or stop:
            _save(ctx, index, optimizer, progress)
        if stop:
            raise TrainingInterrupted(f"SIGTERM at step {progress.step}; checkpoint saved in "
                                      f"{ctx.checkpoint_dir}; rerun the same command to resume")


def train_step(net: torch.nn.Module, model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: Batch,
               objective: Objective | LossWeights, spec: LoopSpec,
               generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """One optimiser step on ``batch``; returns the detached loss terms (no host sync).

    Args:
        net: What runs the forward (``model``, or its DDP / compiled wrapper).
        model: The plain module (gradient clipping).
        optimizer: Steps ``model``'s parameters.
        batch: An augmented batch on the device.
        objective: The current phase's objective (loss weights mean ``DepthObjective(weights)``).
        spec: Loop settings (AMP, channels_last, sigma, grad_clip).
        generator: The loop's generator, for objectives that draw random numbers.
    """
    if isinstance(objective, LossWeights):
        objective = DepthObjective(objective)
    net.train()
    images = batch.images.contiguous(memory_format=torch.channels_last) if spec.channels_last else batch.images
    with _autocast(batch.images.device, spec.amp):
        outputs = net(images)
    terms = objective(outputs, batch, spec.sigma, generator)
    optimizer.zero_grad(set_to_none=True)
    terms["total"].backward()
    if spec.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
    optimizer.step()
    return {k: v.detach() for k, v in terms.items()}


def draw_batch(data: TrainData, spec: LoopSpec, phase: Phase, generator: torch.Generator) -> Batch:
    """An augmented batch whose first part comes from the 3D set and the rest from the 2D set.

    Draws the indices, then the augmentations, from ``generator`` (in that order). The 3D flags
    and the affine maps are built on the host and sent non-blocking, so nothing here waits for
    the device.
    """
    b = spec.batch_size
    n3 = int(round(b * phase.fraction_3d))
    parts, flags = [], []
    for source, count in ((data.train_3d, n3), (data.train_2d, b - n3)):
        if count == 0:
            continue
        if source is None:
            raise ValueError(f"phase {phase.name!r} needs {'3D' if source is data.train_3d else '2D'} "
                             "training data, but none was given")
        parts.append(source.gather(random_indices(len(source), count, generator)))
        flags.append(torch.full((count,), source.has_3d))
    batch = concat_batches(parts)
    affines = sample_affines(b, torch.cat(flags), spec.augment, generator)
    return apply_affines(batch, affines.to(batch.images.device, non_blocking=True))


def _agreed_bad(bad: torch.Tensor, info: distributed.DistInfo) -> torch.Tensor:
    """The first non-finite step, as every rank sees it (any rank's NaN stops all ranks)."""
    if not info.enabled:
        return bad
    bad = bad.clone()
    torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
    return bad


def _agreed_stop(ctx: _RunContext, at_sync: bool, device: torch.device) -> bool:
    """SIGTERM seen: every step for one process; for several ranks, agreed at sync points."""
    if not ctx.info.enabled:
        return ctx.stop["flag"]
    return at_sync and distributed.any_rank(ctx.stop["flag"], ctx.info, device)


# --- validation -----------------------------------------------------------------------------------


def validate(model: torch.nn.Module, val: SplitTensors, max_samples: int, batch_size: int,
             lifter: torch.nn.Module | None = None, beta: float = 100.0) -> tuple[str, float]:
    """Validation metric on an evenly spaced subset of ``val``: (name, value), lower is better.

    3D splits: MPJPE in mm (root-relative; from the depth maps with the GT root depth, or, given
    a ``lifter``, from the lifter fed with the detector's last heatmaps — ``lift_heatmaps``).
    2D splits: mean 2D error in crop pixels.
    """
    model.eval()
    index = torch.from_numpy(np.unique(np.linspace(0, len(val) - 1, min(max_samples, len(val))).astype(np.int64)))
    preds, gts, valids = [], [], []
    for chunk in sequential_batches(len(index), batch_size):
        batch = val.gather(index[chunk])
        if val.has_3d:
            joints_3d = predict(model, batch).joints_3d if lifter is None else _lifted_mm(model, lifter, batch, beta)
            preds.append(joints_3d.cpu().numpy()), gts.append(batch.joints_3d.cpu().numpy())
            valids.append(batch.valid_3d.cpu().numpy())
        else:
            preds.append(predict(model, batch).joints_2d.cpu().numpy()), gts.append(batch.joints_2d.cpu().numpy())
            valids.append(batch.valid_2d.cpu().numpy())
    pred, gt, valid = (np.concatenate(x) for x in (preds, gts, valids))
    if val.has_3d:
        return "mpjpe_mm", float(metrics.mpjpe(pred, gt, valid).value)
    err = np.linalg.norm(pred - gt, axis=-1)
    return "error_2d_px", float(err[valid].mean()) if valid.any() else float("nan")


@torch.no_grad()
def _lifted_mm(model: torch.nn.Module, lifter: torch.nn.Module, batch: Batch, beta: float) -> torch.Tensor:
    """[B, K, 3] root-relative mm: ``lifter`` on the detector's last heatmaps (eval mode is the caller's)."""
    return lift_heatmaps(lifter, model(batch.images)["heatmaps"].float(), beta).float() * 1000.0


def _record_validation(ctx: _RunContext, phase: Phase, progress: Progress, loss: float) -> None:
    name, value = validate(ctx.model, ctx.data.val, ctx.spec.eval_samples, ctx.spec.batch_size,
                           phase.objective.val_lifter, phase.objective.beta)
    log.info("step %d validation %s = %.3f", progress.step, name, value)
    progress.curve.append(accounting.curve_row(phase.name, progress, ctx.flops_per_image, ctx.prior_flops,
                                               loss, name, value))


# --- helpers --------------------------------------------------------------------------------------


def _optimizer(model: torch.nn.Module, phase: Phase, spec: LoopSpec) -> torch.optim.Optimizer:
    params = model.parameters()
    if spec.optimizer == "adam":
        return torch.optim.Adam(params, lr=phase.lr, weight_decay=spec.weight_decay)
    if spec.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=phase.lr, alpha=0.99, eps=1e-8, weight_decay=spec.weight_decay)
    return torch.optim.SGD(params, lr=phase.lr, momentum=0.9, weight_decay=spec.weight_decay)


def _set_lr(optimizer: torch.optim.Optimizer, phase: Phase, local_step: int, decay: float) -> None:
    drops = sum(local_step >= math.ceil(f * phase.steps) for f in phase.lr_steps)
    for group in optimizer.param_groups:
        group["lr"] = phase.lr * decay**drops


def _autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _raise_if_bad(bad: torch.Tensor, bad_terms: dict[str, torch.Tensor], checkpoint_dir: Path) -> None:
    step = int(bad)
    if step >= 0:
        values = " ".join(f"{name}={float(v):.4g}" for name, v in bad_terms.items())
        raise FloatingPointError(
            f"non-finite loss at step {step + 1}: {values}; "
            f"{kept(checkpoint_dir)} (lower the learning rate or set grad_clip)")


def _log_step(phase: Phase, progress: Progress, last: int, loss: float, img_per_s: float) -> None:
    log.info("step %d/%d [%s] loss %.5f  %.1f img/s  %.0f s", progress.step, last, phase.name, loss,
             img_per_s, progress.seconds)


def _save(ctx: _RunContext, phase_index: int, optimizer: torch.optim.Optimizer, progress: Progress) -> None:
    """Rank 0 writes the checkpoint (every rank takes part: the generator states are gathered)."""
    rngs = distributed.gather_objects((ctx.generator.get_state(), _global_rng()), ctx.info)
    if not ctx.info.is_main:
        return
    generators = [g for g, _ in rngs]
    state = {"run_id": ctx.run_id, "phase": phase_index, "model": model_state(ctx.model),
             "optimizer": optimizer.state_dict(), "generator": generators[0],
             "global_rng": [r for _, r in rngs], "objectives": [p.objective.state_dict() for p in ctx.phases],
             "progress": progress.state()}
    if ctx.info.enabled:
        state["generators"] = generators
    save_checkpoint(ctx.checkpoint_dir, state)


def _global_rng() -> dict[str, torch.Tensor]:
    """torch's global RNG states (dropout in trainable lifters draws from them)."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_global_rng(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"])


def _resume(model: torch.nn.Module, generator: torch.Generator, checkpoint_dir: Path, run_id: str,
            info: distributed.DistInfo = distributed.DistInfo(), phases: list[Phase] = ()
            ) -> tuple[Progress, dict | None]:
    state = load_checkpoint(checkpoint_dir)
    if state is None:
        return Progress(), None
    if state.get("run_id") != run_id:
        log.warning("checkpoint in %s belongs to other settings; starting afresh", checkpoint_dir)
        return Progress(), None
    model.load_state_dict(state["model"])
    generators = state.get("generators") or [state["generator"]]
    if len(generators) != info.world_size:
        raise ValueError(f"checkpoint in {checkpoint_dir} holds {len(generators)} rank(s), this job has "
                         f"{info.world_size}; resume with the same number of processes")
    generator.set_state(generators[info.rank])
    if "global_rng" in state:
        _set_global_rng(state["global_rng"][info.rank])
    for phase, objective_state in zip(phases, state.get("objectives", ())):
        phase.objective.load_state_dict(objective_state)
    progress = Progress.from_state(state["progress"])
    log.info("resuming from checkpoint %s at step %d", checkpoint_dir, progress.step)
    return progress, state


@contextlib.contextmanager
def _sigterm_flag() -> Iterator[dict]:
    """Within the block, SIGTERM sets ``flag`` instead of killing the process."""
    flag = {"flag": False}

    def handler(signum, frame):  # noqa: ARG001 - signal handler signature
        log.warning("SIGTERM received: saving a checkpoint and stopping")
        flag["flag"] = True

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: no handler (tests, notebooks)
        yield flag
        return
    try:
        yield flag
    finally:
        signal.signal(signal.SIGTERM, previous)
