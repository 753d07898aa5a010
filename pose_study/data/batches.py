"""Batches from canonical HDF5 splits: whole splits held as uint8 tensors, gathered per batch.

This is the fast data path: one HDF5 read per split, then per step one indexed gather of uint8
crops, one transfer and normalisation on the device. No per-sample Python, no decode, no worker
processes. Sampling uses a ``torch.Generator`` so a resumed run draws exactly the batches the
uninterrupted run would have drawn.

* **JPEG splits** (``image_encoding = "jpeg"``) are decoded **once, at load** (``read_split``),
  into the same uint8 array a raw split gives; no step ever decodes. Memory: N × S² × 3 bytes
  (30 k crops of 256² are 5.9 GB).
* **Where the split lives on CUDA** (``resident``): ``"device"`` keeps the whole split in GPU memory
  (a batch is an on-device ``index_select``: no host work, no transfer); ``"host"`` keeps it in
  pinned host memory and gathers each batch into a pinned buffer, then copies it non-blocking;
  ``"auto"`` (the default) takes ``"device"`` when the split needs at most ``DEVICE_SHARE`` of
  the free GPU memory. On the CPU there is one choice.

**Streamed splits.** ``SplitTensors.load`` holds a split whole only when its decoded images fit
``memory_budget_mb`` (default: ``$POSE_STUDY_DATA_MEMORY_MB``, which the workflow sets from the
config key ``data_memory_mb`` like ``OMP_NUM_THREADS`` from a rule's threads, else
``DEFAULT_MEMORY_MB``). A larger split is
returned as a ``StreamedSplit``: the labels stay in memory (≈ 0.4 KB per sample), the images stay
on disk and each ``gather`` reads only the batch's crops, row by row in file order without
HDF5's chunk cache (raw crops), or their JPEG bytes in one read of the sorted rows, decoded by
libjpeg-turbo (simplejpeg) straight into the batch (in a thread pool when the job has more than
one CPU thread). The job's image memory is then a few batches, whatever the split's size; the file's
pages live in the OS page cache, which is not the process's memory. Both kinds give the same
``Batch`` for the same indices, so the draws, resumption and the on-device augmentation do not
change (``reports/benchmarks.md`` has the measurements behind these choices).
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np
import simplejpeg
import torch

from pose_study.data.formats import FormatError, PoseSplit, read_info, read_split
from pose_study.data.transforms import Batch, normalising_constants
from pose_study.resources import MEMORY_ENV

log = logging.getLogger(__name__)
RESIDENCES = ("auto", "device", "host")
DEVICE_SHARE = 0.2  # "auto" keeps a split on the GPU when it needs at most this share of free memory
_FIELDS = ("images", "joints_2d", "valid_2d", "joints_3d", "valid_3d", "intrinsics", "is_3d")
DEFAULT_MEMORY_MB = 2048  # decoded images up to this size are held whole (config: data_memory_mb)
DECODE_THREADS = 4  # JPEG decoding threads of a streamed split (capped by the CPU threads)


class SplitTensors:
    """One split's arrays as tensors on the host (pinned when the device is CUDA).

    Args:
        split: The split (images must be loaded as uint8 crops; ``read_split`` decodes JPEG ones).
        device: Where batches go.
        resident: ``"auto"``, ``"device"`` or ``"host"``: where the split is kept on CUDA (module
            docstring).
    """

    def __init__(self, split: PoseSplit, device: torch.device, resident: str = "auto") -> None:
        self.info = split.info
        self.device = device
        n = len(split)
        arrays = {"images": split.images, "joints_2d": split.joints_2d.astype(np.float32),
                  "valid_2d": split.joints_2d_valid}
        if split.has_3d:
            arrays.update(joints_3d=split.joints_3d.astype(np.float32), valid_3d=split.joints_3d_valid,
                          intrinsics=split.intrinsics.astype(np.float32))
        else:
            k = split.joints_2d.shape[1]
            arrays.update(joints_3d=np.zeros((n, k, 3), np.float32), valid_3d=np.zeros((n, k), bool),
                          intrinsics=np.broadcast_to(np.eye(3, dtype=np.float32), (n, 3, 3)))
        arrays["is_3d"] = np.full(n, split.has_3d)
        self._has_3d = split.has_3d and n > 0  # a host bool: asking never syncs with the device
        self.on_device = _on_device(device, resident, sum(a.nbytes for a in arrays.values()))
        place = device if self.on_device else None
        for name in _FIELDS:
            setattr(self, name, _tensor(arrays[name], pin=device.type == "cuda", device=place))

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device, resident: str = "auto",
             memory_budget_mb: float | None = None) -> SplitTensors | StreamedSplit:
        """Hold ``path`` whole for ``device`` (decoding JPEG crops once, here) when its decoded
        images fit ``memory_budget_mb`` (default ``memory_budget()``), else stream it.

        Both return values have the same interface and give the same batches.
        """
        budget = memory_budget() if memory_budget_mb is None else memory_budget_mb
        if budget < 0:
            raise ValueError(f"memory_budget_mb must be >= 0, got {budget}")
        read_info(path)  # a missing or foreign file: an error that names it
        need = decoded_image_bytes(path)
        if need > budget * 2**20:
            log.info("%s: decoded images need %.0f MiB > budget %.0f MiB: streaming them", path, need / 2**20,
                     budget)
            return StreamedSplit(path, device)
        t0 = time.perf_counter()
        split = read_split(path)
        if not isinstance(split.images, np.ndarray) or split.images.dtype != np.uint8:
            raise ValueError(f"{path}: images could not be loaded as uint8 crops")
        out = cls(split, device, resident)
        log.info("loaded %s: %d samples, %s, crop %d px, %s images, in %.1f s, kept on %s", path, len(split),
                 split.info.dataset, split.images.shape[1], image_encoding(path),
                 time.perf_counter() - t0, "the device" if out.on_device else "the host")
        return out

    def __len__(self) -> int:
        return len(self.joints_2d)

    @property
    def has_3d(self) -> bool:
        return self._has_3d

    @property
    def crop_size(self) -> int:
        return int(self.images.shape[1])

    def gather(self, index: torch.Tensor) -> Batch:
        """The samples at ``index`` ([B] int64, host) as a normalised ``Batch`` on the device.

        No host sync: on-device splits gather on the device; host splits on CUDA gather into a
        pinned buffer (the caching host allocator keeps it until its copy is done) and copy it
        non-blocking.
        """
        if self.on_device:
            index = index.to(self.device, non_blocking=True)
            moved = [getattr(self, name).index_select(0, index) for name in _FIELDS]
        elif self.device.type == "cuda":
            moved = [_pinned_gather(getattr(self, name), index).to(self.device, non_blocking=True)
                     for name in _FIELDS]
        else:
            moved = [getattr(self, name).index_select(0, index) for name in _FIELDS]
        return Batch(to_float_images(moved[0]), *moved[1:])


class StreamedSplit:
    """A split whose labels are held and whose images are read from its file per batch.

    The interface of ``SplitTensors`` (``len``, ``gather``, ``has_3d``, ``info``, ``device``,
    ``crop_size``); ``gather`` returns exactly what ``SplitTensors.gather`` returns for the
    same indices.

    Args:
        path: Canonical HDF5 split (raw or JPEG images).
        device: Where batches go.
        threads: JPEG decoding threads (default: ``DECODE_THREADS``, at most the torch CPU threads).
    """

    on_device = False

    def __init__(self, path: str | os.PathLike, device: torch.device, threads: int | None = None) -> None:
        self.path, self.device, self.info = str(path), device, read_info(path)
        self._h5 = h5py.File(path, "r", rdcc_nbytes=0)  # no chunk cache: read just the rows asked for
        self._images = self._h5["images"]
        self.jpeg = image_encoding(path) == "jpeg"
        self._crop = int(self._h5.attrs.get("crop_size", 0)) or int(self._images.shape[1])
        labels = _labels(self._h5, path)
        self._has_3d = "joints_3d" in self._h5 and len(labels["joints_2d"]) > 0
        self._labels = {name: torch.from_numpy(value) for name, value in labels.items()}
        if len(self._images) != len(self):
            raise FormatError(f"{path}: field 'images' has {len(self._images)} entries, expected {len(self)}")
        self._threads = threads or max(1, min(DECODE_THREADS, torch.get_num_threads()))
        self._pool = ThreadPoolExecutor(self._threads, "jpeg") if self.jpeg and self._threads > 1 else None

    def __len__(self) -> int:
        return len(self._labels["joints_2d"])

    @property
    def has_3d(self) -> bool:
        return self._has_3d

    @property
    def crop_size(self) -> int:
        return self._crop

    def gather(self, index: torch.Tensor) -> Batch:
        """The samples at ``index`` ([B] int64, host) as a normalised ``Batch`` on the device."""
        index = index.to("cpu", torch.int64)
        images = torch.from_numpy(self.read_images(index.numpy()))
        n, k = len(index), self._labels["joints_2d"].shape[1]
        parts = [images, self._labels["joints_2d"].index_select(0, index),
                 self._labels["valid_2d"].index_select(0, index)]
        if self._has_3d:
            parts += [self._labels[name].index_select(0, index) for name in ("joints_3d", "valid_3d", "intrinsics")]
        else:
            parts += [torch.zeros((n, k, 3)), torch.zeros((n, k), dtype=torch.bool), torch.eye(3).expand(n, 3, 3)]
        parts.append(torch.full((n,), self._has_3d))
        if self.device.type == "cuda":
            parts = [p.contiguous().pin_memory().to(self.device, non_blocking=True) for p in parts]
        else:
            parts = [p.contiguous() for p in parts]
        return Batch(to_float_images(parts[0]), *parts[1:])

    def read_images(self, index: np.ndarray) -> np.ndarray:
        """[len(index), S, S, 3] uint8 crops at ``index``: the distinct rows read in file order, one by one."""
        rows, inverse = np.unique(index, return_inverse=True)
        if len(rows) and (rows[0] < 0 or rows[-1] >= len(self)):
            raise IndexError(f"{self.path}: index out of range [0, {len(self)})")
        if self.jpeg:  # variable-length entries: one read of the sorted rows is 8x faster than one per row
            data = self._decode(self._images[rows] if len(rows) else [])
        else:
            data = np.empty((len(rows), self._crop, self._crop, 3), np.uint8)
            for k, i in enumerate(rows):  # row by row: h5py's fancy indexing (and read_direct) are slower
                data[k] = self._images[i]
        return data[inverse.reshape(-1)]

    def _decode(self, blobs: list[np.ndarray]) -> np.ndarray:
        out = np.empty((len(blobs), self._crop, self._crop, 3), np.uint8)

        def one(i: int) -> None:
            _decode_into(blobs[i], out[i], self.path)

        if self._pool is None:
            for i in range(len(blobs)):
                one(i)
        else:
            list(self._pool.map(one, range(len(blobs))))
        return out

    def close(self) -> None:
        """Close the file and the decoding threads."""
        if self._pool is not None:
            self._pool.shutdown()
        self._h5.close()


def _decode_into(blob: np.ndarray, out: np.ndarray, path: str) -> None:
    """Decode one crop's JPEG bytes straight into ``out`` ([S, S, 3] uint8, C-contiguous): the
    pixels of ``formats.decode_jpeg``, without a copy."""
    height, width = simplejpeg.decode_jpeg_header(blob)[:2]
    if (width, height) != (out.shape[1], out.shape[0]):
        raise FormatError(f"{path}: a JPEG crop decodes to {width}x{height} px, "
                          f"expected {out.shape[1]}x{out.shape[0]} (attribute crop_size)")
    simplejpeg.decode_jpeg(blob, colorspace="RGB", buffer=out)


def memory_budget() -> float:
    """MiB of decoded images a split may hold: ``$POSE_STUDY_DATA_MEMORY_MB``, else ``DEFAULT_MEMORY_MB``."""
    value = os.environ.get(MEMORY_ENV)
    if value is None:
        return float(DEFAULT_MEMORY_MB)
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"environment variable {MEMORY_ENV}={value!r} is not a number of MiB "
                         "(set the config key data_memory_mb to an integer)") from None


def decoded_image_bytes(path: str | os.PathLike) -> int:
    """Bytes of ``path``'s images decoded to uint8 crops (N × S² × 3), from its attributes."""
    with h5py.File(path, "r") as h5:
        if "images" not in h5:
            return 0
        images = h5["images"]
        size = int(h5.attrs.get("crop_size", 0)) or (int(images.shape[1]) if images.ndim == 4 else 0)
        return len(images) * size * size * 3


def _labels(h5: h5py.File, path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The label arrays ``gather`` needs, as contiguous float32/bool arrays."""
    names = {"joints_2d": ("joints_2d", np.float32), "valid_2d": ("joints_2d_valid", bool)}
    if "joints_3d" in h5:
        names.update(joints_3d=("joints_3d", np.float32), valid_3d=("joints_3d_valid", bool),
                     intrinsics=("intrinsics", np.float32))
    out = {}
    for name, (field, dtype) in names.items():
        if field not in h5:
            raise FormatError(f"{path}: missing dataset {field!r}")
        out[name] = np.ascontiguousarray(h5[field][()], dtype=dtype)
    return out


def to_float_images(images_u8: torch.Tensor) -> torch.Tensor:
    """``normalise_images`` (same values within float rounding) in one conversion and two in-place ops.

    The uint8 crops are made NCHW before the conversion: 3x faster on the CPU than converting
    through the permuted view, with the same values.
    """
    x = images_u8.permute(0, 3, 1, 2).contiguous().to(torch.float32)
    scale, shift = normalising_constants(x.device)
    return x.mul_(scale).sub_(shift)


def image_encoding(path: str | os.PathLike) -> str:
    """The ``image_encoding`` attribute of a canonical split (``raw`` when absent)."""
    with h5py.File(path, "r") as h5:
        return str(h5.attrs.get("image_encoding", "raw"))


def _on_device(device: torch.device, resident: str, nbytes: int) -> bool:
    if resident not in RESIDENCES:
        raise ValueError(f"resident must be one of {RESIDENCES}, got {resident!r}")
    if device.type != "cuda" or resident == "host":
        return False
    if resident == "device":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_SHARE * free


def _tensor(array: np.ndarray, pin: bool, device: torch.device | None = None) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(array))
    if device is not None:
        return t.to(device)
    return t.pin_memory() if pin else t


def _pinned_gather(source: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    out = torch.empty((len(index), *source.shape[1:]), dtype=source.dtype, pin_memory=True)
    return torch.index_select(source, 0, index, out=out)


def concat_batches(parts: list[Batch]) -> Batch:
    """Concatenate batches along the sample axis (e.g. the 3D and 2D parts of a fusion batch)."""
    if len(parts) == 1:
        return parts[0]
    return Batch(*(torch.cat([getattr(p, n) for p in parts]) for n in _FIELDS))


def random_indices(n: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` indices drawn uniformly from ``range(n)`` with replacement.

    Every step draws afresh from the whole split, so the 3D subset of a fusion run is different
    every epoch (the seed drew the same first-N subset each time).
    """
    return torch.randint(n, (count,), generator=generator)


def sequential_batches(n: int, batch_size: int):
    """Index tensors covering ``range(n)`` in order, for evaluation."""
    for start in range(0, n, batch_size):
        yield torch.arange(start, min(start + batch_size, n))
