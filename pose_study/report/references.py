"""Published reference numbers (``reports/reference_results.yaml``) beside the study's own numbers.

Every reference names its dataset, protocol and source. Our numbers are shown with their test
set and protocol; when the test data is synthetic they carry the synthetic-world label, so they
never read as real-data results.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from pose_study.report import stats
from pose_study.report.results import StudyResults
from pose_study.report.style import SYNTHETIC_LABEL, arm_label, fmt, metric_style
from pose_study.report.tables import Cell, Table

REQUIRED_KEYS = ("system", "metric", "value", "unit", "dataset", "protocol", "source")
OUR_PROTOCOLS = {
    "mpjpe": "MPJPE, root-relative, no alignment (H36M protocol-1 definition)",
    "n_mpjpe": "seed protocol: prediction scaled so its 15 bones sum to 4000 mm, then MPJPE",
    "p_mpjpe": "MPJPE after Procrustes alignment",
    "pck3d": "3DPCK, error < 150 mm (MPI-INF-3DHP definition)",
    "auc": "mean 3DPCK over thresholds 0–150 mm, 31 steps (MPI-INF-3DHP definition)",
    "pckh": "PCKh@0.5, head-box normalised (official MPII definition)",
    "pck": "PCK@0.2, torso normalised (LSP/FLIC)",
}


def load_references(path: str | os.PathLike | None) -> list[dict]:
    """The reference entries; ValueError names the file and the entry lacking a key."""
    if path is None:
        return []
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: reference results file not found")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = data.get("references")
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a top-level 'references' list")
    for i, entry in enumerate(entries):
        absent = [k for k in REQUIRED_KEYS if k not in entry]
        if absent:
            raise ValueError(f"{path}: references[{i}] ({entry.get('system', '?')}) lacks key(s) {absent}")
    return entries


def references_table(res: StudyResults, references: list[dict]) -> Table:
    """Our numbers for every metric a reference uses (a row per metric and test set), then the references."""
    table = Table("references",
                  ["Whose", "System", "Metric", "Value", "Dataset", "Protocol", "Source / note"])
    metrics = list(dict.fromkeys(r["metric"] for r in references)) or ["mpjpe"]
    for metric in metrics:
        for test in _tests_for(res, metric):
            row = _our_row(res, test, metric)
            if row:
                table.add(row, "ours")
    for r in references:
        value = f"{r.get('qualifier', '')}{r['value']} {r['unit']}".strip()
        note = r["source"] + ("" if r.get("verified", True) else " (unverified: check the original paper)")
        note += f" — {r['note']}" if r.get("note") else ""
        table.add([Cell("published"), Cell(r["system"]), Cell(metric_style(r["metric"]).name), Cell(value),
                   Cell(r["dataset"]), Cell(r["protocol"]), Cell(note)], "published")
    return table


def _tests_for(res: StudyResults, metric: str) -> list[str]:
    if metric in ("pckh", "pck"):
        return [t for t in res.tests_2d if res.primary_metric(t) == metric]
    return [res.primary_test] if res.primary_test else []


def _our_row(res: StudyResults, test: str, metric: str) -> list[Cell] | None:
    """Our largest model's mean over seeds in every arm on ``test``, with its data labelled."""
    frame = res.scores(test, metric)
    params = res.params()
    models = [m for m in res.models if m in params and (frame["model"] == m).any()]
    if not models:
        return None
    model = max(models, key=params.get)
    style = metric_style(metric)
    values, seeds = [], set()
    for arm in res.arms:
        interval = stats.t_interval(frame.loc[(frame["arm"] == arm) & (frame["model"] == model), "value"])
        if interval.n:
            shown = fmt(interval.mean * style.scale, style.decimals)
            values.append(f"{arm_label(arm)}: {shown} {style.unit}")
            seeds.add(interval.n)
    synthetic = res.source(test) == "synthetic"
    dataset = Cell(f"{test} ({SYNTHETIC_LABEL})" if synthetic else test, "synthetic" if synthetic else "",
                   "synthetic data: not comparable with real-data numbers" if synthetic else "")
    n = "/".join(str(k) for k in sorted(seeds))
    return [Cell("this study"), Cell(f"{model} (largest model), mean of n={n} seeds"), Cell(style.name),
            Cell("\n".join(values), "lines"), dataset, Cell(OUR_PROTOCOLS.get(metric, metric)),
            Cell("this report")]
