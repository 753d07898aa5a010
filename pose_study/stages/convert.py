"""Stage ``convert``: one split of a real dataset, official format → canonical HDF5.

Inputs: the dataset root (official files as listed in ``pose_study/data/catalog.yaml``, checked
by the ``download`` stage). Outputs: ``--out`` (canonical HDF5, ``formats.FORMAT_VERSION``, with
``source="real"``) and, beside it, ``<stem>.spec.json`` (resolved spec + provenance; reusable as
``--spec``) and ``<stem>.report.json`` (samples read / written / skipped per reason).

Command line::

    python -m pose_study convert --spec '{"dataset": "mpii", "root": "data/raw/mpii",
        "split": "valid", "crop_size": 256}' --out results/paper/data/mpii/valid.h5
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pose_study._io import write_json
from pose_study._spec import load_spec_arg, spec_record
from pose_study.data.catalog import get_dataset
from pose_study.data.convert import (
    ConvertReport, flic, h36m, lsp, mocap, mpi3dhp, mpii, occlusion_person, pw3d,
)
from pose_study.data.formats import ENCODINGS

log = logging.getLogger(__name__)

# Catalog dataset name -> converter; lsp.convert reads both LSP and LSP-Extended (spec.dataset).
CONVERTERS: dict[str, Callable[..., ConvertReport]] = {
    "mpii": mpii.convert,
    "lsp": lsp.convert,
    "lspet": lsp.convert,
    "flic_full": flic.convert,
    "h36m": h36m.convert,
    "mpi_inf_3dhp": mpi3dhp.convert,
    "occlusion_person": occlusion_person.convert,
    "3dpw": pw3d.convert,
    "cmu_mocap": mocap.convert_cmu,  # pose-only (no images): crop_size and image_encoding are unused
    "amass": mocap.convert_amass,
}


@dataclass(frozen=True)
class ConvertSpec:
    """Settings of one conversion.

    Attributes:
        dataset: Catalog name (``mpii``, ``lsp``, ``lspet``, ``flic_full``, ``h36m``,
            ``mpi_inf_3dhp``, ``occlusion_person``, ``3dpw``).
        root: Folder holding the dataset's official files (layout in the catalog).
        split: One of the dataset's splits in the catalog.
        crop_size: Side of the square person crops, pixels.
        every_nth: Keep every n-th sample: frames ``0, n, 2n, …`` of each clip for video datasets,
            every n-th annotated person otherwise. Unselected samples are not read or counted.
        skip_bad_images: Skip (and count) missing or corrupt images instead of failing.
        image_encoding: ``raw`` (uint8 crops) or ``jpeg`` (bytes; use for large 3D sets).
        box_margin: Crop side / person box side (MPII: × 200·scale; others: × the longer side of
            the joints' extent or of the dataset's box).
        annotation_format: MPII only: ``auto`` (JSON if present), ``json`` or ``release``.
        subjects: Human3.6M and MPI-INF-3DHP: convert only these subjects of the split (e.g.
            ``[S1, S5]`` while the others are still downloading); empty (the default): all of them.
    """

    dataset: str
    root: str
    split: str
    crop_size: int = 256
    every_nth: int = 1
    skip_bad_images: bool = False
    image_encoding: str = "raw"
    box_margin: float = 1.25
    annotation_format: str = "auto"
    subjects: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        entry = get_dataset(self.dataset)  # ValueError naming the known datasets
        if self.split not in entry.splits:
            raise ValueError(f"{self.dataset}: unknown split {self.split!r}; choices: {list(entry.splits)}")
        if not (isinstance(self.crop_size, int) and self.crop_size >= 8):
            raise ValueError(f"crop_size must be an integer >= 8, got {self.crop_size!r}")
        if not (isinstance(self.every_nth, int) and self.every_nth >= 1):
            raise ValueError(f"every_nth must be an integer >= 1, got {self.every_nth!r}")
        if self.image_encoding not in ENCODINGS:
            raise ValueError(f"image_encoding must be one of {ENCODINGS}, got {self.image_encoding!r}")
        if not self.box_margin > 0:
            raise ValueError(f"box_margin must be positive, got {self.box_margin!r}")
        if self.annotation_format not in ("auto", "json", "release"):
            raise ValueError("annotation_format must be auto, json or release, "
                             f"got {self.annotation_format!r}")
        if self.subjects:
            known = entry.tables.get("subjects", {}).get(self.split)
            if known is None:
                raise ValueError(f"{self.dataset}: convert option 'subjects' is for datasets with subjects "
                                 "(h36m, mpi_inf_3dhp); remove it")
            unknown = [s for s in self.subjects if s not in known]
            if unknown:
                raise ValueError(f"{self.dataset}/{self.split}: convert option 'subjects' names {unknown}, "
                                 f"not subjects of this split; choose from {known}")


def run(spec: ConvertSpec, out: Path) -> ConvertReport:
    """Convert ``spec.split`` of ``spec.dataset`` to ``out`` and write the sidecar JSON files."""
    out = Path(out)
    root = Path(spec.root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset root of {spec.dataset!r} does not exist; run "
                                f"`python -m pose_study download` for it first")
    log.info("convert %s/%s from %s -> %s (%s)", spec.dataset, spec.split, root, out, spec)
    report = CONVERTERS[spec.dataset](root, spec.split, out, spec)
    write_json(out.with_name(out.stem + ".spec.json"), spec_record(spec))
    write_json(out.with_name(out.stem + ".report.json"), report.to_dict())
    return report


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", required=True, help="ConvertSpec as inline JSON or a JSON file path")
    parser.add_argument("--out", required=True, type=Path, help="output canonical HDF5 file")


def main(args: argparse.Namespace) -> None:
    run(load_spec_arg(ConvertSpec, args.spec), args.out)
