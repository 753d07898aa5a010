"""Stage ``download``: put one real dataset's official files under its root, or say what is missing.

Input: the dataset's catalog entry (``pose_study/data/catalog.yaml``). Public datasets: each
artefact is fetched over HTTP(S) into ``<root>/.download/`` with range-request resume, checked
against the catalog's sha256 and size (when the catalog has none, a warning gives the computed
hash), extracted into a temporary folder beside the root and moved into place; a marker
``<root>/.download/<file>.extracted`` records the done step so reruns skip it. Licensed datasets
are checked in place. Either way the layout is verified; if anything is missing, ONE error lists
every missing path, the expected layout and where to obtain the files.

Output: ``--manifest`` (JSON: dataset, root, artefacts with their sha256 and verification state,
the layout, spec and provenance).

Command line::

    python -m pose_study download --spec '{"dataset": "lsp", "root": "data/raw/lsp"}' \\
        --manifest data/raw/lsp/manifest.json
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pose_study._io import write_json
from pose_study._spec import load_spec_arg, spec_record
from pose_study.data.catalog import Artefact, DatasetEntry, get_dataset, load_catalog, missing_layout

log = logging.getLogger(__name__)

CHUNK = 1 << 20
STATE_DIR = ".download"
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


@dataclass(frozen=True)
class DownloadSpec:
    """Settings of one dataset download / check.

    Attributes:
        dataset: Catalog name.
        root: Folder that receives (public) or holds (licensed) the dataset's files.
        mirror: Optional base URL; each artefact is then fetched from ``<mirror>/<file>``.
        retries: Extra attempts after a failed or truncated transfer (each resumes).
        timeout_s: Socket timeout per request, seconds.
        retry_wait_s: Pause before a retry, seconds (doubles each time, at most 60 s).
        keep_archives: Keep the downloaded archives after extraction.
    """

    dataset: str
    root: str
    mirror: str | None = None
    retries: int = 3
    timeout_s: float = 60.0
    retry_wait_s: float = 2.0
    keep_archives: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.retries, int) and self.retries >= 0):
            raise ValueError(f"retries must be a non-negative integer, got {self.retries!r}")
        if not self.timeout_s > 0 or self.retry_wait_s < 0:
            raise ValueError("timeout_s must be positive and retry_wait_s non-negative")


def run(spec: DownloadSpec, manifest: Path,
        catalog: Mapping[str, DatasetEntry] | None = None) -> dict[str, Any]:
    """Download / check ``spec.dataset`` under ``spec.root`` and write ``manifest``."""
    entry = get_dataset(spec.dataset, load_catalog() if catalog is None else catalog)
    root = Path(spec.root)
    records: list[dict[str, Any]] = []
    if entry.public and missing_layout(root, entry.layout):
        root.mkdir(parents=True, exist_ok=True)
        records = [fetch_and_extract(root, artefact, spec) for artefact in entry.artefacts]
    elif entry.public:
        log.info("%s: every layout entry is present under %s; nothing to download", entry.name, root)
    missing = missing_layout(root, entry.layout) if root.is_dir() else list(entry.layout)
    if missing:
        raise FileNotFoundError(missing_message(entry, root, missing))
    result = {"dataset": entry.name, "root": str(root), "access": entry.access, "artefacts": records,
              "layout": list(entry.layout), "spec": spec_record(spec)}
    write_json(manifest, result)
    log.info("%s: complete under %s", entry.name, root)
    return result


def missing_message(entry: DatasetEntry, root: Path, missing: list[str]) -> str:
    """One message: what is missing, the expected layout, and where to obtain the files."""
    lines = [f"{entry.name} ({entry.title}): {len(missing)} required path(s) missing under {root}:"]
    lines += [f"  - {m}" for m in missing]
    lines += ["Expected layout (relative to the root; '|' = any one of):"] + [f"  {p}" for p in entry.layout]
    if entry.public:
        lines.append("The downloaded archives did not produce this layout; check the catalog entry.")
    else:
        lines.append(f"This dataset is licensed; obtain the files yourself and place them under {root}:")
        lines += [f"  * {a.file}" for a in entry.artefacts]
        lines.append(f"Register / download: {entry.registration}")
    lines.append(f"Licence: {entry.licence}")
    return "\n".join(lines)


def fetch_and_extract(root: Path, artefact: Artefact, spec: DownloadSpec) -> dict[str, Any]:
    """Fetch (resuming), verify and extract one artefact unless its marker says it is done."""
    state = root / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    marker = state / f"{artefact.file}.extracted"
    if marker.exists():
        log.info("%s: already extracted (%s)", artefact.file, marker)
        return {"file": artefact.file, "url": artefact.url, "sha256": marker.read_text().strip(),
                "verified": _verification(artefact), "skipped": True}
    archive = state / artefact.file
    url = f"{spec.mirror.rstrip('/')}/{artefact.file}" if spec.mirror else artefact.url
    if not archive.exists():
        fetch(url, archive, artefact, spec)
    digest = verify(archive, artefact)
    extract(archive, root)
    marker.write_text(digest + "\n")
    if not spec.keep_archives:
        archive.unlink()
    return {"file": artefact.file, "url": url, "sha256": digest, "verified": _verification(artefact),
            "skipped": False}


def _verification(artefact: Artefact) -> bool | str:
    """How the download was checked: True (full sha256), "sha256 prefix", or False (not at all)."""
    if artefact.sha256 is not None:
        return True
    return "sha256 prefix" if artefact.sha256_prefix is not None else False


def fetch(url: str, target: Path, artefact: Artefact, spec: DownloadSpec) -> None:
    """Download ``url`` to ``target`` via ``<target>.part``, resuming with HTTP range requests."""
    part, last = target.with_name(target.name + ".part"), None
    for attempt in range(spec.retries + 1):
        if attempt:
            time.sleep(min(spec.retry_wait_s * 2 ** (attempt - 1), 60.0))
        try:
            if _transfer(url, part, spec.timeout_s):
                os.replace(part, target)
                return
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            if isinstance(err, urllib.error.HTTPError) and err.code in (401, 403, 404):
                raise ConnectionError(f"{url}: HTTP {err.code} {err.reason}; check the catalog URL for "
                                      f"{artefact.file} (or pass a mirror)") from err
            log.warning("%s: attempt %d failed (%s)", url, attempt + 1, err)
            last = err
    have = part.stat().st_size if part.exists() else 0
    raise ConnectionError(
        f"{url}: download incomplete after {spec.retries + 1} attempts (last error: {last}; {have} bytes in "
        f"{part}); rerun `download` to resume. If this machine has no network access, fetch {artefact.file} "
        f"elsewhere and place it by hand at {target} (the next run verifies and extracts it), or set "
        "`download: {mirror: URL}` for this dataset in the study config")


def _transfer(url: str, part: Path, timeout_s: float) -> bool:
    """One request appending to ``part``; True when the file is complete."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to send: the part file is complete
            return True
        raise
    with response:
        if have and response.status != 206:
            have = 0  # the server ignored the range: start over
            log.info("%s: server does not resume; restarting", url)
        total = _total_size(response, have)
        with open(part, "ab" if have else "wb") as f:
            _copy(response, f)
    size = part.stat().st_size
    if total is not None and size != total:
        log.warning("%s: transfer stopped at %d of %d bytes; resuming", url, size, total)
        return False
    return True


def _total_size(response: Any, offset: int) -> int | None:
    content_range = response.headers.get("Content-Range")
    if content_range and "/" in content_range and not content_range.endswith("/*"):
        return int(content_range.rsplit("/", 1)[1])
    length = response.headers.get("Content-Length")
    return offset + int(length) if length is not None else None


def _copy(response: Any, f: Any) -> None:
    while True:
        try:
            chunk = response.read(CHUNK)
        except http.client.IncompleteRead as err:
            f.write(err.partial)
            return
        if not chunk:
            return
        f.write(chunk)


def verify(path: Path, artefact: Artefact) -> str:
    """sha256 of ``path``, checked against the catalog; a mismatch deletes the file and raises."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    actual, size = digest.hexdigest(), path.stat().st_size
    if artefact.size is not None and size != artefact.size:
        path.unlink()
        raise ValueError(f"{path}: size {size} bytes, catalog expects {artefact.size}; the file was removed, "
                         "rerun to download it again")
    if artefact.sha256 is None and artefact.sha256_prefix is not None:
        if not actual.startswith(artefact.sha256_prefix):
            path.unlink()
            raise ValueError(f"{path}: sha256 {actual} of {artefact.file} does not start with the "
                             f"published prefix {artefact.sha256_prefix}; the file was removed, rerun to "
                             "download it again")
        log.warning("%s: only the published sha256 prefix %s was checked; computed sha256 %s (size %d) - pin "
                    "it in catalog.yaml once the file is known to be good", artefact.file,
                    artefact.sha256_prefix, actual, size)
    elif artefact.sha256 is None:
        log.warning("%s: no sha256 in the catalog, integrity NOT verified; computed sha256 %s (size %d) - "
                    "pin it in catalog.yaml once the data are known to be good", artefact.file, actual, size)
    elif actual != artefact.sha256:
        path.unlink()
        raise ValueError(f"{path}: sha256 mismatch for {artefact.file}: expected {artefact.sha256}, "
                         f"got {actual}; the file was removed (it is not used), rerun to download it again")
    return actual


def extract(archive: Path, root: Path) -> None:
    """Extract a zip/tar archive into a temporary folder beside ``root``, then move entries into ``root``.

    A file without an archive suffix (``ARCHIVE_SUFFIXES``) is placed as is, even if it is a zip
    inside (a torch ``.pth`` checkpoint is).
    """
    tmp = root / f".extract-{archive.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if not archive.name.endswith(ARCHIVE_SUFFIXES):
            shutil.copy2(archive, tmp / archive.name)  # a plain file (a .mat, a .pth - itself a zip): as is
        elif zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                _check_members(archive, zf.namelist())
                zf.extractall(tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                _check_members(archive, tf.getnames())
                tf.extractall(tmp, filter="data")
        else:
            head = archive.read_bytes()[:60]
            archive.unlink()
            raise ValueError(f"{archive}: not a valid archive (starts with {head!r}; an HTML page from the "
                             "host?); the file was removed - check the URL or place the file by hand")
        for entry in sorted(tmp.iterdir()):
            _merge(entry, root / entry.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_members(archive: Path, names: list[str]) -> None:
    for name in names:
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError(f"{archive}: refusing member {name!r}, which points outside the "
                             "extraction folder")


def _merge(src: Path, dst: Path) -> None:
    """Move ``src`` onto ``dst`` (each rename atomic); folders are merged entry by entry."""
    if dst.is_dir() and src.is_dir():
        for child in sorted(src.iterdir()):
            _merge(child, dst / child.name)
        return
    if dst.is_dir():
        shutil.rmtree(dst)
    os.replace(src, dst)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", required=True, help="DownloadSpec as inline JSON or a JSON file path")
    parser.add_argument("--manifest", required=True, type=Path, help="output JSON manifest")


def main(args: argparse.Namespace) -> None:
    run(load_spec_arg(DownloadSpec, args.spec), args.manifest)
