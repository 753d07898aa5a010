"""Process-level parallelism for training: CPU threads, and multi-GPU data parallelism (DDP).

**CPU threads.** One explicit rule (``cpu_threads``): ``$OMP_NUM_THREADS`` when it is set —
Snakemake sets it to the rule's ``threads`` for every job, torchrun sets it to 1 per rank unless
given — otherwise the count recorded in the ``spec.json`` given as ``--spec`` (a hand rerun then
computes exactly as the original run did), otherwise the cores this process may run on (its CPU
affinity, e.g. a SLURM cpuset), shared among the ranks on this node, and never more than torch is already set to (a program that
lowered it, such as the test suite, keeps its setting). The choice is logged.

**DDP.** A job given more than one GPU is started with ``torchrun --nproc_per_node N python -m
pose_study …``; torchrun sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` (and ``MASTER_ADDR`` /
``MASTER_PORT``) for each process. The same code runs on one device: without those variables (or
with ``WORLD_SIZE=1``) every helper here is a no-op. Conventions:

* every rank draws its own batches (``rank_seed``), so the global batch is ``batch_size × world``;
* gradients are averaged by ``DistributedDataParallel``, so the weights stay identical on all ranks;
* only rank 0 validates and writes checkpoints and outputs (``DistInfo.is_main``);
* decisions taken from host values (stop on SIGTERM, non-finite loss) are agreed by all ranks
  (``any_rank``) before anyone acts, so no rank is left waiting in a collective.

The backend is NCCL on CUDA and gloo on the CPU (the CPU path is what the tests exercise).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from pose_study._spec import recorded_threads

log = logging.getLogger(__name__)
RANK_SEED_STRIDE = 1_000_003  # rank r draws from seed + r·stride: rank 0 keeps the single-device seed


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a (possibly one-process) data-parallel job."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that validates and writes."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


# --- CPU threads ---------------------------------------------------------------------------------


def cpu_threads(environ: Mapping[str, str] | None = None) -> tuple[int, str]:
    """Intra-op CPU threads for this process and where the number came from.

    Args:
        environ: Environment to read (default ``os.environ``).

    Returns:
        ``(threads, source)``: ``$OMP_NUM_THREADS`` when set, else the count recorded in the
        ``--spec`` file read (``_spec.recorded_threads``), else the cores of this process's
        affinity divided by ``$LOCAL_WORLD_SIZE``, capped at ``torch.get_num_threads()``.

    Raises:
        ValueError: ``OMP_NUM_THREADS`` is set but not a positive integer.
    """
    environ = os.environ if environ is None else environ
    value = environ.get("OMP_NUM_THREADS", "").strip()
    if not value and recorded_threads() is not None:
        threads, where = recorded_threads()
        return threads, f"recorded in {where}; set OMP_NUM_THREADS to override"
    if not value:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        ranks = max(int(environ.get("LOCAL_WORLD_SIZE", 1)), 1)
        threads = max(1, min(cores // ranks, torch.get_num_threads()))
        return threads, f"{cores} core(s) available to this process, {ranks} rank(s) on this node"
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ValueError(f"OMP_NUM_THREADS must be a positive integer, got {value!r}")
    return threads, "OMP_NUM_THREADS (Snakemake sets it to the rule's threads)"


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads (``threads``, or the ``cpu_threads`` rule) and log the choice."""
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    source = "given"
    if threads is None:
        threads, source = cpu_threads()
    recorded = recorded_threads()
    if recorded is not None and recorded[0] != threads:
        log.warning("using %d CPU thread(s), but %s records %d: results may differ from that run's in the last "
                    "bits (unset OMP_NUM_THREADS to use the recorded count)", threads, recorded[1], recorded[0])
    torch.set_num_threads(threads)
    log.info("using %d CPU thread(s) (%s)", threads, source)
    return threads


# --- process group -------------------------------------------------------------------------------


def info_from_env(environ: Mapping[str, str] | None = None) -> DistInfo:
    """``DistInfo`` from torchrun's variables (a single process when they are absent)."""
    environ = os.environ if environ is None else environ
    try:
        info = DistInfo(int(environ.get("RANK", 0)), int(environ.get("LOCAL_RANK", 0)),
                        int(environ.get("WORLD_SIZE", 1)))
    except ValueError as err:
        raise ValueError(f"RANK/LOCAL_RANK/WORLD_SIZE must be integers ({err})") from err
    if info.world_size < 1 or not 0 <= info.rank < info.world_size:
        raise ValueError(f"need 0 <= RANK < WORLD_SIZE, got RANK={info.rank} WORLD_SIZE={info.world_size}")
    return info


def current() -> DistInfo:
    """This process's place in the initialised job (one process when none is initialised)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    return DistInfo(dist.get_rank(), int(os.environ.get("LOCAL_RANK", 0)), dist.get_world_size())


def init(device_name: str = "auto") -> DistInfo:
    """Join the job described by the environment; a no-op for a single process.

    Args:
        device_name: The run's device setting; CUDA (or ``auto`` with CUDA present) uses NCCL and
            pins each rank to ``cuda:LOCAL_RANK``, anything else uses gloo.
    """
    info = info_from_env()
    if not info.enabled or dist.is_initialized():
        return current() if info.enabled else info
    cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group("nccl" if cuda else "gloo", rank=info.rank, world_size=info.world_size)
    log.info("joined data-parallel job: rank %d of %d (local rank %d, backend %s)", info.rank,
             info.world_size, info.local_rank, dist.get_backend())
    return info


def cleanup() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def device_for(device: torch.device, info: DistInfo) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` for a multi-GPU job, else ``device``."""
    if info.enabled and device.type == "cuda":
        return torch.device("cuda", info.local_rank)
    return device


def wrap(model: torch.nn.Module, info: DistInfo, find_unused: bool = False) -> torch.nn.Module:
    """``model`` in ``DistributedDataParallel`` for a multi-process job, else unchanged.

    Args:
        model: On this rank's device.
        info: This process's place in the job.
        find_unused: Some parameters get no gradient (the depth head when no loss reads depth):
            DDP must then look for them every step.
    """
    if not info.enabled:
        return model
    device = next(model.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused)


# --- per-rank randomness and agreement -----------------------------------------------------------


def rank_seed(seed: int, info: DistInfo) -> int:
    """Seed of this rank's batch generator: ranks draw different batches; rank 0 keeps ``seed``."""
    return seed + RANK_SEED_STRIDE * info.rank


def any_rank(flag: bool | torch.Tensor, info: DistInfo, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on at least one (a collective: all ranks must call)."""
    if not info.enabled:
        return bool(flag)
    value = torch.as_tensor(flag, dtype=torch.float32, device=device).reshape(1).clone()
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """``obj`` of every rank, in rank order (a collective; ``[obj]`` for a single process)."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out
