"""Converters from the official dataset formats to the canonical HDF5 format.

One module per dataset (``mpii``, ``lsp`` (LSP and LSP-Extended), ``flic``, ``h36m``, ``mpi3dhp``,
``occlusion_person``, ``pw3d``), each with ``convert(root, split, out, spec) -> ConvertReport``.
``spec`` is the convert stage's ``ConvertSpec`` (``pose_study.stages.convert``); converters read
``crop_size``, ``every_nth``, ``skip_bad_images``, ``image_encoding``, ``box_margin`` and
``annotation_format`` from it.

This module holds what every converter shares: the report of counts, the buffer that crops
samples and writes them (given ``out`` and ``info``, in parts of ``FLUSH_EVERY`` samples through a
:class:`~pose_study.data.formats.SplitWriter`, so a conversion's memory does not grow with the
split; the file appears only when ``finish`` completes it), image opening with the
``skip_bad_images`` policy, and file lookup with errors that say what to do.
"""

from __future__ import annotations

import logging
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image
from scipy.io.matlab import mat_struct

from pose_study.data import crop
from pose_study.data.formats import K, PoseSplit, SplitInfo, SplitWriter, encode_jpeg, write_split

log = logging.getLogger(__name__)

CONVERTER_VERSION = 1
FLUSH_EVERY = 512  # samples a streaming SampleBuffer holds before writing them


@dataclass
class ConvertReport:
    """What a conversion did: ``read == written + sum(skipped.values())``.

    Attributes:
        dataset: Catalog name of the dataset.
        split: Split name.
        read: Samples (people / frames) read from the annotations.
        written: Samples written to the output file.
        skipped: Skipped samples per reason.
    """

    dataset: str
    split: str
    read: int = 0
    written: int = 0
    skipped: Counter = field(default_factory=Counter)

    def skip(self, reason: str, count: int = 1) -> None:
        self.skipped[reason] += count

    def log(self) -> None:
        log.info("%s/%s: read %d, written %d, skipped %d %s", self.dataset, self.split, self.read,
                 self.written, sum(self.skipped.values()), dict(self.skipped))

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "split": self.split, "read": self.read,
                "written": self.written, "skipped": dict(self.skipped)}


class SampleBuffer:
    """Crops samples as they come and writes them as one canonical split.

    Joints given to :meth:`add` are canonical (``skeletons.CANONICAL`` order) in 0-based *source*
    pixels; the buffer maps them, the head box and the intrinsics into crop pixels.

    Args:
        spec: Convert spec (``crop_size``, ``image_encoding``).
        with_3d: Samples carry 3D joints and intrinsics.
        with_head_box: Samples carry a head box.
        out: With ``info``: stream to this file, ``FLUSH_EVERY`` samples at a time (``finish``
            completes it; until then only a temporary file beside it exists). Without: hold every
            sample until ``finish``.
        info: The file attributes (with ``out``).
    """

    def __init__(self, spec: Any, with_3d: bool, with_head_box: bool = False, *, out: Path | None = None,
                 info: SplitInfo | None = None) -> None:
        self.size = int(spec.crop_size)
        self.jpeg = spec.image_encoding == "jpeg"
        self.encoding = spec.image_encoding
        self.with_3d = with_3d
        self.with_head_box = with_head_box
        self.columns: dict[str, list] = {}
        self._clear()
        self.flushed = 0
        self._target = (Path(out), info) if out is not None and info is not None else None
        self._writer: SplitWriter | None = None
        self._abandon: weakref.finalize | None = None

    def __len__(self) -> int:
        return self.flushed + len(self.columns["images"])

    def _clear(self) -> None:
        self.columns = {name: [] for name in (
            "images", "joints_2d", "joints_2d_valid", "center", "scale", "joints_3d", "joints_3d_valid",
            "intrinsics", "head_box", "subject", "action", "camera", "clip", "frame")}

    def _flush(self) -> None:
        """Write the held samples to the streaming file (opened on the first flush)."""
        out, info = self._target
        if self._writer is None:
            self._writer = SplitWriter(out, info, self.encoding).__enter__()
            error = RuntimeError(f"{out}: conversion stopped before finish")  # removes the temporary file
            self._abandon = weakref.finalize(self, self._writer.__exit__, RuntimeError, error, None)
        self._writer.append(self.to_split(info))
        self.flushed += len(self.columns["images"])
        self._clear()

    def write(self, out: Path, info: SplitInfo) -> None:
        """Write every sample to ``out``: complete the streaming file, or write the held samples at once."""
        if self._target is None:
            write_split(out, self.to_split(info), image_encoding=self.encoding)
            return
        if len(self) == 0:
            raise ValueError(f"{info.dataset}/{info.split}: no samples to write (see the skip counts above)")
        if self.columns["images"] or self._writer is None:
            self._flush()
        self._abandon.detach()
        self._writer.__exit__(None, None, None)

    def add(self, image: Image.Image, center: np.ndarray, side: float, joints_2d: np.ndarray,
            valid_2d: np.ndarray, *, joints_3d: np.ndarray | None = None, valid_3d: np.ndarray | None = None,
            intrinsics: np.ndarray | None = None, head_box: np.ndarray | None = None,
            subject: str = "", action: str = "", camera: str = "", clip: str = "", frame: int = -1) -> None:
        """Crop ``image`` around ``center`` (``side`` source px) and append one sample.

        Args:
            image: Source image.
            center: [2] crop centre, source px (0-based).
            side: Crop side, source px.
            joints_2d: [K, 2] canonical joints, source px; [K] bool ``valid_2d``.
            joints_3d: [K, 3] camera frame mm and [K] bool ``valid_3d`` (3D datasets).
            intrinsics: [3, 3] source-pixel camera matrix (3D datasets).
            head_box: [4] x1, y1, x2, y2 source px, or None (stored as NaN).
        """
        matrix = crop.crop_matrix(center, side, self.size)
        pixels = crop.crop_image(image, center, side, self.size)
        c = self.columns
        c["images"].append(encode_jpeg(pixels) if self.jpeg else pixels)
        c["joints_2d"].append(np.where(valid_2d[:, None], crop.transform_points(joints_2d, matrix), 0.0))
        c["joints_2d_valid"].append(np.asarray(valid_2d, dtype=bool))
        c["center"].append(np.asarray(center, dtype=np.float64))
        c["scale"].append(float(side))
        if self.with_3d:
            have = joints_3d is not None
            c["joints_3d"].append(np.where(valid_3d[:, None], joints_3d, 0.0) if have else np.zeros((K, 3)))
            c["joints_3d_valid"].append(np.asarray(valid_3d, dtype=bool) if have else np.zeros(K, bool))
            c["intrinsics"].append(crop.crop_intrinsics(intrinsics, matrix))
        if self.with_head_box:
            box = np.full(4, np.nan) if head_box is None else \
                crop.transform_points(np.reshape(head_box, (2, 2)), matrix).reshape(4)
            c["head_box"].append(box)
        for name, value in (("subject", subject), ("action", action), ("camera", camera), ("clip", clip)):
            c[name].append(str(value))
        c["frame"].append(int(frame))
        if self._target is not None and len(c["images"]) >= FLUSH_EVERY:
            self._flush()

    def to_split(self, info: SplitInfo) -> PoseSplit:
        """The held samples (all of them unless streaming) as a :class:`PoseSplit` (``ValueError`` if none)."""
        c = self.columns
        if not c["images"]:
            raise ValueError(f"{info.dataset}/{info.split}: no samples to write (see the skip counts above)")
        optional = {}
        if self.with_3d:
            optional = {name: np.stack(c[name]).astype(np.float32 if name != "joints_3d_valid" else bool)
                        for name in ("joints_3d", "joints_3d_valid", "intrinsics")}
        if self.with_head_box:
            optional["head_box"] = np.stack(c["head_box"]).astype(np.float32)
        return PoseSplit(
            info=info,
            images=list(c["images"]) if self.jpeg else np.stack(c["images"]),
            joints_2d=np.stack(c["joints_2d"]).astype(np.float32),
            joints_2d_valid=np.stack(c["joints_2d_valid"]),
            center=np.stack(c["center"]).astype(np.float32),
            scale=np.asarray(c["scale"], dtype=np.float32),
            subject=np.asarray(c["subject"], dtype=object), action=np.asarray(c["action"], dtype=object),
            camera=np.asarray(c["camera"], dtype=object), clip=np.asarray(c["clip"], dtype=object),
            frame=np.asarray(c["frame"], dtype=np.int64),
            **optional,
        )


def finish(buffer: SampleBuffer, info: SplitInfo, out: Path, spec: Any,
           report: ConvertReport) -> ConvertReport:
    """Write the buffer to ``out`` (atomically), check the counts and log the report."""
    report.written = len(buffer)
    report.log()
    assert report.read == report.written + sum(report.skipped.values()), report.to_dict()
    buffer.write(out, info)
    return report


def split_info(dataset: str, split: str, skeleton: str, module: str) -> SplitInfo:
    """The file attributes of a converter's output (``source="real"``)."""
    return SplitInfo(dataset=dataset, split=split, skeleton=skeleton, source="real",
                     converter=f"{module} {CONVERTER_VERSION}")


def open_image(path: Path, spec: Any, report: ConvertReport,
               opener: Callable[[], BinaryIO] | None = None) -> Image.Image | None:
    """Open and fully decode an image, or apply the ``skip_bad_images`` policy.

    Args:
        path: The image file (or, with ``opener``, the name used in messages).
        spec: Convert spec (``skip_bad_images``).
        report: Where a skip is counted.
        opener: Optional callable returning a binary file object (e.g. a member of a zip archive);
            it raises ``FileNotFoundError`` when the image does not exist.

    Returns:
        The RGB image, or None when it is missing/corrupt and ``spec.skip_bad_images`` is set.

    Raises:
        FileNotFoundError / ValueError: the image is missing / not decodable (default policy).
    """
    try:
        with Image.open(opener() if opener else path) as img:
            img.load()
            return img.convert("RGB")
    except FileNotFoundError as err:
        if spec.skip_bad_images:
            report.skip("image missing")
            return None
        raise FileNotFoundError(f"{path}: image not found (set skip_bad_images: true in the convert "
                                "spec to skip and count missing images)") from err
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        if spec.skip_bad_images:
            report.skip("image corrupt")
            return None
        raise ValueError(f"{path}: image is corrupt or unreadable ({err}); set skip_bad_images: true "
                         "in the convert spec to skip and count such images") from err


def find_file(root: Path, candidates: tuple[str, ...], what: str) -> Path:
    """The first of ``candidates`` (paths/globs relative to ``root``) that exists.

    Raises:
        FileNotFoundError: naming ``what`` and every place that was tried.
    """
    for pattern in candidates:
        hits = sorted(root.glob(pattern)) if any(ch in pattern for ch in "*?[") else [root / pattern]
        hits = [h for h in hits if h.exists()]
        if hits:
            return hits[0]
    tried = ", ".join(str(root / c) for c in candidates)
    raise FileNotFoundError(f"{what} not found; looked for: {tried}. Run `python -m pose_study download` "
                            "for this dataset to check the whole layout")


def load_mat(path: Path, **kwargs: Any) -> dict[str, Any]:
    """``scipy.io.loadmat`` with errors that name the file."""
    from scipy.io import loadmat

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return loadmat(path, **kwargs)
    except NotImplementedError as err:  # MATLAB v7.3 files are HDF5
        raise ValueError(f"{path}: MATLAB v7.3 (HDF5) file where a v5 MAT-file was expected ({err})") from err
    except (ValueError, TypeError, OSError) as err:
        raise ValueError(f"{path}: not a readable MAT-file ({err})") from err


def mat_variable(mat: dict[str, Any], name: str, path: Path) -> Any:
    """Top-level variable ``name`` of a loaded MAT-file; ``ValueError`` naming the file and variable."""
    if name not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"{path}: no variable {name!r} (variables: {found}); is this the official file?")
    return mat[name]


def mat_field(container: Any, name: str, path: Path, where: str) -> Any:
    """Field ``name`` of a MAT struct (dict or numpy record); ``ValueError`` naming file and field."""
    names = container.dtype.names if isinstance(container, np.ndarray | np.void) else \
        (container.keys() if isinstance(container, dict) else ())
    if not names or name not in names:
        raise ValueError(f"{path}: {where} has no field {name!r} (fields: {sorted(names or [])}); "
                         "is this the official file?")
    return container[name]


def check_split(dataset: str, split: str, allowed: tuple[str, ...]) -> None:
    if split not in allowed:
        raise ValueError(f"{dataset}: unknown split {split!r}; choices: {list(allowed)}")


# --- MAT-file data, whichever loadmat options read it (struct_as_record, mat_struct, simplify_cells)


def plain(x: Any) -> Any:
    """Nested MAT data as dicts, lists, numbers and arrays, whichever ``loadmat`` options made it.

    1-element struct/cell arrays collapse to their element (as with ``simplify_cells=True``).
    """
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items() if not k.startswith("__")}
    if isinstance(x, mat_struct):
        return {k: plain(getattr(x, k)) for k in x._fieldnames}
    if isinstance(x, np.void) and x.dtype.names:
        return {k: plain(x[k]) for k in x.dtype.names}
    if isinstance(x, np.ndarray) and (x.dtype.names or x.dtype == object):
        items = [plain(v) for v in x.ravel(order="F")]
        return items[0] if len(items) == 1 else items
    if isinstance(x, list):
        return [plain(v) for v in x]
    return x


def records(value: Any) -> list[dict]:
    """A struct array as a list of dicts ([] for empty / missing)."""
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


def number(value: Any) -> float | None:
    """A MAT scalar as float; None when empty or missing (char '0'/'1' are read as numbers)."""
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.size == 0:
        return None
    item = arr.ravel()[0]
    try:
        return float(item)
    except (TypeError, ValueError):
        return None


def text(value: Any) -> str:
    """A MAT char array / string as str."""
    if isinstance(value, str):
        return value
    arr = np.asarray(value)
    return "".join(str(v) for v in arr.ravel()) if arr.size else ""
