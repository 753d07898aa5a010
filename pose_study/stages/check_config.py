"""Command ``check-config``: read and validate a study config exactly as the workflow does.

Snakemake parses ``--configfile`` itself, and its answer to a YAML syntax error names neither the
file nor the line (``Config file is not valid JSON or YAML``). This command does: file, line and
column for a syntax error; the key, the value and the allowed choices for anything the schema or
the cross-field checks reject. It prints the study's name and size when the config is good.

Command line::

    python -m pose_study check-config config/paper.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pose_study.config import load_config


def run(path: Path) -> dict:
    """The validated config at ``path`` (defaults filled); ``ValueError`` names file, line or key."""
    return load_config(path)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="study config (YAML or JSON)")


def main(args: argparse.Namespace) -> None:
    config = run(args.config)
    print(f"{args.config}: valid study {config['study']!r}: {len(config['models'])} model(s), "
          f"{len(config['arms'])} arm(s), {len(config['seeds'])} seed(s)")
