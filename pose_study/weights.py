"""Weight files: atomic ``torch.save``, ``weights_only=True`` loads, strict key matching.

The library layer (``lifters/``, ``models/``) reads and writes weight files through these
functions; ``train/checkpoint.py`` builds its checkpoints and ``model.pt`` files on them.
Every file holds only tensors and plain containers, so it loads with ``weights_only=True``.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from pose_study._io import atomic_path


def save_file(path: str | os.PathLike, state: dict[str, Any], keep_previous: str | os.PathLike | None = None) -> None:
    """Atomically ``torch.save`` a dict of tensors and plain containers (weights or a checkpoint).

    Args:
        path: The file to write; it is replaced only once the new one is complete.
        state: What to save.
        keep_previous: If given, the file now at ``path`` is moved here just before the new one
            replaces it.

    Raises:
        OSError: The file could not be written (e.g. ``No space left on device``); the message
            names ``path``, and ``path`` is unchanged.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            torch.save(state, tmp)
        except RuntimeError as err:  # torch's zip writer reports a failed write as a RuntimeError
            raise _write_error(path, tmp, err) from err
        if keep_previous is not None and path.exists():
            os.replace(path, keep_previous)


def _write_error(path: Path, tmp: Path, err: RuntimeError) -> OSError:
    """An ``OSError`` naming ``path`` for torch's failed write, saying whether the disk is full."""
    free = shutil.disk_usage(tmp.parent).free
    if free < 1 << 20:
        return OSError(errno.ENOSPC, f"could not write {path}: No space left on device ({free} bytes free on its "
                                     "file system); free some space and rerun the same command")
    return OSError(errno.EIO, f"could not write {path} ({str(err).strip()[:300]})")


def load_file(path: str | os.PathLike) -> dict[str, Any]:
    """A file written by ``save_file``, loaded with ``weights_only=True`` on the CPU; ValueError names it."""
    try:
        return torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types
        reason = str(err).strip() or f"{type(err).__name__}, {Path(path).stat().st_size} bytes"
        raise ValueError(f"{path}: not a loadable weight or checkpoint file; only tensors and plain containers "
                         f"load (weights_only=True) ({reason})") from err


def load_state_dict_strict(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], where: str) -> None:
    """``load_state_dict(strict=True)`` with an error that lists the mismatched keys."""
    target = unwrap(model)
    result = target.load_state_dict(state_dict, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"{where}: state dict does not match the model; missing "
                         f"{result.missing_keys[:8]}, unexpected {result.unexpected_keys[:8]}")


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under torch.compile / DistributedDataParallel wrappers."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict on the CPU, without compile/DDP prefixes (for checkpoints and weights)."""
    return {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}
