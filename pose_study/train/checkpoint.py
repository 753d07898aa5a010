"""Checkpoints and weights: atomic saves, ``weights_only=True`` loads, strict key matching.

The file-level functions live in ``pose_study.weights`` (the library layer uses them too).

Two kinds of file:

* a **checkpoint** (resume state: model, optimiser, generator states, step, accounting, curve so
  far) lives in a checkpoint folder *outside* the stage's declared outputs, because Snakemake
  deletes declared outputs before re-running a job;
* **weights** (``model.pt``: state dict + preset name + provenance) are the stage's output.

Both contain only tensors and plain containers, so they load with ``weights_only=True``.

A checkpoint folder keeps the checkpoint before the last one (``previous.pt``) in case the last is
damaged, and belongs to one trainer at a time: ``claim_folder`` holds an ``fcntl`` lock on it
until the process exits, so a second trainer on the same folder stops at once.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
from pathlib import Path
from typing import Any

import torch

from pose_study._spec import provenance
from pose_study.weights import load_file, load_state_dict_strict, model_state, save_file

log = logging.getLogger(__name__)
CHECKPOINT_NAME = "last.pt"
PREVIOUS_NAME = "previous.pt"
LOCK_NAME = ".lock"
_CLAIMED: dict[Path, int] = {}  # checkpoint folder -> the locked file's descriptor, for the process's life


def claim_folder(directory: str | os.PathLike) -> None:
    """Lock ``directory`` for this trainer until the process exits; a second trainer fails at once.

    Under torchrun only rank 0 takes the lock (the other ranks are its own processes). Claiming a
    folder this process already holds does nothing.

    Raises:
        RuntimeError: Another process holds the folder; the message names it and that process.
    """
    folder = Path(directory).resolve()
    if folder in _CLAIMED or os.environ.get("RANK", "0") != "0":
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise RuntimeError(
            f"checkpoint folder {folder} is in use by another trainer ({holder}); two trainers on one folder "
            "would overwrite each other's checkpoints and outputs. Wait for it to finish, or stop it "
            "(e.g. a job left running after Snakemake was killed) and rerun this command") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    _CLAIMED[folder] = fd


def save_checkpoint(directory: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Atomically write ``state`` to ``directory/last.pt``; the previous checkpoint survives any failure."""
    path = Path(directory) / CHECKPOINT_NAME
    try:
        save_file(path, state, keep_previous=path.with_name(PREVIOUS_NAME))
    except OSError as err:
        raise OSError(f"could not write checkpoint {path} ({err}); the previous checkpoint is intact") from err
    return path


def kept(directory: str | os.PathLike) -> str:
    """What a failed run leaves to resume from, for its error message."""
    if (Path(directory) / CHECKPOINT_NAME).is_file():
        return f"the last good checkpoint in {directory} is intact"
    return f"no checkpoint was written yet in {directory} (a rerun starts afresh)"


def load_checkpoint(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The checkpoint in ``directory``, or None if there is none.

    Raises:
        ValueError: The checkpoint is truncated or corrupt; the message says to delete it or to
            resume from the previous one.
    """
    path = Path(directory) / CHECKPOINT_NAME
    if not path.is_file():
        return None
    try:
        return load_file(path)
    except ValueError as err:
        previous = path.with_name(PREVIOUS_NAME)
        choice = (f", or resume from the previous one: mv {previous} {path}" if previous.is_file()
                  else " (there is no previous one to resume from)")
        raise ValueError(f"{err}; the checkpoint is truncated or corrupt: delete it to start this run afresh"
                         f"{choice}") from err


def save_weights(path: str | os.PathLike, model: torch.nn.Module, preset: str,
                 extras: dict[str, Any] | None = None) -> None:
    """Write the model's weights (plus preset name and provenance) atomically to ``path``.

    Args:
        path: The weight file (``model.pt``).
        model: The detector (compile/DDP wrappers are removed).
        preset: Its preset name.
        extras: More plain entries (tensors and containers only), e.g. ``{"lifter": lifter_record(m)}``
            for an end-to-end run; ``load_weights`` ignores them.
    """
    reserved = sorted({"state_dict", "preset", "provenance"} & set(extras or {}))
    if reserved:
        raise ValueError(f"save_weights extras may not replace {reserved}")
    save_file(path, {"state_dict": model_state(model), "preset": preset, "provenance": provenance(), **(extras or {})})


def load_weights(path: str | os.PathLike, model: torch.nn.Module, preset: str) -> None:
    """Load ``path`` into ``model`` strictly; a preset or key mismatch is a ``ValueError``."""
    state = load_file(path)
    if state.get("preset") != preset:
        raise ValueError(f"{path}: weights are for preset {state.get('preset')!r}, not {preset!r}")
    load_state_dict_strict(model, state["state_dict"], str(path))
