"""Stage ``synthesize``: render one split of a synthetic pose world to the canonical HDF5 format.

Inputs: none (no downloads); everything follows from a ``SynthesizeSpec`` (world, split, number
of samples, crop size, seed, joint set, dataset name), given as ``--spec`` JSON or as options.

Outputs:
  * ``OUT.h5``: canonical format version 2 (``pose_study.data.formats.FORMAT_VERSION``), ``source =
    "synthetic"``, labels in the 17 canonical joints with validity masks. ``wild`` writes 2D
    labels only (plus ``head_box`` for ``mpii16``); ``lab``/``occluded``/``outdoor`` also write
    ``joints_3d`` (camera frame, mm) and crop ``intrinsics``. ``mocap`` (a pose pool) writes a
    pose-only split: ``joints_3d`` in a world frame (y down, mm), no images, 2D or camera.
  * ``OUT.spec.json`` beside it (``OUT`` = the output path without ``.h5``): the resolved spec and
    provenance (package version, git SHA); ``--spec OUT.spec.json`` rebuilds the file exactly.

Images are rendered in chunks of ``chunk_size``; the data do not depend on the chunking.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from pose_study._io import write_json
from pose_study._spec import load_spec_arg, spec_record
from pose_study.data.synthetic import split as synthetic_split
from pose_study.data.synthetic.worlds import IMAGE_ENCODINGS, JOINT_SETS, SPLITS, WORLDS, SynthesizeSpec

log = logging.getLogger(__name__)
_OPTIONS = ("world", "split", "num_samples", "crop_size", "seed", "joint_set", "dataset", "clip_length",
            "chunk_size", "image_encoding")


def spec_json_path(out: Path) -> Path:
    """Where ``run`` writes the spec: ``<out without .h5>.spec.json``."""
    return out.with_name(out.name.removesuffix(".h5") + ".spec.json")


def run(spec: SynthesizeSpec, out: Path) -> None:
    """Render ``spec`` and write ``out`` (HDF5, atomically) and its ``.spec.json``.

    Args:
        spec: What to render.
        out: Destination ``.h5`` path; parent directories are created.
    """
    out = Path(out)
    log.info("synthesize %s/%s: %d images of %d px, seed %d, joint set %s -> %s", spec.world, spec.split,
             spec.num_samples, spec.crop_size, spec.seed, spec.joint_set, out)
    log.info("spec: %s", dataclasses.asdict(spec))
    synthetic_split.write(spec, out)
    write_json(spec_json_path(out), spec_record(spec))
    log.info("wrote %s and %s", out, spec_json_path(out))


# --- command line -------------------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the stage's options to ``parser``."""
    parser.add_argument("--spec", help="the whole SynthesizeSpec as inline JSON or the path of a JSON file "
                        "(e.g. a .spec.json written by this stage); options given as well override its keys "
                        "(--world also re-derives the default joint set and dataset name)")
    parser.add_argument("--world", choices=WORLDS, help="which synthetic world to render (required without "
                        "--spec): wild = 2D-only MPII/LSP/FLIC-like, lab = H36M-like, occluded = "
                        "Occlusion-Person-like, outdoor = MPI-INF-3DHP-like, mocap = a pose-only pool "
                        "(no images)")
    parser.add_argument("--split", choices=SPLITS, help="split to render (required without --spec); 3D "
                        "worlds use disjoint subjects per split")
    parser.add_argument("--num-samples", type=int, help="number of images (required without --spec)")
    parser.add_argument("--crop-size", type=int, help="square crop side in px, 64-256 (default 64)")
    parser.add_argument("--seed", type=int, help="random seed >= 0 (default 0); same spec = same data")
    parser.add_argument("--joint-set", choices=JOINT_SETS, help="labelled joints: wild takes mpii16 | lsp14 "
                        "| flic11 (default mpii16), the 3D worlds h36m17 (the default)")
    parser.add_argument("--dataset", help="dataset name stored in the file (default synth_<world>, "
                        "wild: synth_wild_<joint set>)")
    parser.add_argument("--clip-length", type=int, help="frames per clip in the 3D worlds (default 8)")
    parser.add_argument("--chunk-size", type=int, help="images rendered per batch (default 256); "
                        "does not change the data")
    parser.add_argument("--image-encoding", choices=IMAGE_ENCODINGS, help="raw uint8 crops (default) or "
                        "JPEG bytes in the file")
    parser.add_argument("--out", type=Path, required=True, help="output HDF5 path (…/SPLIT.h5); the spec "
                        "goes to the same path with .spec.json instead of .h5")


def spec_from_args(args: argparse.Namespace) -> SynthesizeSpec:
    """The spec from ``--spec`` and/or the individual options (options win)."""
    given = {name: getattr(args, name) for name in _OPTIONS if getattr(args, name) is not None}
    if args.spec is None:
        missing = [f"--{n.replace('_', '-')}" for n in ("world", "split", "num_samples") if n not in given]
        if missing:
            raise ValueError(f"give --spec or all of --world, --split, --num-samples (missing: {missing})")
        return SynthesizeSpec(**given)
    base = load_spec_arg(SynthesizeSpec, args.spec)
    if "world" in given:  # re-derive the world's defaults unless given too
        given.setdefault("joint_set", "")
        given.setdefault("dataset", "")
    return dataclasses.replace(base, **given)


def main(args: argparse.Namespace) -> None:
    """Entry point of ``python -m pose_study synthesize``."""
    run(spec_from_args(args), args.out)
