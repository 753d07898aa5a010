"""The one training loop, used by every training stage: ``pretrain_2d`` and ``finetune_3d``
(detectors, ``pose_study.train.detection``) and ``train_lifter`` and ``pretrain_pose`` (lifters
trained on poses alone, ``pose_study.train.lifting``).

A run is a list of *phases*, each a ``Task`` (what to draw, what to minimise, how to validate)
trained for some steps under its own learning-rate schedule (``LRSchedule``); the global step runs
across phases. Per step: set the LR, draw a batch from the task (``task.draw(generator)``),
compute its loss terms (``task.loss(net, batch, generator)``, a dict with ``"total"``), backward,
clip (``LoopSpec.grad_clip``), step. Validation, logging, checkpoints and the finiteness check
happen every N steps, so the step itself makes no host sync on CUDA (on the CPU every step is
checked).

Randomness: every draw of a task comes from one CPU ``torch.Generator`` seeded with
``LoopSpec.seed``; dropout draws from torch's global RNG. Both states are in every checkpoint.

Resume: a checkpoint (model, optimiser, generator and global RNG states, task states such as
Dynamic Weight Average history, progress, run fingerprint) is written every ``checkpoint_every``
steps and at the end; rerunning the same command resumes from it and continues bit-identically
on the CPU. SIGTERM (what SLURM sends at a time limit or on preemption) saves a checkpoint and
stops with ``TrainingInterrupted``, which the CLI turns into a non-zero exit. A non-finite loss
raises ``FloatingPointError`` naming the step and the loss terms, before any checkpoint holds it.

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
from typing import Any, Protocol

import torch

from pose_study.data.transforms import AugmentSpec
from pose_study.train import accounting, distributed
from pose_study.train.accounting import Progress
from pose_study.train.checkpoint import kept, load_checkpoint, model_state, save_checkpoint

log = logging.getLogger(__name__)
OPTIMIZERS = ("adam", "rmsprop", "sgd")
LR_SHAPES = ("step", "linear")


class TrainingInterrupted(RuntimeError):
    """SIGTERM arrived; a checkpoint was saved and the run can be resumed."""


@dataclass(frozen=True)
class LRSchedule:
    """The learning rate over one phase of ``steps`` optimiser steps.

    Linear warm-up over the first ``warmup`` fraction of the phase (step ``i`` of ``w`` warm-up
    steps runs at ``lr·(i+1)/w``), then either ``step`` decay (×``decay`` after each fraction in
    ``milestones``, as the seed system) or ``linear`` decay from ``lr`` to zero at the phase's end.

    Attributes:
        lr: Peak learning rate.
        milestones: Fractions of the phase after which a ``step`` schedule multiplies the LR by ``decay``.
        decay: The factor of a ``step`` schedule.
        warmup: Fraction of the phase spent warming up (0 = none).
        shape: ``step`` or ``linear``.
    """

    lr: float
    milestones: tuple[float, ...] = ()
    decay: float = 0.1
    warmup: float = 0.0
    shape: str = "step"

    def __post_init__(self) -> None:
        if self.shape not in LR_SHAPES:
            raise ValueError(f"lr_schedule must be one of {LR_SHAPES}, got {self.shape!r}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup must be a fraction in [0, 1), got {self.warmup}")

    def rate(self, step: int, steps: int) -> float:
        """The LR of (0-based) ``step`` of a phase of ``steps`` steps."""
        warm = math.ceil(self.warmup * steps)
        if step < warm:
            return self.lr * (step + 1) / warm
        if self.shape == "linear":
            return self.lr * (steps - step) / max(steps - warm, 1)
        drops = sum(step >= math.ceil(f * steps) for f in self.milestones)
        return self.lr * self.decay**drops


@dataclass(frozen=True)
class LoopSpec:
    """Settings of the loop, the same for every training stage (``$defs/loop`` in the study schema).

    Attributes:
        batch_size: Samples (images; sequences for sequence lifters) per step and process.
        heatmap_sigma: Gaussian σ of heatmaps, heatmap px: the detector's training targets, or the
            input heatmaps of heatmap lifters.
        optimizer: ``adam``, ``rmsprop`` or ``sgd``.
        weight_decay: The optimiser's weight decay.
        lr_decay: Factor of the ``step`` LR schedule at each of a phase's ``lr_steps``.
        warmup: Fraction of each phase with a linear LR warm-up.
        lr_schedule: ``step`` (decay at ``lr_steps``) or ``linear`` (decay to zero).
        grad_clip: Maximum gradient norm, or None.
        augment: Image augmentation (detector stages).
        seed: Seeds the initial weights, the batch generator and dropout (set per job by the study).
        device: ``auto``, ``cpu`` or ``cuda[:i]`` (set per job by the study).
        amp: bf16 autocast of the detector's forward on CUDA and on CPUs with native bf16 (AVX512-BF16, AMX).
        channels_last: Images and detector in channels-last memory format.
        compile: ``torch.compile`` the network.
        eval_every: Validate (and add a learning-curve row) every N steps and at the end.
        eval_samples: Evenly spaced validation samples per validation.
        log_every: Log the running loss every N steps (and check finiteness, on CUDA).
        checkpoint_every: Write resume state every N steps and at the end.
    """

    batch_size: int = 32
    heatmap_sigma: float = 2.0
    optimizer: str = "adam"
    weight_decay: float = 0.0
    lr_decay: float = 0.1
    warmup: float = 0.0
    lr_schedule: str = "step"
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
        for name in ("batch_size", "eval_every", "eval_samples", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.heatmap_sigma <= 0:
            raise ValueError(f"heatmap_sigma must be > 0, got {self.heatmap_sigma}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be > 0 or None, got {self.grad_clip}")
        self.schedule(1.0)  # names a bad warmup or lr_schedule

    def schedule(self, lr: float, lr_steps: tuple[float, ...] = ()) -> LRSchedule:
        """The LR schedule of a phase with peak ``lr`` and step-decay fractions ``lr_steps``."""
        return LRSchedule(lr, tuple(lr_steps), self.lr_decay, self.warmup, self.lr_schedule)


class Task(Protocol):
    """What a phase trains: draws batches, computes loss terms, validates.

    Attributes:
        batch_size: Samples per drawn batch (this process).
        unused_parameters: Some of the network's parameters get no gradient (DDP must look for them).
    """

    batch_size: int
    unused_parameters: bool

    def draw(self, generator: torch.Generator) -> Any:
        """A training batch on the device; every random draw from ``generator``, without host sync."""

    def loss(self, net: torch.nn.Module, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Loss terms of ``net`` on ``batch`` (scalars), with ``"total"`` the one minimised."""

    def validate(self, model: torch.nn.Module) -> tuple[str, float]:
        """Validation metric (name, value), lower is better."""

    def state_dict(self) -> dict:
        """Task state that a resumed run needs (e.g. loss-weight history)."""

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict``'s state."""


@dataclass(frozen=True)
class Phase:
    """A stretch of training of one task under one LR schedule (a fresh optimiser starts each phase).

    Attributes:
        name: Shown in logs and the learning curve (e.g. ``"pretrain_2d"``, ``"fusion"``).
        steps: Optimiser steps in this phase.
        task: What is trained.
        schedule: The phase's learning rate (``LoopSpec.schedule``).
    """

    name: str
    steps: int
    task: Task
    schedule: LRSchedule


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


def train(model: torch.nn.Module, phases: list[Phase], spec: LoopSpec, checkpoint_dir: Path,
          flops_per_sample: int, prior_flops: float = 0.0, run_id: str = "") -> Progress:
    """Train ``model`` through ``phases``; returns the final progress (curve included).

    Args:
        model: On its device already.
        phases: Run in order; the global step continues across them.
        spec: Loop settings.
        checkpoint_dir: Where resume state lives (outside the stage's declared outputs).
        flops_per_sample: Forward FLOPs per training sample, for the curve's compute axis.
        prior_flops: Training FLOPs spent before this run (pre-training), added to ``flops_total``.
        run_id: Fingerprint of everything that defines the run (spec, inputs); see ``fingerprint``.
    """
    info = distributed.current()
    generator = torch.Generator().manual_seed(distributed.rank_seed(spec.seed, info))
    progress, resume = _resume(model, generator, checkpoint_dir, run_id, info, phases)
    net = distributed.wrap(model, info, find_unused=any(p.task.unused_parameters for p in phases))
    net = torch.compile(net) if spec.compile else net
    ctx = _RunContext(net, model, spec, checkpoint_dir, flops_per_sample, prior_flops, run_id, generator,
                      phases, info)
    with sigterm_flag() as stop:
        ctx.stop = stop
        first = 0
        for index, phase in enumerate(phases):
            if progress.step < first + phase.steps:
                optimizer = _optimizer(model, phase.schedule.lr, spec)
                if resume is not None and resume["phase"] == index:
                    optimizer.load_state_dict(resume["optimizer"])
                _run_phase(ctx, index, phase, first, optimizer, progress)
            first += phase.steps
    return progress


@dataclass
class _RunContext:
    net: torch.nn.Module
    model: torch.nn.Module
    spec: LoopSpec
    checkpoint_dir: Path
    flops_per_sample: int
    prior_flops: float
    run_id: str
    generator: torch.Generator
    phases: list[Phase]
    info: distributed.DistInfo = distributed.DistInfo()
    stop: dict | None = None


def _run_phase(ctx: _RunContext, index: int, phase: Phase, first: int,
               optimizer: torch.optim.Optimizer, progress: Progress) -> None:
    spec, device, task = ctx.spec, _device(ctx.model), phase.task
    guard = NanGuard(device, ctx.checkpoint_dir)
    running, window, window_start = torch.zeros((), device=device), 0, time.perf_counter()
    t0 = window_start
    sync_every = 1 if device.type == "cpu" else spec.log_every
    last = first + phase.steps
    while progress.step < last:
        set_lr(optimizer, phase.schedule.rate(progress.step - first, phase.steps))
        batch = task.draw(ctx.generator)
        terms = train_step(ctx.net, ctx.model, optimizer, task, batch, spec.grad_clip, ctx.generator)
        running += guard.update(terms, progress.step)
        progress.step += 1
        window += 1
        progress.samples += task.batch_size * ctx.info.world_size
        now = time.perf_counter()
        progress.seconds += now - t0
        t0 = now
        at_sync = progress.step % sync_every == 0 or progress.step == last
        if at_sync:
            guard.check(ctx.info)
        if progress.step % spec.log_every == 0 or progress.step == last:
            if ctx.info.is_main:
                _log_step(phase, progress, last, running.item() / window,
                          task.batch_size * ctx.info.world_size * window / max(now - window_start, 1e-9))
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


def train_step(net: torch.nn.Module, model: torch.nn.Module, optimizer: torch.optim.Optimizer, task: Task,
               batch: Any, grad_clip: float | None = None,
               generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """One optimiser step of ``task`` on ``batch``; returns the detached loss terms (no host sync).

    Args:
        net: What runs the forward (``model``, or its DDP / compiled wrapper).
        model: The plain module (gradient clipping).
        optimizer: Steps ``model``'s parameters.
        task: Computes the loss terms.
        batch: A batch drawn by ``task``.
        grad_clip: Maximum gradient norm, or None.
        generator: The loop's generator, for losses that draw random numbers.
    """
    net.train()
    terms = task.loss(net, batch, generator)
    optimizer.zero_grad(set_to_none=True)
    terms["total"].backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return {k: v.detach() for k, v in terms.items()}


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class NanGuard:
    """Remembers, on the device, the first step whose total loss is not finite and its loss terms.

    ``update`` adds no host sync; ``check`` (called every step on the CPU, every ``log_every``
    steps on CUDA, and at a phase's end) raises ``FloatingPointError`` naming the step and terms.
    """

    def __init__(self, device: torch.device, checkpoint_dir: Path) -> None:
        self.checkpoint_dir = checkpoint_dir
        self.bad = torch.full((), -1, dtype=torch.long, device=device)
        self.names: list[str] = []
        self.values: torch.Tensor | None = None

    def update(self, terms: dict[str, torch.Tensor], step: int) -> torch.Tensor:
        """Record ``terms`` of 0-based ``step``; returns the total loss, or 0 where it is not finite."""
        total = terms["total"]
        if self.values is None:
            self.names = [k for k in terms if k != "total"] or ["total"]
            self.values = torch.zeros(len(self.names), device=self.bad.device)
        step_t = torch.full((), step, dtype=torch.long, device=self.bad.device)  # a fill, not a copy
        finite = torch.isfinite(total)
        newly_bad = (self.bad < 0) & ~finite
        self.bad = torch.where(newly_bad, step_t, self.bad)
        stacked = torch.stack([terms[n].float() for n in self.names])
        self.values = torch.where(newly_bad, stacked, self.values)
        return torch.where(finite, total, torch.zeros_like(total))

    def check(self, info: distributed.DistInfo = distributed.DistInfo()) -> None:
        """Raise if any step so far (on any rank) had a non-finite loss."""
        bad = self.bad
        if info.enabled:  # any rank's NaN stops all ranks
            bad = bad.clone()
            torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
        step = int(bad)
        if step >= 0:
            values = " ".join(f"{name}={float(v):.4g}" for name, v in zip(self.names, self.values))
            raise FloatingPointError(
                f"non-finite loss at step {step + 1}: {values}; {kept(self.checkpoint_dir)} "
                "(lower the learning rate or set grad_clip)")


def _agreed_stop(ctx: _RunContext, at_sync: bool, device: torch.device) -> bool:
    """SIGTERM seen: every step for one process; for several ranks, agreed at sync points."""
    if not ctx.info.enabled:
        return ctx.stop["flag"]
    return at_sync and distributed.any_rank(ctx.stop["flag"], ctx.info, device)


def _record_validation(ctx: _RunContext, phase: Phase, progress: Progress, loss: float) -> None:
    name, value = phase.task.validate(ctx.model)
    log.info("step %d validation %s = %.3f", progress.step, name, value)
    progress.curve.append(accounting.curve_row(phase.name, progress, ctx.flops_per_sample, ctx.prior_flops,
                                               loss, name, value))


# --- helpers --------------------------------------------------------------------------------------


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _optimizer(model: torch.nn.Module, lr: float, spec: LoopSpec) -> torch.optim.Optimizer:
    params = model.parameters()
    if spec.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=spec.weight_decay)
    if spec.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.99, eps=1e-8, weight_decay=spec.weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=spec.weight_decay)


def _log_step(phase: Phase, progress: Progress, last: int, loss: float, samples_per_s: float) -> None:
    log.info("step %d/%d [%s] loss %.5f  %.1f samples/s  %.0f s", progress.step, last, phase.name, loss,
             samples_per_s, progress.seconds)


# --- checkpoints ----------------------------------------------------------------------------------


def _save(ctx: _RunContext, phase_index: int, optimizer: torch.optim.Optimizer, progress: Progress) -> None:
    """Rank 0 writes the checkpoint (every rank takes part: the generator states are gathered)."""
    rngs = distributed.gather_objects((ctx.generator.get_state(), _global_rng()), ctx.info)
    if not ctx.info.is_main:
        return
    generators = [g for g, _ in rngs]
    state = {"run_id": ctx.run_id, "phase": phase_index, "model": model_state(ctx.model),
             "optimizer": optimizer.state_dict(), "generator": generators[0],
             "global_rng": [r for _, r in rngs], "tasks": [p.task.state_dict() for p in ctx.phases],
             "progress": progress.state()}
    if ctx.info.enabled:
        state["generators"] = generators
    save_checkpoint(ctx.checkpoint_dir, state)


def _global_rng() -> dict[str, torch.Tensor]:
    """torch's global RNG states (dropout draws from them)."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_global_rng(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"])


def _resume(model: torch.nn.Module, generator: torch.Generator, checkpoint_dir: Path, run_id: str,
            info: distributed.DistInfo, phases: list[Phase]) -> tuple[Progress, dict | None]:
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
    _set_global_rng(state["global_rng"][info.rank])
    for phase, task_state in zip(phases, state["tasks"]):
        phase.task.load_state_dict(task_state)
    progress = Progress.from_state(state["progress"])
    log.info("resuming from checkpoint %s at step %d", checkpoint_dir, progress.step)
    return progress, state


@contextlib.contextmanager
def sigterm_flag() -> Iterator[dict]:
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
