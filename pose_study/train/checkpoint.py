"""Checkpoints and weights: atomic saves, ``weights_only=True`` loads, strict key matching.

Two kinds of file:

* a **checkpoint** (resume state: model, optimiser, generator states, step, accounting, curve so
  far) lives in a checkpoint folder *outside* the stage's declared outputs, because Snakemake
  deletes declared outputs before re-running a job;
* **weights** (``model.pt``: state dict + preset name + provenance) are the stage's output.

Both contain only tensors and plain containers, so they load with ``weights_only=True``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from pose_study._io import atomic_path
from pose_study._spec import provenance

log = logging.getLogger(__name__)
CHECKPOINT_NAME = "last.pt"


def save_checkpoint(directory: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Atomically write ``state`` to ``directory/last.pt``; the previous checkpoint survives any failure."""
    path = Path(directory) / CHECKPOINT_NAME
    try:
        save_file(path, state)
    except OSError as err:
        raise OSError(f"could not write checkpoint {path} ({err}); the previous checkpoint is intact") from err
    return path


def load_checkpoint(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The checkpoint in ``directory``, or None if there is none."""
    path = Path(directory) / CHECKPOINT_NAME
    if not path.is_file():
        return None
    return load_file(path)


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


def load_state_dict_strict(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], where: str) -> None:
    """``load_state_dict(strict=True)`` with an error that lists the mismatched keys."""
    target = unwrap(model)
    result = target.load_state_dict(state_dict, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"{where}: state dict does not match the model; missing "
                         f"{result.missing_keys[:8]}, unexpected {result.unexpected_keys[:8]}")


def save_file(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Atomically ``torch.save`` a dict of tensors and plain containers (weights or a checkpoint)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_file(path: str | os.PathLike) -> dict[str, Any]:
    """A file written by ``save_file``, loaded with ``weights_only=True`` on the CPU; ValueError names it."""
    try:
        return torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types
        raise ValueError(f"{path}: not a loadable pose_study weight or checkpoint file ({err})") from err


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under torch.compile / DistributedDataParallel wrappers."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict on the CPU, without compile/DDP prefixes (for checkpoints and weights)."""
    return {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}
