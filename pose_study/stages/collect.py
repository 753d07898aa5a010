"""Stage ``collect``: gather every run's outputs into tidy CSV tables for the report.

Inputs: the study config (validated; it names the expected matrix of runs and test sets), the
study's results folder (``metrics.json``, ``curve.csv``, ``spec.json`` of every training run under
``pretrain_2d/``, ``pretrain_pose/``, ``train_lifter/`` and ``finetune_3d/``; evaluation JSONs under
``evaluate/``) and its Snakemake benchmark folder (``*.tsv``, one per job).

Outputs (CSV, one header row, columns as ``pose_study.report.tidy.SCHEMAS``):

* ``runs.csv``: one row per expected training run: ``status`` (``ok`` | ``missing``), final
  validation metric, own compute and compute including pre-training (``total_*``), provenance.
* ``metrics.csv``: one row per run × test set × variant (``model`` | ``mean_pose`` |
  ``gt_2d_lifting`` | ``lifter:NAME`` | ``gt_2d:NAME``, the last two: every study lifter on the
  detector's 2D and on the ground-truth 2D) × metric × scope (``total`` | ``joint`` | ``action``;
  ``key`` names the joint or action). An expected evaluation whose JSON is absent is one row with
  ``status = missing``.
* ``curves.csv``: one row per learning-curve point (``curve.csv`` columns plus run identity).
* ``examples.csv``: one row per best/worst example × joint (2D joints in crop pixels), so the
  report can draw them on the test images.
* ``jobs.csv``: one row per Snakemake job (and repeat): runtime, CPU time, memory, I/O.

Nothing the config expects is dropped: absent files become ``missing`` rows. Writes are atomic.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pose_study._io import atomic_path
from pose_study.config import load_config, validate_config
from pose_study.plan import EvalSplit, Plan, RunKey
from pose_study.report import tidy
from pose_study.skeletons import CANONICAL

log = logging.getLogger(__name__)

TABLES = ("runs", "metrics", "curves", "examples", "jobs")


@dataclass(frozen=True)
class CollectPaths:
    """Where collect reads and writes.

    Attributes:
        results: The study's results folder (``results/{study}``).
        benchmarks: The study's benchmark folder (``benchmarks/{study}``); may be absent.
        out_dir: Folder of the tables (``results/{study}/tables``).
    """

    results: Path
    benchmarks: Path
    out_dir: Path


def run(config: dict, paths: CollectPaths) -> dict[str, pd.DataFrame]:
    """Collect every table and write ``{out_dir}/{name}.csv``; returns the tables."""
    tables = collect(config, paths.results, paths.benchmarks)
    for name, frame in tables.items():
        out = paths.out_dir / f"{name}.csv"
        with atomic_path(out) as tmp:
            frame.to_csv(tmp, index=False)
        log.info("wrote %s (%d rows)", out, len(frame))
    return tables


def collect(config: dict, results: Path, benchmarks: Path) -> dict[str, pd.DataFrame]:
    """All tables as DataFrames (columns as ``tidy.SCHEMAS``)."""
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
    plan = Plan(config)
    for key in plan.runs():
        _collect_run(plan, results, key, rows)
    rows["jobs"] = _collect_jobs(benchmarks)
    missing = [r["run"] for r in rows["runs"] if r["status"] == "missing"]
    if missing:
        log.warning("%d expected run(s) missing: %s", len(missing), ", ".join(missing))
    return {name: tidy.to_frame(rows[name], name) for name in TABLES}


def _collect_run(plan: Plan, results: Path, key: RunKey, rows: dict[str, list]) -> None:
    run_dir = results / key.path
    absent = [name for name in tidy.RUN_FILES if not (run_dir / name).is_file()]
    metrics = _read_json(run_dir / "metrics.json")
    rows["runs"].append(tidy.run_row(key, metrics, _read_json(run_dir / "spec.json"), absent))
    if (run_dir / "curve.csv").is_file():
        rows["curves"] += tidy.curve_rows(key, run_dir / "curve.csv")
    for test in _test_sets_of(plan, results, key):
        path = results / "evaluate" / key.path / f"{test.name}.json"
        doc = _read_json(path)
        if doc is None:
            rows["metrics"].append(tidy.missing_metric_row(key, test))
            continue
        with _fields_of(path):
            metric_rows, example_rows = tidy.metric_rows(key, test, doc), tidy.example_rows(key, test, doc,
                                                                                            CANONICAL.joints)
        rows["metrics"] += metric_rows
        rows["examples"] += example_rows


@contextlib.contextmanager
def _fields_of(path: Path) -> Iterator[None]:
    """Turn a missing or mistyped field of the evaluation JSON at ``path`` into an error naming it."""
    try:
        yield
    except (KeyError, TypeError, AttributeError) as err:
        problem = (f"field {err.args[0]!r} is missing" if isinstance(err, KeyError)
                   else f"a field has the wrong type ({err})")
        raise ValueError(f"{path}: malformed evaluation JSON: {problem}; it was not written by this "
                         "pose_study's evaluate stage. Delete it and rerun the workflow (its evaluate job "
                         "rewrites it)") from err


def _test_sets_of(plan: Plan, results: Path, key: RunKey) -> list[EvalSplit]:
    """Expected test sets of ``key`` plus any other evaluation JSON found for it (never dropped)."""
    tests = plan.test_sets_of(key)
    known = {t.name for t in tests}
    for path in sorted((results / "evaluate" / key.path).glob("*.json")):
        if path.stem not in known:
            doc = _read_json(path)
            with _fields_of(path):
                tests.append(EvalSplit(doc["dataset"], doc["split"], doc["kind"]))
    return tests


def _collect_jobs(benchmarks: Path) -> list[dict[str, Any]]:
    if not benchmarks.is_dir():
        log.warning("no benchmark folder %s: jobs.csv will be empty", benchmarks)
        return []
    rows = []
    for path in sorted(benchmarks.rglob("*.tsv")):
        rows += tidy.job_rows(benchmarks, path)
    return rows


def _read_json(path: Path) -> dict | None:
    """The JSON document at ``path``, or None if there is no such file."""
    if not path.is_file():
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def load_config_arg(arg: str) -> dict:
    """A ``--config`` argument: inline JSON, or a YAML/JSON file; validated, defaults filled."""
    if arg.lstrip().startswith("{"):
        return validate_config(json.loads(arg), where="--config")
    path = Path(arg)
    if not path.is_file():
        raise FileNotFoundError(f"--config {arg!r} is neither inline JSON nor an existing file")
    return load_config(path)  # YAML is a superset of JSON; a syntax error names the line


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="study config: YAML/JSON file or inline JSON")
    parser.add_argument("--results", type=Path, required=True,
                        help="the study's results folder (results/{study})")
    parser.add_argument("--benchmarks", type=Path, required=True,
                        help="the study's Snakemake benchmark folder (benchmarks/{study})")
    parser.add_argument("--out-dir", type=Path, required=True,
                        help="folder of the CSV tables (results/{study}/tables)")


def main(args: argparse.Namespace) -> None:
    run(load_config_arg(args.config), CollectPaths(args.results, args.benchmarks, args.out_dir))
