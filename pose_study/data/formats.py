"""The canonical on-disk format: one HDF5 file per dataset split, pre-cropped around the person.

Every converter and the synthetic world write this format; training and evaluation read only it.
It is plain HDF5, readable by any HDF5 tool. Format version 2 (version 1 without pose-only splits;
a version-1 file is a valid version-2 file and is read as such):

=================  ==================  =========  ====================================================
dataset            shape               dtype      meaning
=================  ==================  =========  ====================================================
images             [N, S, S, 3]        uint8      RGB crops (``image_encoding = "raw"``), or
                   [N] vlen uint8                 JPEG bytes (``image_encoding = "jpeg"``)
joints_2d          [N, K, 2]           float32    crop pixels, x right / y down, pixel centres at
                                                  integers (0-based)
joints_2d_valid    [N, K]              bool       annotated (*not* "visible": occluded but
                                                  annotated joints are valid)
joints_3d          [N, K, 3]           float32    camera frame, mm, x right / y down / z forward
                                                  (optional: absent for 2D-only data)
joints_3d_valid    [N, K]              bool       (with ``joints_3d``)
intrinsics         [N, 3, 3]           float32    pinhole K mapped to crop pixels (with
                                                  ``joints_3d``): ``joints_2d ~ K @ joints_3d``
center             [N, 2]              float32    crop centre in the source image, source pixels
scale              [N]                 float32    crop side length in source pixels
head_box           [N, 4]              float32    x1, y1, x2, y2 in crop pixels (MPII PCKh; NaN
                                                  where absent; optional)
subject            [N]                 str        subject id ("" if unknown)
action             [N]                 str        action / activity name ("" if unknown)
camera             [N]                 str        camera id ("" if unknown)
clip               [N]                 str        sequence id; frames of one clip share it
frame              [N]                 int64      frame index within the clip (-1 if unknown)
=================  ==================  =========  ====================================================

K is always the canonical joint set (``skeletons.CANONICAL``, 17 joints); joints a dataset lacks
are masked. File attributes: ``format_version``, ``dataset``, ``split``, ``skeleton`` (native
skeleton the labels came from), ``source`` (``real`` | ``synthetic``), ``converter`` (name and
version that wrote the file), ``image_encoding``, ``crop_size``.

**Pose-only splits** (version 2; motion capture without images, the study's ``mocap`` role) have
``image_encoding = "none"`` and ``crop_size = 0`` and hold only ``joints_3d``, ``joints_3d_valid``
and the string/frame metadata: no ``images``, ``joints_2d``, ``joints_2d_valid``, ``center``,
``scale``, ``intrinsics`` or ``head_box``. Having no camera, their ``joints_3d`` are in a world
frame, mm, with the same handedness and y-down convention as the camera frame: +y points along
gravity, the floor is near y = 0 (so the body has y < 0), x and z span the ground plane.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import h5py
import numpy as np

from pose_study._io import atomic_path
from pose_study.skeletons import CANONICAL, SKELETONS

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 2 only adds pose-only splits
K = CANONICAL.num_joints
SOURCES = ("real", "synthetic")
ENCODINGS = ("raw", "jpeg")
POSE_ONLY_ENCODING = "none"  # ``image_encoding`` of a pose-only split
IMAGE_CHUNK = 16  # raw crops per HDF5 chunk (a random batch reads whole chunks: keep it small)
LABEL_CHUNK = 4096  # samples per HDF5 chunk of the label columns and of JPEG entries


class FormatError(ValueError):
    """A file that does not follow the canonical format; the message names the file and field."""


@dataclass(frozen=True)
class SplitInfo:
    """File-level attributes of one split."""

    dataset: str
    split: str
    skeleton: str
    source: str
    converter: str

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        if self.skeleton not in SKELETONS:
            raise ValueError(f"unknown skeleton {self.skeleton!r}; choices: {sorted(SKELETONS)}")


@dataclass
class PoseSplit:
    """One dataset split in memory. Shapes as in the module docstring; optional fields may be None.

    A pose-only split has ``images``, ``joints_2d``, ``joints_2d_valid``, ``center`` and ``scale``
    None and ``joints_3d``/``joints_3d_valid`` set (see ``pose_only``).
    """

    info: SplitInfo
    images: np.ndarray | list[bytes] | None
    joints_2d: np.ndarray | None
    joints_2d_valid: np.ndarray | None
    center: np.ndarray | None
    scale: np.ndarray | None
    joints_3d: np.ndarray | None = None
    joints_3d_valid: np.ndarray | None = None
    intrinsics: np.ndarray | None = None
    head_box: np.ndarray | None = None
    subject: np.ndarray = field(default=None)  # type: ignore[assignment]
    action: np.ndarray = field(default=None)  # type: ignore[assignment]
    camera: np.ndarray = field(default=None)  # type: ignore[assignment]
    clip: np.ndarray = field(default=None)  # type: ignore[assignment]
    frame: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        n = len(self)
        for name in ("subject", "action", "camera", "clip"):
            if getattr(self, name) is None:
                setattr(self, name, np.full(n, "", dtype=object))
        if self.frame is None:
            self.frame = np.full(n, -1, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.joints_3d if self.joints_2d is None else self.joints_2d)

    @property
    def has_3d(self) -> bool:
        return self.joints_3d is not None

    @property
    def pose_only(self) -> bool:
        """True for a split of 3D poses without images, 2D labels or cameras."""
        return self.images is None

    def select(self, index: np.ndarray) -> PoseSplit:
        """A new split with the samples at ``index`` (bool mask or integer indices)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "info" or value is None:
                out[f.name] = value
            elif isinstance(value, list):
                idx = np.arange(len(value))[index]
                out[f.name] = [value[i] for i in idx]
            else:
                out[f.name] = value[index]
        return replace(self, **out)


# --- schema: (dtype kind, trailing shape) per array; None = any length ---------------------------

_ARRAYS: dict[str, tuple[str, tuple[int | None, ...]]] = {
    "joints_2d": ("f", (K, 2)),
    "joints_2d_valid": ("b", (K,)),
    "joints_3d": ("f", (K, 3)),
    "joints_3d_valid": ("b", (K,)),
    "intrinsics": ("f", (3, 3)),
    "center": ("f", (2,)),
    "scale": ("f", ()),
    "head_box": ("f", (4,)),
    "frame": ("i", ()),
}
_STRINGS = ("subject", "action", "camera", "clip")
_REQUIRED = ("images", "joints_2d", "joints_2d_valid", "center", "scale", *_STRINGS, "frame")
_TOGETHER = ("joints_3d", "joints_3d_valid", "intrinsics")
_POSE_ONLY_REQUIRED = ("joints_3d", "joints_3d_valid", *_STRINGS, "frame")
_IMAGE_ONLY = ("images", "joints_2d", "joints_2d_valid", "center", "scale", "intrinsics", "head_box")


def write_split(path: str | os.PathLike, split: PoseSplit, image_encoding: str = "raw") -> None:
    """Write ``split`` to ``path`` atomically, validating it first.

    Args:
        path: Destination ``.h5`` file.
        split: The data; ``images`` is [N, S, S, 3] uint8 (or a list of JPEG bytes), or None for a
            pose-only split.
        image_encoding: ``"raw"`` stores uint8 crops; ``"jpeg"`` stores JPEG bytes (encoded here
            when ``images`` is an array). Ignored for a pose-only split (stored as ``"none"``).
    """
    with SplitWriter(path, split.info, image_encoding) as writer:
        writer.append(split)


class SplitWriter:
    """Write a split chunk by chunk, in memory bounded by one chunk, atomically.

    ``append`` validates each part and adds it at the end; the file appears at ``path`` only when
    the ``with`` block ends without an error (``_io.atomic_path``). The first part fixes which
    optional fields the file has and the crop size; every part must agree. Raw crops are stored in
    HDF5 chunks of ``IMAGE_CHUNK`` crops, JPEG bytes as one variable-length entry per crop.

    Args:
        path: Destination ``.h5`` file.
        info: The file attributes.
        image_encoding: ``"raw"`` or ``"jpeg"`` (see ``write_split``); a pose-only split (images
            None) is stored as ``"none"`` with crop size 0.
    """

    def __init__(self, path: str | os.PathLike, info: SplitInfo, image_encoding: str = "raw") -> None:
        if image_encoding not in ENCODINGS:
            raise ValueError(f"image_encoding must be one of {ENCODINGS}, got {image_encoding!r}")
        self.path, self.info, self.encoding = Path(path), info, image_encoding
        self.count, self.crop_size = 0, None
        self._stack = contextlib.ExitStack()
        self._h5: h5py.File | None = None
        self._present: tuple[str, ...] = ()

    def __enter__(self) -> SplitWriter:
        tmp = self._stack.enter_context(atomic_path(self.path))
        self._h5 = self._stack.enter_context(h5py.File(tmp, "w"))
        return self

    def __exit__(self, kind, value, traceback) -> bool | None:
        try:
            if kind is None:
                if self.crop_size is None:
                    raise FormatError(f"{self.path}: nothing was written (append at least one part, even an "
                                      "empty one, before closing)")
                self._h5.attrs.update(
                    format_version=FORMAT_VERSION, image_encoding=self.encoding, crop_size=self.crop_size,
                    dataset=self.info.dataset, split=self.info.split, skeleton=self.info.skeleton,
                    source=self.info.source, converter=self.info.converter)
        except BaseException:
            self._stack.__exit__(*sys.exc_info())
            raise
        return self._stack.__exit__(kind, value, traceback)

    def append(self, part: PoseSplit) -> None:
        """Validate ``part`` and write it after what was written before."""
        if self._h5 is None:
            raise RuntimeError("use SplitWriter in a with block")
        where = f"{self.path} (samples {self.count}..{self.count + len(part)})"
        _check_arrays(part, where=where)
        present = tuple(name for name in _ARRAYS if getattr(part, name) is not None)
        if self.crop_size is None:
            self._start(part, present)
        elif present != self._present:
            raise FormatError(f"{where}: fields {present} differ from the first part's {self._present}")
        n = len(part)
        images = {} if part.pose_only else {"images": _encoded_images(part.images, self.encoding, where,
                                                                      self.crop_size)}
        columns = {**images, **{name: _cast(name, getattr(part, name)) for name in present},
                   **{name: np.asarray(getattr(part, name), dtype=object) for name in _STRINGS}}
        for name, data in columns.items():
            ds = self._h5[name]
            ds.resize(self.count + n, axis=0)
            if name == "images" and self.encoding == "jpeg":  # one entry at a time: equal lengths would broadcast
                for i, blob in enumerate(data):
                    ds[self.count + i] = blob
            elif n:
                ds[self.count:self.count + n] = data
        self.count += n

    def _start(self, part: PoseSplit, present: tuple[str, ...]) -> None:
        self._present = present
        self.crop_size = 0 if part.pose_only else _crop_size(part)
        if part.pose_only:
            self.encoding = POSE_ONLY_ENCODING  # no images dataset
        elif self.encoding == "raw":
            shape = (self.crop_size, self.crop_size, 3)
            self._h5.create_dataset("images", shape=(0, *shape), maxshape=(None, *shape), dtype=np.uint8,
                                    chunks=(IMAGE_CHUNK, *shape))
        else:
            self._h5.create_dataset("images", shape=(0,), maxshape=(None,), dtype=h5py.vlen_dtype(np.uint8),
                                    chunks=(LABEL_CHUNK,))
        for name in present:
            kind, trailing = _ARRAYS[name]
            self._h5.create_dataset(name, shape=(0, *trailing), maxshape=(None, *trailing),
                                    dtype={"f": np.float32, "b": bool, "i": np.int64}[kind],
                                    chunks=(LABEL_CHUNK, *trailing))
        for name in _STRINGS:
            self._h5.create_dataset(name, shape=(0,), maxshape=(None,), dtype=h5py.string_dtype(),
                                    chunks=(LABEL_CHUNK,))


def read_info(path: str | os.PathLike) -> SplitInfo:
    """Read only the file attributes (cheap)."""
    with _open(path) as h5:
        return _info(h5, path)


def read_split(path: str | os.PathLike, images: bool = True) -> PoseSplit:
    """Read and validate a split; with ``images=False`` the images are not loaded (empty array).

    A pose-only split is read with ``images=False`` only (its image fields are None); asking for
    its images raises ``FormatError``.
    """
    with _open(path) as h5:
        info = _info(h5, path)
        pose_only = is_pose_only(h5)
        if pose_only and images:
            raise FormatError(f"{path}: a pose-only split (no images); it can only feed pose-only "
                              "roles (lifter / pose pre-training), not an image model")
        for name in _POSE_ONLY_REQUIRED if pose_only else _REQUIRED:
            if name not in h5:
                raise FormatError(f"{path}: missing dataset {name!r} (format version {FORMAT_VERSION})")
        data = {name: h5[name][()] for name in _ARRAYS if name in h5}
        strings = {name: np.asarray(h5[name].asstr()[()], dtype=object) for name in _STRINGS}
        if pose_only:
            imgs = None
        else:
            imgs = _read_images(h5, path) if images else np.zeros((0, 0, 0, 3), np.uint8)
    split = PoseSplit(info=info, images=imgs, **{"joints_2d": None, "joints_2d_valid": None, "center": None,
                                                 "scale": None, **data}, **strings)
    _check_arrays(split, where=str(path), check_images=images)
    _check_finite(split, where=str(path))
    return split


def is_pose_only(h5: h5py.File) -> bool:
    """True if an open split file is pose-only (``image_encoding = "none"``)."""
    return str(h5.attrs.get("image_encoding", "raw")) == POSE_ONLY_ENCODING


def check_split(path: str | os.PathLike, role: str, needs_3d: bool = False) -> SplitInfo:
    """Check cheaply, before any work, that ``path`` can serve as ``role`` (e.g. ``"--train-3d"``).

    Args:
        path: A canonical split file.
        role: What the caller uses it for, named in the error (a flag or an input name).
        needs_3d: The role needs 3D labels (``joints_3d``).

    Returns:
        The split's attributes.

    Raises:
        FormatError: The split is empty, or has no 3D labels where ``needs_3d``; the message names
            the file and the role.
    """
    with _open(path) as h5:
        info = _info(h5, path)
        labels = "joints_2d" if "joints_2d" in h5 else "joints_3d"  # pose-only splits have 3D labels only
        n = len(h5[labels]) if labels in h5 else None
        has_3d = "joints_3d" in h5
    if n == 0:
        raise FormatError(f"{path}: the split is empty (0 samples), so it cannot serve as {role}; rerun the "
                          "convert/synthesize step that wrote it, or check that dataset's files")
    if needs_3d and not has_3d:
        raise FormatError(f"{path}: {role} needs 3D labels (joints_3d), but this split ({info.dataset}/{info.split}) "
                          "has 2D labels only; pass a split of a 3D dataset")
    return info


def decode_jpeg(data: bytes | np.ndarray) -> np.ndarray:
    """Decode JPEG bytes to an [H, W, 3] uint8 RGB array.

    libjpeg-turbo through simplejpeg: the pixels PIL gives (the same library and the same
    accurate DCT), without PIL's per-image parsing in Python, which costs as much as the decode
    itself for a 128 px crop. ``batches.StreamedSplit`` decodes with the same call.
    """
    import simplejpeg

    return simplejpeg.decode_jpeg(data, colorspace="RGB")


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """Encode an [H, W, 3] uint8 RGB array as JPEG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


# --- private helpers ------------------------------------------------------------------------------


def _open(path: str | os.PathLike) -> h5py.File:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such file (expected a canonical HDF5 split)")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise FormatError(f"{path}: not a readable HDF5 file ({err})") from err


def _info(h5: h5py.File, path: str | os.PathLike) -> SplitInfo:
    version = h5.attrs.get("format_version")
    if version is None:
        raise FormatError(f"{path}: attribute 'format_version' is missing; not a pose_study file")
    if int(version) not in READABLE_VERSIONS:
        raise FormatError(
            f"{path}: format_version is {int(version)}, this pose_study reads versions "
            f"{list(READABLE_VERSIONS)}; re-run the convert/synthesize step that wrote it"
        )
    try:
        return SplitInfo(**{f.name: str(h5.attrs[f.name]) for f in fields(SplitInfo)})
    except KeyError as err:
        raise FormatError(f"{path}: attribute {err.args[0]!r} is missing") from err
    except ValueError as err:
        raise FormatError(f"{path}: {err}") from err


def _cast(name: str, value: np.ndarray) -> np.ndarray:
    kind = _ARRAYS[name][0]
    return np.asarray(value, dtype={"f": np.float32, "b": bool, "i": np.int64}[kind])


def _check_arrays(split: PoseSplit, where: str, check_images: bool = True) -> None:
    n = len(split)
    if split.pose_only:
        _check_pose_only(split, where)
        check_images = False
    present = [name for name in _TOGETHER if getattr(split, name) is not None]
    if present and len(present) != len(_TOGETHER) and not split.pose_only:
        raise FormatError(f"{where}: {present} given without {sorted(set(_TOGETHER) - set(present))}")
    for name, (kind, shape) in _ARRAYS.items():
        value = getattr(split, name)
        if value is None:
            continue
        value = np.asarray(value)
        if value.shape != (n, *shape):
            raise FormatError(f"{where}: field {name!r} has shape {value.shape}, expected {(n, *shape)}")
        if not _kind_ok(value.dtype, kind):
            raise FormatError(f"{where}: field {name!r} has dtype {value.dtype}, expected kind {kind!r}")
    for name in _STRINGS:
        if len(getattr(split, name)) != n:
            raise FormatError(f"{where}: field {name!r} has {len(getattr(split, name))} entries, expected {n}")
    if check_images:
        _check_images(split.images, n, where)


def _check_pose_only(split: PoseSplit, where: str) -> None:
    extra = [name for name in _IMAGE_ONLY if getattr(split, name) is not None]
    if extra:
        raise FormatError(f"{where}: a pose-only split (images None) must not have {extra}")
    if split.joints_3d is None or split.joints_3d_valid is None:
        raise FormatError(f"{where}: a pose-only split needs 'joints_3d' and 'joints_3d_valid'")


def _check_finite(split: PoseSplit, where: str) -> None:
    """A valid joint's coordinates must be finite (NaN is allowed only where the joint is invalid)."""
    for name in ("joints_2d", "joints_3d"):
        coords = getattr(split, name)
        if coords is None:
            continue
        bad = ~np.isfinite(coords).all(axis=-1) & np.asarray(getattr(split, f"{name}_valid"), dtype=bool)
        if bad.any():
            row, joint = (int(i) for i in np.argwhere(bad)[0])
            raise FormatError(
                f"{where}: field {name!r} has a non-finite coordinate at a valid joint: first at row {row}, joint "
                f"{joint} ({CANONICAL.joints[joint]}); {int(bad.any(axis=1).sum())} row(s) in all. Mark such joints "
                f"invalid in {name + '_valid'!r} or fix the converter that wrote the file")


def _kind_ok(dtype: np.dtype, kind: str) -> bool:
    if kind == "b":
        return dtype == bool
    if kind == "i":
        return dtype.kind in "iu"
    return dtype.kind in "fiu"


def _check_images(images: np.ndarray | list[bytes], n: int, where: str) -> None:
    if isinstance(images, list) or (isinstance(images, np.ndarray) and images.dtype == object):
        if len(images) != n:
            raise FormatError(f"{where}: field 'images' has {len(images)} entries, expected {n}")
        return
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[0] != n or images.shape[3] != 3 \
            or images.shape[1] != images.shape[2]:
        raise FormatError(
            f"{where}: field 'images' has shape {images.shape} dtype {images.dtype}, "
            f"expected ({n}, S, S, 3) uint8"
        )


def _crop_size(split: PoseSplit) -> int:
    if isinstance(split.images, np.ndarray) and split.images.dtype == np.uint8:
        return int(split.images.shape[1])
    first = split.images[0] if len(split.images) else None
    return int(decode_jpeg(first).shape[0]) if first is not None else 0


def _encoded_images(images: np.ndarray | list[bytes], encoding: str, where: str, crop_size: int) -> np.ndarray:
    """``images`` as the stored column: [n, S, S, 3] uint8 (raw) or an object array of uint8 arrays (JPEG)."""
    raw = isinstance(images, np.ndarray) and images.dtype == np.uint8
    if encoding == "raw":
        data = images if raw else np.stack([decode_jpeg(b) for b in images]) if len(images) else \
            np.zeros((0, crop_size, crop_size, 3), np.uint8)
        if data.shape[1:] != (crop_size, crop_size, 3):
            raise FormatError(f"{where}: crops of {data.shape[1]} px after crops of {crop_size} px")
        return data
    out = np.empty(len(images), dtype=object)
    for i, im in enumerate(images):
        out[i] = np.frombuffer(encode_jpeg(im) if raw else bytes(im), dtype=np.uint8)
    return out


def _read_images(h5: h5py.File, path: str | os.PathLike) -> np.ndarray:
    encoding = str(h5.attrs.get("image_encoding", "raw"))
    if encoding not in ENCODINGS:
        raise FormatError(f"{path}: attribute 'image_encoding' is {encoding!r}, expected one of {ENCODINGS}")
    if encoding == "raw":
        return h5["images"][()]
    out = []
    for i, blob in enumerate(h5["images"]):
        try:
            out.append(decode_jpeg(blob))
        except Exception as err:  # PIL raises several types for corrupt data
            raise FormatError(f"{path}: field 'images' entry {i} is not a decodable JPEG ({err})") from err
    return np.stack(out) if out else np.zeros((0, 0, 0, 3), np.uint8)
