"""The dataset catalog (``catalog.yaml``, package data) as frozen dataclasses.

The catalog is data: for every real dataset it lists the official artefacts (file names, public
URLs, sha256 and size where known), the licence, where to register for licensed datasets, the
layout the converters expect under the dataset root, the accepted split names, and
dataset-specific tables (e.g. the Human3.6M camera intrinsics). :func:`load_catalog` validates
it and fails with the file and the offending key named.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

ACCESS = ("public", "licensed")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DATASET_KEYS = {"title", "access", "homepage", "registration", "licence", "splits", "artefacts",
                 "layout", "tables"}
_ARTEFACT_KEYS = {"file", "url", "sha256", "sha256_prefix", "size"}
_SHA256_PREFIX = re.compile(r"^[0-9a-f]{8,63}$")


@dataclass(frozen=True)
class Artefact:
    """One file of an official release.

    Attributes:
        file: Archive file name (public) or a description of what to place (licensed).
        url: Public download URL, or None when it must be obtained by hand.
        sha256: Expected hex digest, or None when unknown (verification skipped with a warning).
        size: Expected size in bytes, or None when unknown.
        sha256_prefix: The leading hex digits of the digest where only those are published (as
            torchvision's weight file names embed them), or None; checked when ``sha256`` is None.
    """

    file: str
    url: str | None
    sha256: str | None
    size: int | None
    sha256_prefix: str | None = None


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset of the catalog; field meanings as in the comments of ``catalog.yaml``."""

    name: str
    title: str
    access: str
    homepage: str
    registration: str | None
    licence: str
    splits: tuple[str, ...]
    artefacts: tuple[Artefact, ...]
    layout: tuple[str, ...]
    tables: Mapping[str, Any]

    @property
    def public(self) -> bool:
        return self.access == "public"


def default_path() -> Path:
    """Path of the packaged ``catalog.yaml``."""
    return Path(str(resources.files("pose_study.data").joinpath("catalog.yaml")))


def load_catalog(path: str | Path | None = None) -> dict[str, DatasetEntry]:
    """Read and validate a catalog file (default: the packaged one), keyed by dataset name."""
    path = Path(path) if path is not None else default_path()
    if path == default_path():
        return dict(_load_cached(str(path)))
    return _load(path)


@lru_cache(maxsize=1)
def _load_cached(path: str) -> tuple[tuple[str, DatasetEntry], ...]:
    return tuple(_load(Path(path)).items())


def _load(path: Path) -> dict[str, DatasetEntry]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: dataset catalog not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("datasets"), dict):
        raise ValueError(f"{path}: expected a mapping with a 'datasets' mapping")
    if data.get("format_version") != 1:
        raise ValueError(f"{path}: format_version must be 1, got {data.get('format_version')!r}")
    return {name: _entry(name, value, f"{path}: datasets.{name}") for name, value in data["datasets"].items()}


def get_dataset(name: str, catalog: Mapping[str, DatasetEntry] | None = None) -> DatasetEntry:
    """The catalog entry of ``name``; ``ValueError`` listing the known datasets if absent."""
    catalog = load_catalog() if catalog is None else catalog
    if name not in catalog:
        raise ValueError(f"unknown dataset {name!r}; the catalog has {sorted(catalog)}")
    return catalog[name]


def _entry(name: str, data: Any, where: str) -> DatasetEntry:
    _check_keys(data, _DATASET_KEYS, _DATASET_KEYS - {"registration", "tables"}, where)
    if data["access"] not in ACCESS:
        raise ValueError(f"{where}.access: must be one of {ACCESS}, got {data['access']!r}")
    if data["access"] == "licensed" and not data.get("registration"):
        raise ValueError(f"{where}.registration: a licensed dataset must say where to register")
    artefacts = tuple(_artefact(a, f"{where}.artefacts[{i}]", data["access"])
                      for i, a in enumerate(_list(data["artefacts"], f"{where}.artefacts")))
    splits = tuple(str(s) for s in _list(data["splits"], f"{where}.splits"))
    layout = tuple(str(s) for s in _list(data["layout"], f"{where}.layout"))
    if not splits or not layout:
        raise ValueError(f"{where}: 'splits' and 'layout' must not be empty")
    tables = data.get("tables") or {}
    if not isinstance(tables, dict):
        raise ValueError(f"{where}.tables: expected a mapping")
    return DatasetEntry(
        name=name, title=str(data["title"]), access=data["access"], homepage=str(data["homepage"]),
        registration=data.get("registration"), licence=str(data["licence"]), splits=splits,
        artefacts=artefacts, layout=layout, tables=MappingProxyType(tables),
    )


def _artefact(data: Any, where: str, access: str) -> Artefact:
    _check_keys(data, _ARTEFACT_KEYS, {"file"}, where)
    url, sha, size, prefix = data.get("url"), data.get("sha256"), data.get("size"), data.get("sha256_prefix")
    if access == "public" and not url:
        raise ValueError(f"{where}.url: a public dataset's artefact needs a URL")
    if access == "public" and ("/" in str(data["file"]) or not str(data["file"]).strip()):
        raise ValueError(f"{where}.file: must be a plain file name, got {data['file']!r}")
    if sha is not None and not _SHA256.match(str(sha)):
        raise ValueError(f"{where}.sha256: expected 64 lowercase hex digits or null, got {sha!r}")
    if size is not None and (not isinstance(size, int) or size <= 0):
        raise ValueError(f"{where}.size: expected a positive integer or null, got {size!r}")
    if prefix is not None and not _SHA256_PREFIX.match(str(prefix)):
        raise ValueError(f"{where}.sha256_prefix: expected 8-63 lowercase hex digits or null, got {prefix!r}")
    if prefix is not None and sha is not None and not str(sha).startswith(str(prefix)):
        raise ValueError(f"{where}: sha256 {sha} does not start with sha256_prefix {prefix}")
    return Artefact(file=str(data["file"]), url=url, sha256=sha, size=size,
                    sha256_prefix=None if prefix is None else str(prefix))


def _check_keys(data: Any, allowed: set[str], required: set[str], where: str) -> None:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed keys: {sorted(allowed)}")
    missing = sorted(required - set(data))
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}")


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise ValueError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def expand_braces(pattern: str) -> list[str]:
    """Expand ``{a,b}`` alternatives (nested allowed, empty alternatives allowed) into patterns."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if match is None:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end():]
    out: list[str] = []
    for alt in match.group(1).split(","):
        out.extend(expand_braces(head + alt + tail))
    return out


def missing_layout(root: Path, layout: tuple[str, ...]) -> list[str]:
    """The layout patterns under ``root`` that match nothing.

    Pattern syntax: ``*``/``**`` globs; ``{a,b}`` expands to several patterns that must *all* match
    (``S{1,5}/x.cdf``); `` | `` separates alternatives of which *one* must match
    (``annot/valid.json | annotations/mpii_val.json``).
    """
    missing: list[str] = []
    for entry in layout:
        alternatives = [alt.strip() for alt in entry.split("|")]
        if any(all(_matches(root, p) for p in expand_braces(alt)) for alt in alternatives):
            continue
        if len(alternatives) == 1:
            missing.extend(p for p in expand_braces(entry) if not _matches(root, p))
        else:
            missing.append(entry)
    return missing


def _matches(root: Path, pattern: str) -> bool:
    if not any(ch in pattern for ch in "*?["):
        return (root / pattern).exists()
    return next(iter(root.glob(pattern)), None) is not None
