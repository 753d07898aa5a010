"""FLIC-full → canonical HDF5 (2D, the 11 labelled FLIC parts).

Reads ``FLIC-full/examples.mat``: variable ``examples``, a 1×N struct array whose fields are, in
order, ``poselet_hit_idx, moviename, coords, filepath, imgdims, currframe, torsobox, istrain,
istest, isbad, isunchecked`` (fields are read by name). ``coords`` is 2×29 (row 0 = x, row 1 = y,
pixels, NaN = unlabelled); its columns are MODEC part ids, which are **1-based** (1 lsho … 17
nose). Column ``id − 1`` is read for each part, through ``skeletons.FLIC_COLUMNS`` — the
prototype's vector used the 1-based ids as 0-based columns and read every joint one part off.

Splits: ``train`` = ``istrain``, ``test`` = ``istest``. Images: ``images/<filepath>``.
Crop: square around the union of the labelled joints and ``torsobox`` ([x1 y1 x2 y2]), side =
box_margin × its longer side. Pixels are taken as 1-based (MATLAB) and shifted to 0-based.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pose_study.data import crop
from pose_study.data.convert import (
    ConvertReport, SampleBuffer, check_split, finish, find_file, load_mat, mat_field, mat_variable,
    number, open_image, split_info, text,
)
from pose_study.skeletons import FLIC11, FLIC_COLUMNS, to_canonical

DATASET = "flic_full"
SPLITS = {"train": "istrain", "test": "istest"}
FIELDS = ("moviename", "coords", "filepath", "currframe", "torsobox", "istrain", "istest")


def convert(root: Path, split: str, out: Path, spec: Any) -> ConvertReport:
    """Convert one FLIC-full split (``train`` | ``test``) to ``out``."""
    check_split(DATASET, split, tuple(SPLITS))
    path = find_file(Path(root), ("examples.mat", "*/examples.mat"), "FLIC-full examples.mat")
    examples = read_examples(path)
    selected = [k for k, ex in enumerate(examples) if number(ex[SPLITS[split]])]
    report = ConvertReport(DATASET, split)
    info = split_info(DATASET, split, FLIC11.name, __name__)
    buffer = SampleBuffer(spec, with_3d=False, out=out, info=info)
    for k in selected[:: spec.every_nth]:
        report.read += 1
        xy, valid = example_joints(examples[k], path, k)
        torso = np.asarray(examples[k]["torsobox"], dtype=np.float64).ravel()
        if torso.shape != (4,):
            raise ValueError(f"{path}: examples({k + 1}).torsobox has {torso.size} values, expected 4")
        points = np.concatenate([xy[valid], torso.reshape(2, 2) - 1])  # 1-based -> 0-based px
        center, side = crop.box_from_points(points, np.ones(len(points), bool), spec.box_margin)
        if side < 1:
            report.skip("degenerate person box")
            continue
        image = open_image(path.parent / "images" / text(examples[k]["filepath"]), spec, report)
        if image is None:
            continue
        joints, joints_valid = to_canonical(xy[None], valid[None], FLIC11)
        movie, frame = text(examples[k]["moviename"]), number(examples[k]["currframe"])
        buffer.add(image, center, side, joints[0], joints_valid[0], subject=movie, clip=movie,
                   frame=-1 if frame is None else int(frame))
    return finish(buffer, info, out, spec, report)


def read_examples(path: Path) -> np.ndarray:
    """The ``examples`` struct array as a flat array of records, required fields checked."""
    mat = load_mat(path)
    examples = mat_variable(mat, "examples", path)
    for name in FIELDS:
        mat_field(examples, name, path, "examples")
    return examples.ravel(order="F")


def example_joints(example: np.void, path: Path, k: int) -> tuple[np.ndarray, np.ndarray]:
    """[11, 2] FLIC11 joints (0-based px) and [11] bool labelled, from ``coords``."""
    coords = np.asarray(example["coords"], dtype=np.float64)
    if coords.shape != (2, 29):
        raise ValueError(f"{path}: examples({k + 1}).coords has shape {coords.shape}, expected 2x29 "
                         "(row 0 = x, row 1 = y; one column per MODEC part id)")
    xy = coords.T[list(FLIC_COLUMNS)]  # 1-based part id -> 0-based column id - 1
    valid = np.isfinite(xy).all(axis=1)
    return np.where(valid[:, None], xy - 1, 0.0), valid
