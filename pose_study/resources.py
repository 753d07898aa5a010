"""What a workflow job needs from the cluster, from the data path's bounded memory.

A training or evaluation job holds each split's decoded crops whole only up to the config's
``data_memory_mb`` and streams larger splits (``data.batches``); its memory is therefore bounded by

    need_mb = gpus × (BASE_MB + SPLITS[rule] × data_memory_mb)

per job, whatever the datasets' sizes: ``BASE_MB`` covers the interpreter, torch, the CUDA context,
model, optimiser, streamed batches and the JPEG decoding threads; every rank of a multi-GPU job
(DDP, one process per GPU) loads its splits itself. ``workflow/profiles/slurm/README.md`` explains
the numbers; the rules request ``attempt × need_mb`` (a retried job asks for more).
"""

from __future__ import annotations

MEMORY_ENV = "POSE_STUDY_DATA_MEMORY_MB"  # the workflow's data_memory_mb, for every job it starts
BASE_MB = 4000
SPLITS = {  # splits a job of each rule loads at once
    "pretrain_2d": 2,  # train, val
    "finetune_3d": 3,  # train_3d, val_3d, train_2d
    "evaluate_pretrain_2d": 1,  # one test split at a time
    "evaluate_finetune_3d": 1,
}


def need_mb(rule: str, data_memory_mb: int, gpus: int = 1) -> int:
    """The memory a job of ``rule`` needs (module docstring), in MB."""
    if rule not in SPLITS:
        raise ValueError(f"no memory formula for rule {rule!r}; rules with one: {sorted(SPLITS)}")
    return max(1, gpus) * (BASE_MB + SPLITS[rule] * int(data_memory_mb))


def launcher(gpus: int) -> str:
    """The command that starts a stage: ``python``, or ``torchrun`` with one process per GPU (DDP).

    ``python -m torch.distributed.run`` is torchrun run by the job's own interpreter, so the rule
    starts DDP itself, whatever is on the node's PATH.
    """
    if gpus <= 1:
        return "python"
    return f"python -m torch.distributed.run --standalone --nnodes 1 --nproc-per-node {int(gpus)}"
