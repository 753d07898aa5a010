"""Flatten the stages' JSON/CSV/TSV outputs into tidy rows, and the column schema of every table.

One function per source format: ``metrics.json`` of a training run, an evaluation JSON, a
``curve.csv`` and a Snakemake benchmark TSV (reference/snakemake_slurm.md §3.2). The tables are
written by the ``collect`` stage and read back with :func:`read_table`, which checks the columns.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from pose_study.plan import EvalSplit, RunKey
from pose_study.records import CURVE_COLUMNS, TOTAL_KEYS

ID_COLUMNS = ("run", "stage", "arm", "model", "lifter", "init", "dataset_2d", "dataset_3d", "seed")
TEST_COLUMNS = ("testset", "test_dataset", "test_split", "kind")
COMPUTE_KEYS = ("steps", "wall_seconds", "train_samples", "train_flops", "device_hours", "device",
                "device_count", "img_per_s", "peak_memory_mb")
PROVENANCE_KEYS = {"pose_study": "pose_study_version", "git_sha": "git_sha", "python": "python",
                   "torch": "torch"}

SCHEMAS: dict[str, tuple[str, ...]] = {
    "runs": (*ID_COLUMNS, "status", "missing_files", "source", "input_size", "params",
             "forward_flops_per_image", "final_metric", "final_value", "initial_value", *COMPUTE_KEYS,
             *(f"total_{k}" for k in TOTAL_KEYS), *PROVENANCE_KEYS.values()),
    "metrics": (*ID_COLUMNS, *TEST_COLUMNS, "status", "source", "samples", "primary_metric", "variant",
                "metric", "scope", "key", "value", "count", "empty_samples"),
    "curves": (*ID_COLUMNS, *CURVE_COLUMNS),
    "examples": (*ID_COLUMNS, *TEST_COLUMNS, "case", "rank", "index", "value", "joint", "pred_x",
                 "pred_y", "gt_x", "gt_y", "valid"),
    "jobs": ("stage", "job", "repeat", "seconds", "cpu_seconds", "max_rss_mb", "max_vms_mb", "max_uss_mb",
             "max_pss_mb", "io_in_mb", "io_out_mb", "mean_load"),
}
RUN_FILES = ("metrics.json", "curve.csv", "spec.json", "model.pt")
# identity columns that may be empty ("" where a field does not apply to the run's stage)
_TEXT_COLUMNS = ("arm", "model", "lifter", "init", "dataset_2d", "dataset_3d", "key", "missing_files")

# Snakemake benchmark column -> our column (memory and I/O in MB, times in seconds).
_BENCHMARK_COLUMNS = {"s": "seconds", "cpu_time": "cpu_seconds", "max_rss": "max_rss_mb",
                      "max_vms": "max_vms_mb", "max_uss": "max_uss_mb", "max_pss": "max_pss_mb",
                      "io_in": "io_in_mb", "io_out": "io_out_mb", "mean_load": "mean_load"}


def run_row(key: RunKey, metrics: dict | None, spec: dict | None, missing: list[str]) -> dict[str, Any]:
    """One ``runs.csv`` row: identity, status, final metric, compute and provenance."""
    row: dict[str, Any] = {**key.fields(), "status": "ok" if metrics else "missing",
                           "missing_files": ";".join(missing)}
    if metrics:
        final, compute, total = metrics["final"], metrics["compute"], metrics["compute_total"]
        row.update({k: metrics[k] for k in ("source", "input_size", "params", "forward_flops_per_image")})
        row.update(final_metric=final["metric"], final_value=final["value"],
                   initial_value=final["initial_value"])
        row.update({k: compute.get(k) for k in COMPUTE_KEYS})
        row.update({f"total_{k}": total[k] for k in TOTAL_KEYS})
    prov = (spec or {}).get("_provenance", {})
    row.update({column: prov.get(name) for name, column in PROVENANCE_KEYS.items()})
    return row


def metric_rows(key: RunKey, test: EvalSplit, doc: dict) -> list[dict[str, Any]]:
    """``metrics.csv`` rows of one evaluation JSON: model totals, per joint, per action, baselines."""
    base = {**key.fields(), **_test_fields(test), "status": "ok", "source": doc["source"],
            "samples": doc["samples"], "primary_metric": doc["primary_metric"]}
    rows = []
    for metric, score in doc["metrics"].items():
        rows.append({**base, "variant": "model", "metric": metric, "scope": "total", "key": "",
                     "value": score["value"], "count": score["count"],
                     "empty_samples": score["empty_samples"]})
        rows += [{**base, "variant": "model", "metric": metric, "scope": "joint", "key": joint,
                  "value": value} for joint, value in score["per_joint"].items()]
    rows += [{**base, "variant": "model", "metric": doc["primary_metric"], "scope": "action", "key": action,
              "value": value} for action, value in doc["per_action"].items()]
    for variant, scores in doc["baselines"].items():
        rows += [{**base, "variant": variant, "metric": metric, "scope": "total", "key": "", "value": value}
                 for metric, value in scores.items()]
    for name, inputs in doc.get("lifters", {}).items():
        for variant, source in ((lifter_variant(name), "detected"), (lifter_variant(name, gt_2d=True), "gt_2d"),
                                (f"lifter_argmax_refined:{name}", "detected_argmax_refined")):
            rows += [{**base, "variant": variant, "metric": metric, "scope": "total", "key": "", "value": value}
                     for metric, value in inputs.get(source, {}).items()]
    for decoder, scores in doc.get("decoders", {}).items():
        rows += [{**base, "variant": f"decoder:{decoder}", "metric": metric, "scope": "total", "key": "", "value": value}
                 for metric, value in scores.items()]
    return rows


def lifter_variant(name: str, gt_2d: bool = False) -> str:
    """``metrics.csv`` variant of lifter ``name`` (e.g. ``mlp_tiny/scratch``) on the detector's 2D
    (``lifter:NAME``) or on the ground-truth 2D (``gt_2d:NAME``)."""
    return f"{'gt_2d' if gt_2d else 'lifter'}:{name}"


def missing_metric_row(key: RunKey, test: EvalSplit) -> dict[str, Any]:
    """The ``metrics.csv`` row standing for an expected evaluation whose JSON is absent."""
    return {**key.fields(), **_test_fields(test), "status": "missing"}


def example_rows(key: RunKey, test: EvalSplit, doc: dict, joints: tuple[str, ...]) -> list[dict[str, Any]]:
    """``examples.csv`` rows: one per (best/worst example, joint), 2D joints in crop pixels."""
    rows = []
    for case, items in doc["examples"].items():
        for rank, item in enumerate(items):
            base = {**key.fields(), **_test_fields(test), "case": case, "rank": rank,
                    "index": item["index"], "value": item["value"]}
            for j, (pred, gt, valid) in enumerate(zip(item["pred_2d"], item["gt_2d"], item["valid"])):
                rows.append({**base, "joint": joints[j], "pred_x": pred[0], "pred_y": pred[1],
                             "gt_x": gt[0], "gt_y": gt[1], "valid": bool(valid)})
    return rows


def curve_rows(key: RunKey, path: Path) -> list[dict[str, Any]]:
    """``curves.csv`` rows: the run's ``curve.csv`` with identity columns added."""
    curve = pd.read_csv(path)
    absent = [c for c in CURVE_COLUMNS if c not in curve.columns]
    if absent:
        raise ValueError(f"{path}: missing curve column(s) {absent}; expected {list(CURVE_COLUMNS)}")
    return [{**key.fields(), **row} for row in curve[list(CURVE_COLUMNS)].to_dict("records")]


def job_rows(benchmarks: Path, path: Path) -> list[dict[str, Any]]:
    """``jobs.csv`` rows of one benchmark TSV (one row per repeat); the stage is its first folder."""
    rel = path.relative_to(benchmarks).with_suffix("")
    table = pd.read_csv(path, sep="\t", na_values=["NA", "-", ""])
    if "s" not in table.columns:
        raise ValueError(f"{path}: not a Snakemake benchmark file (no 's' column; got {list(table.columns)})")
    table = table.rename(columns=_BENCHMARK_COLUMNS)
    return [{"stage": rel.parts[0], "job": rel.as_posix(), "repeat": i,
             **{c: _float(row.get(c)) for c in SCHEMAS["jobs"][3:]}}
            for i, row in enumerate(table.to_dict("records"))]


def to_frame(rows: list[dict[str, Any]], name: str) -> pd.DataFrame:
    """Rows as a DataFrame with exactly the columns of ``SCHEMAS[name]``, in that order."""
    return pd.DataFrame(rows, columns=list(SCHEMAS[name]))


def read_table(tables: str | os.PathLike, name: str) -> pd.DataFrame:
    """Read ``{tables}/{name}.csv``; FileNotFoundError/ValueError name the file and the columns."""
    path = Path(tables) / f"{name}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: table {name!r} not found (run the collect stage first)")
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=dict.fromkeys(_TEXT_COLUMNS, str))
    absent = [c for c in SCHEMAS[name] if c not in frame.columns]
    if absent:
        raise ValueError(f"{path}: missing column(s) {absent}")
    for column in _TEXT_COLUMNS:
        if column in frame.columns:
            frame[column] = frame[column].fillna("")
    return frame


def _test_fields(test: EvalSplit) -> dict[str, str]:
    return {"testset": test.name, "test_dataset": test.dataset, "test_split": test.split, "kind": test.kind}


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
