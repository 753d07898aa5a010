"""LSP and LSP-Extended (LSPET) → canonical HDF5 (2D, LSP-14 joints).

Both ship ``joints.mat`` with one float64 variable ``joints`` and ``images/``, but the axis orders
and the meaning of the flag differ (``reference/datasets.md`` §2):

=========  ===================  ==========================  ===================================
dataset    ``joints`` shape     axes                        flag
=========  ===================  ==========================  ===================================
lsp        3 × 14 × 2000        [x / y / flag, joint, image]  1 = occluded; every joint annotated
lspet      14 × 3 × N (10000)   [joint, x / y / flag, image]  1 = visible; 0 = treated as missing
=========  ===================  ==========================  ===================================

Splits: LSP images 1–1000 = ``train``, 1001–2000 = ``test``; LSPET: all images = ``train``.
Images: LSP ``images/im%04d.jpg``, LSPET ``images/im%05d.jpg`` (1-based).

No person boxes are given. Convention used here: centre = midpoint of the annotated joints'
x/y extent, crop side = box_margin × the longer side of that extent (pixels assumed 1-based as
written by the MATLAB annotation tool, shifted to 0-based). This replaces the seed's UniPose rule
(scale = (y-extent + 4) / 368), whose crop cut persons off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pose_study.data import crop
from pose_study.data.convert import (
    ConvertReport, SampleBuffer, check_split, finish, find_file, load_mat, mat_variable, open_image,
    split_info,
)
from pose_study.skeletons import LSP14, to_canonical

SPLITS = {"lsp": ("train", "test"), "lspet": ("train",)}
LSP_IMAGES = 2000
LSP_TRAIN = 1000  # images 1..1000 train, 1001..2000 test


def convert(root: Path, split: str, out: Path, spec: Any) -> ConvertReport:
    """Convert one split of ``spec.dataset`` (``lsp`` | ``lspet``) to ``out``."""
    dataset = spec.dataset
    if dataset not in SPLITS:
        raise ValueError(f"lsp.convert handles datasets {sorted(SPLITS)}, got {dataset!r}")
    check_split(dataset, split, SPLITS[dataset])
    path = find_file(Path(root), ("joints.mat", "*/joints.mat"), f"{dataset} joints.mat")
    xy, valid = read_joints(path, dataset)
    report = ConvertReport(dataset, split)
    info = split_info(dataset, split, LSP14.name, __name__)
    buffer = SampleBuffer(spec, with_3d=False, out=out, info=info)
    for i in split_indices(dataset, split, len(xy))[:: spec.every_nth]:
        report.read += 1
        center, side = crop.box_from_points(xy[i], valid[i], spec.box_margin)
        if valid[i].sum() < 2 or side < 1:
            report.skip("fewer than 2 distinct annotated joints")
            continue
        name = f"im{i + 1:04d}.jpg" if dataset == "lsp" else f"im{i + 1:05d}.jpg"
        image = open_image(path.parent / "images" / name, spec, report)
        if image is None:
            continue
        joints, joints_valid = to_canonical(xy[i][None], valid[i][None], LSP14)
        buffer.add(image, center, side, joints[0], joints_valid[0], clip=name, frame=i)
    return finish(buffer, info, out, spec, report)


def read_joints(path: Path, dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-image joints from ``joints.mat``.

    Returns:
        ([N, 14, 2] 0-based px, [N, 14] bool annotated).
    """
    joints = np.asarray(mat_variable(load_mat(path), "joints", path), dtype=np.float64)
    if dataset == "lsp":
        if joints.shape != (3, 14, LSP_IMAGES):
            raise ValueError(f"{path}: field 'joints' has shape {joints.shape}; LSP's joints.mat is "
                             f"3x14x{LSP_IMAGES} [x/y/flag, joint, image] (an LSPET file is 14x3xN)")
        per_image = joints.transpose(2, 1, 0)  # -> [image, joint, x/y/flag]
        valid = np.isfinite(per_image[..., :2]).all(axis=-1)  # flag 1 = occluded: still annotated
    else:
        if joints.ndim != 3 or joints.shape[:2] != (14, 3):
            raise ValueError(f"{path}: field 'joints' has shape {joints.shape}; LSPET's joints.mat is "
                             "14x3xN [joint, x/y/flag, image] (an LSP file is 3x14x2000)")
        per_image = joints.transpose(2, 0, 1)  # -> [image, joint, x/y/flag]
        valid = per_image[..., 2] == 1  # flag 1 = visible; 0 = unreliable -> missing
    flags = per_image[..., 2]
    if not np.isin(flags, (0, 1)).all():
        raise ValueError(f"{path}: field 'joints' flag values must be 0 or 1, found {np.unique(flags)[:5]}")
    xy = np.where(valid[..., None], per_image[..., :2] - 1, 0.0)  # 1-based -> 0-based px
    return xy, valid


def split_indices(dataset: str, split: str, count: int) -> np.ndarray:
    """0-based image indices of a split."""
    if dataset == "lspet":
        return np.arange(count)
    return np.arange(LSP_TRAIN) if split == "train" else np.arange(LSP_TRAIN, count)
