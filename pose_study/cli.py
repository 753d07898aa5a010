"""Command line: ``python -m pose_study <stage> …``, one subcommand per stage.

Each stage module provides ``configure(parser)`` (its arguments) and ``main(args)`` (parse the
spec, call ``run``). This module only dispatches, sets up logging and turns exceptions into a
non-zero exit status with the message on stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from types import ModuleType

log = logging.getLogger("pose_study")


def _stages() -> list[tuple[str, ModuleType, str]]:
    # Imported here so that `python -m pose_study --help` stays importable even if one stage's
    # optional dependency is broken; each entry is (subcommand, module, one-line help).
    from pose_study.benchmarks import cost, memory, synthesis, training
    from pose_study.stages import (check_config, collect, convert, download, evaluate, finetune_3d, pretrain_2d,
                                   pretrain_pose, report, synthesize, train_lifter)

    return [
        ("synthesize", synthesize, "render one split of a synthetic pose world to canonical HDF5"),
        ("download", download, "fetch and verify a public dataset, or check a licensed one in place"),
        ("convert", convert, "convert one split of a real dataset's official files to canonical HDF5"),
        ("pretrain-2d", pretrain_2d, "2D pre-training (heatmaps) on a 2D dataset"),
        ("pretrain-pose", pretrain_pose, "pre-train an apt/mpt lifter from poses alone (masked poses / synthetic heatmaps)"),
        ("train-lifter", train_lifter, "train a 2D→3D lifter on ground-truth 2D of a 3D split (from scratch or pre-trained)"),
        ("finetune-3d", finetune_3d, "3D fine-tuning from 2D pre-trained weights or from scratch"),
        ("evaluate", evaluate, "score one trained model on test splits (one JSON per split)"),
        ("collect", collect, "gather every result into tidy CSV tables"),
        ("report", report, "render the study's single-file HTML report"),
        ("bench-synth", synthesis, "measure synthesis throughput (images/s per core)"),
        ("bench", training, "measure training throughput, MFU and the data path against the seed-style path"),
        ("check-config", check_config, "validate a study config as the workflow does (names file, line and key)"),
        ("bench-memory", memory, "peak RSS and data-path throughput of training jobs on small and large splits"),
        ("cost", cost, "a study's expected training FLOPs and device-hours per stage, from its config"),
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pose_study",
        description="Stages of the 2D-pre-training-for-3D-pose study. Snakemake calls these; "
        "each can also be run by hand (see the command line in any job log).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")
    for name, module, help_text in _stages():
        p = sub.add_parser(name, help=help_text, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.configure(p)
        p.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        args._main(args)
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except Exception as err:  # every failure is a non-zero exit with the reason named
        log.debug("traceback", exc_info=True)
        log.error("%s: %s", type(err).__name__, err)
        return 1
    return 0
