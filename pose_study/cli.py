"""Command line: ``python -m pose_study <stage> …``, one subcommand per stage.

Each stage module provides ``configure(parser)`` (its arguments) and ``main(args)`` (parse the
spec, call ``run``). This module only dispatches, sets up logging and turns exceptions into a
non-zero exit status with the message on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

log = logging.getLogger("pose_study")


# (subcommand, module, one-line help). A job imports only its own stage's module: the report's
# plotting stack alone (seaborn, scipy) costs every training job 1.5 s of start-up otherwise.
STAGES: tuple[tuple[str, str, str], ...] = (
    ("synthesize", "pose_study.stages.synthesize", "render one split of a synthetic pose world to canonical HDF5"),
    ("download", "pose_study.stages.download", "fetch and verify a public dataset, or check a licensed one in place"),
    ("convert", "pose_study.stages.convert", "convert one split of a real dataset's official files to canonical HDF5"),
    ("pretrain-2d", "pose_study.stages.pretrain_2d", "2D pre-training (heatmaps) on a 2D dataset"),
    ("pretrain-pose", "pose_study.stages.pretrain_pose",
     "pre-train an apt/mpt lifter from poses alone (masked poses / synthetic heatmaps)"),
    ("train-lifter", "pose_study.stages.train_lifter",
     "train a 2D→3D lifter on ground-truth 2D of a 3D split (from scratch or pre-trained)"),
    ("finetune-3d", "pose_study.stages.finetune_3d", "3D fine-tuning from 2D pre-trained weights or from scratch"),
    ("evaluate", "pose_study.stages.evaluate", "score one trained model on test splits (one JSON per split)"),
    ("collect", "pose_study.stages.collect", "gather every result into tidy CSV tables"),
    ("report", "pose_study.stages.report", "render the study's single-file HTML report"),
    ("bench-synth", "pose_study.benchmarks.synthesis", "measure synthesis throughput (images/s per core)"),
    ("bench", "pose_study.benchmarks.training",
     "measure training throughput, MFU and the data path against the seed-style path"),
    ("check-config", "pose_study.stages.check_config",
     "validate a study config as the workflow does (names file, line and key)"),
    ("bench-memory", "pose_study.benchmarks.memory",
     "peak RSS and data-path throughput of training jobs on small and large splits"),
    ("cost", "pose_study.benchmarks.cost", "a study's expected training FLOPs and device-hours per stage, from its config"),
)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The CLI's parser. With ``argv`` naming a stage, only that stage's module is imported and
    configured (the others are listed by name and help); without one, every stage is."""
    chosen = _chosen_stage(argv or [])
    parser = argparse.ArgumentParser(
        prog="python -m pose_study",
        description="Stages of the 2D-pre-training-for-3D-pose study. Snakemake calls these; "
        "each can also be run by hand (see the command line in any job log).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")
    for name, module_name, help_text in STAGES:
        if chosen is not None and name != chosen:
            sub.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.configure(p)
        p.set_defaults(_main=module.main)
    return parser


def _chosen_stage(argv: list[str]) -> str | None:
    """The stage ``argv`` names (its first argument that is not an option), if it is one."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in {name for name, _, _ in STAGES} else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
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
