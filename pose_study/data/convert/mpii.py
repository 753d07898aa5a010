"""MPII Human Pose → canonical HDF5 (2D, MPII-16 joints, head boxes for PCKh).

Reads either annotation form (``spec.annotation_format``: ``auto`` | ``json`` | ``release``):

* **JSON** (default when present; the form PCKh evaluators use): ``annot/{train,valid}.json``
  (or OpenMMLab's names ``annotations/mpii_{train,val}.json``), a list of per-person dicts
  ``image``, ``center`` [x, y] (1-based px), ``scale`` (person height / 200 px), ``joints`` 16×[x, y]
  (1-based px, ``[-1, -1]`` = missing), ``joints_vis`` (1 = annotated). The ``valid`` split is
  Tompson's validation split (2,958 people); its head boxes come from ``annot/gt_valid.mat``
  (``headboxes_src`` 2×2×N = [corner, xy, sample], 1-based px, same order as ``valid.json``).
* **RELEASE**: the official ``mpii_human_pose_v1_u12_1.mat`` struct ``RELEASE`` (``annolist``,
  ``img_train``; per rect ``x1 y1 x2 y2`` head box, ``scale``, ``objpos.x/y``,
  ``annopoints.point(id, x, y, is_visible)`` with 0-based ``id`` and 1-based px). Split ``train``
  = every annotated person on ``img_train == 1`` images; this *includes* the people of the JSON
  validation split, which does not exist in the RELEASE file (use the JSON form for ``valid``).

Conventions: all pixels are shifted by −1 to 0-based (centre, joints and head box alike). The
crop follows the MPII convention: centre moved down by 15·scale px, side = box_margin × 200 ·
scale px (box_margin 1.25 reproduces the usual 1.25 enlargement). A joint is valid when it is
annotated; ``is_visible`` (occlusion) is not used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pose_study.data.convert import (
    ConvertReport, SampleBuffer, check_split, finish, find_file, load_mat, mat_field, mat_variable,
    number, open_image, plain, records, split_info, text,
)
from pose_study.skeletons import MPII16, to_canonical

DATASET = "mpii"
SPLITS = ("train", "valid")
JSON_FILES = {"train": ("annot/train.json", "annotations/mpii_train.json"),
              "valid": ("annot/valid.json", "annotations/mpii_val.json")}
GT_VALID = ("annot/gt_valid.mat", "annotations/mpii_gt_val.mat")
RELEASE = ("mpii_human_pose_v1_u12_1.mat", "*/mpii_human_pose_v1_u12_1.mat")
JSON_KEYS = ("image", "center", "scale", "joints", "joints_vis")


@dataclass(frozen=True)
class Person:
    """One annotated person, pixels already 0-based.

    Attributes:
        image: File name under ``images/``.
        center: [2] MPII ``objpos`` / JSON ``center``, px.
        scale: Person height / 200 px.
        joints: [16, 2] MPII-16 joints, px; ``valid`` [16] bool.
        head_box: [4] x1, y1, x2, y2 px, or None.
    """

    image: str
    center: np.ndarray
    scale: float
    joints: np.ndarray
    valid: np.ndarray
    head_box: np.ndarray | None


def convert(root: Path, split: str, out: Path, spec: Any) -> ConvertReport:
    """Convert one MPII split (``train`` | ``valid``) to ``out``; see the module docstring."""
    check_split(DATASET, split, SPLITS)
    root = Path(root)
    report = ConvertReport(DATASET, split)
    items = read_json(root, split) if _use_json(root, split, spec.annotation_format) \
        else read_release(root, split)
    info = split_info(DATASET, split, MPII16.name, __name__)
    buffer = SampleBuffer(spec, with_3d=False, with_head_box=True, out=out, info=info)
    for item in items[:: spec.every_nth]:
        report.read += 1
        if isinstance(item, str):
            report.skip(item)
            continue
        image = open_image(root / "images" / item.image, spec, report)
        if image is not None:
            _add(buffer, image, item, spec.box_margin)
    return finish(buffer, info, out, spec, report)


def _add(buffer: SampleBuffer, image: Any, person: Person, margin: float) -> None:
    joints, valid = to_canonical(person.joints[None], person.valid[None], MPII16)
    center = person.center + np.array([0.0, 15.0 * person.scale])  # MPII convention: box centre lower
    buffer.add(image, center, margin * 200.0 * person.scale, joints[0], valid[0],
               head_box=person.head_box, clip=person.image)


def _use_json(root: Path, split: str, annotation_format: str) -> bool:
    if annotation_format not in ("auto", "json", "release"):
        raise ValueError(f"mpii: annotation_format must be auto, json or release, got {annotation_format!r}")
    if annotation_format == "auto":
        return split == "valid" or any((root / c).is_file() for c in JSON_FILES[split])
    return annotation_format == "json"


# --- JSON form ------------------------------------------------------------------------------------


def read_json(root: Path, split: str) -> list[Person | str]:
    """People of the JSON split file, in file order (a str item is a skip reason)."""
    path = find_file(root, JSON_FILES[split], f"MPII {split} annotations (JSON)")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of per-person entries, got {type(entries).__name__}")
    boxes = read_head_boxes(root, len(entries)) if split == "valid" else None
    return [_json_person(e, i, path, None if boxes is None else boxes[i]) for i, e in enumerate(entries)]


def _json_person(entry: Any, i: int, path: Path, head_box: np.ndarray | None) -> Person | str:
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: entry {i} is not an object")
    for key in JSON_KEYS:
        if key not in entry:
            raise ValueError(f"{path}: entry {i} has no key {key!r} (expected keys {list(JSON_KEYS)})")
    joints = np.asarray(entry["joints"], dtype=np.float64)
    vis = np.asarray(entry["joints_vis"], dtype=np.float64)
    center = np.asarray(entry["center"], dtype=np.float64)
    if joints.shape != (16, 2) or vis.shape != (16,) or center.shape != (2,):
        raise ValueError(f"{path}: entry {i}: 'joints' must be 16x2, 'joints_vis' 16 and 'center' 2 "
                         f"values; got {joints.shape}, {vis.shape}, {center.shape}")
    if not float(entry["scale"]) > 0:
        return "no person scale"
    valid = (vis > 0) & ~np.all(joints == -1, axis=1)  # [-1, -1] marks a missing joint
    return Person(str(entry["image"]), center - 1, float(entry["scale"]),
                  np.where(valid[:, None], joints - 1, 0.0), valid, head_box)


def read_head_boxes(root: Path, count: int) -> np.ndarray:
    """[N, 4] head boxes x1, y1, x2, y2 (0-based px) from ``gt_valid.mat`` ``headboxes_src``."""
    path = find_file(root, GT_VALID, "MPII validation head boxes (gt_valid.mat, needed for PCKh)")
    boxes = np.asarray(mat_field(load_mat(path), "headboxes_src", path, "the file"), dtype=np.float64)
    if boxes.shape != (2, 2, count):
        raise ValueError(f"{path}: field 'headboxes_src' has shape {boxes.shape}, expected (2, 2, {count}) "
                         "to match the validation JSON")
    return boxes.transpose(2, 0, 1).reshape(count, 4) - 1  # [corner, xy] -> x1 y1 x2 y2, 1-based -> 0


# --- RELEASE struct -------------------------------------------------------------------------------


def read_release(root: Path, split: str) -> list[Person | str]:
    """Annotated people of ``img_train == 1`` images from the RELEASE struct."""
    if split != "train":
        raise ValueError(f"mpii: split {split!r} is defined only by the JSON annotations "
                         f"({' or '.join(JSON_FILES[split])}); set annotation_format to 'json' or 'auto'")
    path = find_file(root, RELEASE, "MPII RELEASE annotations (mpii_human_pose_v1_u12_1.mat)")
    mat = load_mat(path, simplify_cells=True)
    return release_people(plain(mat_variable(mat, "RELEASE", path)), path)


def release_people(release: dict, path: Path) -> list[Person | str]:
    """People from a RELEASE struct already passed through :func:`plain`."""
    annolist = records(mat_field(release, "annolist", path, "RELEASE"))
    img_train = np.atleast_1d(np.asarray(mat_field(release, "img_train", path, "RELEASE"))).ravel()
    if len(img_train) != len(annolist):
        raise ValueError(f"{path}: RELEASE.img_train has {len(img_train)} entries but annolist has "
                         f"{len(annolist)}")
    items: list[Person | str] = []
    for i, (entry, train) in enumerate(zip(annolist, img_train, strict=True)):
        if not train:
            continue  # test image: ground truth withheld
        where = f"RELEASE.annolist({i + 1})"
        name = text(mat_field(mat_field(entry, "image", path, where), "name", path, f"{where}.image"))
        for r, rect in enumerate(records(entry.get("annorect"))):
            items.append(_release_person(rect, name, path, f"{where}.annorect({r + 1})"))
    return items


def _release_person(rect: dict, name: str, path: Path, where: str) -> Person | str:
    points = records(rect.get("annopoints"))
    points = records(points[0].get("point")) if points else []
    objpos = records(rect.get("objpos"))
    scale = number(rect.get("scale"))
    if not points:
        return "rect without annopoints"
    if not objpos or scale is None or number(objpos[0].get("x")) is None:
        return "rect without objpos/scale"
    joints, valid = np.zeros((16, 2)), np.zeros(16, dtype=bool)
    for p, point in enumerate(points):
        values = [number(mat_field(point, key, path, f"{where}.annopoints.point({p + 1})"))
                  for key in ("id", "x", "y")]
        if None in values or not 0 <= values[0] <= 15:
            raise ValueError(f"{path}: {where}.annopoints.point({p + 1}) has an empty or invalid "
                             f"id/x/y {values}")
        joints[int(values[0])] = (values[1] - 1, values[2] - 1)
        valid[int(values[0])] = True
    corners = [number(rect.get(k)) for k in ("x1", "y1", "x2", "y2")]
    head_box = None if None in corners else np.asarray(corners, dtype=np.float64) - 1
    center = np.array([number(objpos[0]["x"]), number(objpos[0]["y"])]) - 1
    return Person(name, center, scale, joints, valid, head_box)
