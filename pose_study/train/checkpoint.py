"""Checkpoints and weights: atomic saves, ``weights_only=True`` loads, strict key matching.

The file-level functions live in ``pose_study.weights`` (the library layer uses them too).

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

from pose_study._spec import provenance
from pose_study.weights import load_file, load_state_dict_strict, model_state, save_file

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
