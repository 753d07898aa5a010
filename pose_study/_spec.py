"""Frozen stage specs built from plain dicts (YAML/JSON), with errors that name the bad key.

Every stage's spec is a ``@dataclass(frozen=True)`` next to the stage's code. Snakemake passes the
resolved spec as JSON on the command line; the stage writes it back to ``spec.json`` beside its
outputs, so any result can be rebuilt by hand with ``--spec path/to/spec.json``. ``spec.json`` also
records the run's CPU thread count (``_threads``): CPU kernels reduce in a thread-dependent order,
so a hand rerun from the file uses that count unless ``OMP_NUM_THREADS`` says otherwise.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_recorded_threads: tuple[int, str] | None = None  # (threads, spec.json) of the last --spec file read


def spec_from_dict(cls: type[T], data: dict[str, Any], where: str = "spec") -> T:
    """Build the dataclass ``cls`` from ``data``; unknown or missing keys raise ``ValueError``.

    Nested dataclass fields are built recursively; a nested mapping overrides the field's default
    (so a partial ``loop`` keeps the stage's loop defaults); lists become tuples (specs are frozen).
    """
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed keys: {sorted(known)}")
    kwargs = {}
    for name, f in known.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{where}: required key {name!r} is missing")
            continue
        kwargs[name] = _convert(f.type, _over_default(f, data[name]), f"{where}.{name}", cls)
    return cls(**kwargs)


def _over_default(f: dataclasses.Field, value: Any) -> Any:
    """``value`` laid over the field's default when both are mappings / a dataclass instance."""
    if not isinstance(value, dict) or f.default_factory is dataclasses.MISSING:
        return value
    default = f.default_factory()
    return {**spec_to_dict(default), **value} if dataclasses.is_dataclass(default) else value


def _convert(annotation: Any, value: Any, where: str, owner: type) -> Any:
    hint = annotation
    if isinstance(annotation, str):  # `from __future__ import annotations`
        hint = _resolve(annotation, owner)
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return spec_from_dict(hint, value, where)
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return _freeze(value)


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _resolve(annotation: str, owner: type) -> Any:
    module = sys.modules.get(owner.__module__)
    return getattr(module, annotation, None) if module else None


def spec_to_dict(spec: Any) -> dict[str, Any]:
    """A JSON-ready dict of a spec (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(spec)))


def load_spec_arg(cls: type[T], arg: str) -> T:
    """Parse a ``--spec`` argument: inline JSON, or the path of a JSON file (e.g. a spec.json)."""
    text, where = arg, "the inline --spec"
    if not arg.lstrip().startswith("{"):
        path = Path(arg)
        if not path.is_file():
            raise FileNotFoundError(f"--spec {arg!r} is neither inline JSON nor an existing file")
        text, where = path.read_text(), arg
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"--spec is not valid JSON: {err}") from err
    data.pop("_provenance", None)  # present in spec.json files written by stages
    _remember_threads(data.pop("_threads", None), where)
    return spec_from_dict(cls, data, where=cls.__name__)


def _remember_threads(threads: Any, where: str) -> None:
    global _recorded_threads
    if threads is None:
        return
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"{where}: '_threads' must be a positive integer (the run's CPU threads), got {threads!r}")
    _recorded_threads = (threads, where)


def recorded_threads() -> tuple[int, str] | None:
    """``(threads, where)`` recorded in the ``--spec`` file this process read, or None."""
    return _recorded_threads


def provenance() -> dict[str, str]:
    """Package version, git SHA (or 'unknown'), Python and torch versions: stamped into spec.json."""
    from pose_study import __version__

    info = {"pose_study": __version__, "python": sys.version.split()[0], "git_sha": _git_sha()}
    try:
        import torch

        info["torch"] = str(torch.__version__)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return info


def _git_sha() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", os.fspath(root), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def spec_record(spec: Any) -> dict[str, Any]:
    """What a stage writes to ``spec.json``: the resolved spec, ``_provenance`` and ``_threads``.

    ``_threads`` is torch's intra-op thread count when the record is made (after the stage has
    set it); it is left out where torch is not installed.
    """
    record = {**spec_to_dict(spec), "_provenance": provenance()}
    try:
        import torch
    except ImportError:  # pragma: no cover - the light environment of download jobs
        return record
    return {**record, "_threads": torch.get_num_threads()}
