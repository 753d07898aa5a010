"""Published reference numbers (``reports/reference_results.yaml``) beside the study's own numbers.

Every reference names its dataset, protocol and source. Beside each stands our number of the same
metric (the headline arm's largest model, with its test set); when the test data is synthetic the
cell says "not comparable: synthetic world" instead, so no synthetic number reads as a real-data
result.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from pose_study.report import stats
from pose_study.report.results import StudyResults
from pose_study.report.summary import headline_arm
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
    """The published numbers, each with its dataset and protocol, and beside it this study's number of the
    same metric: for a real-data study, the headline arm's largest model on its test set; otherwise
    "not comparable: synthetic world"."""
    table = Table("references", ["System", "Metric", "Published", "Dataset", "Protocol", "This study, same metric",
                                 "Source / note"])
    for r in references:
        value = f"{r.get('qualifier', '')}{r['value']} {r['unit']}".strip()
        note = r["source"] + ("" if r.get("verified", True) else " (unverified: check the original paper)")
        note += f" — {r['note']}" if r.get("note") else ""
        table.add([Cell(r["system"]), Cell(metric_style(r["metric"]).name), Cell(value), Cell(r["dataset"]),
                   Cell(r["protocol"]), ours_cell(res, r["metric"]), Cell(note)], "published")
    return table


def ours_cell(res: StudyResults, metric: str) -> Cell:
    """This study's number of ``metric`` on its test set of that kind, or why there is none to compare."""
    tests = _tests_for(res, metric)
    if not tests:
        return Cell("— (no test set scored with it)", "na")
    test = tests[0]
    if res.source(test) == "synthetic":
        return Cell(f"not comparable: {SYNTHETIC_LABEL}", "synthetic",
                    f"this study's {test} comes from the {SYNTHETIC_LABEL}, not from real photographs")
    frame = res.scores(test, metric)
    params = res.params()
    arm = headline_arm(res) or (res.arms[0] if res.arms else None)
    models = [m for m in res.models if m in params and ((frame["model"] == m) & (frame["arm"] == arm)).any()]
    if not models:
        return Cell("— (no finished run)", "na")
    model = max(models, key=params.get)
    interval = stats.t_interval(frame.loc[(frame["arm"] == arm) & (frame["model"] == model), "value"])
    style = metric_style(metric)
    return Cell(f"{fmt(interval.mean * style.scale, style.decimals)} {style.unit}\n{arm_label(arm)} · {model} · {test}",
                "lines", f"mean of {interval.n} seed(s); {OUR_PROTOCOLS.get(metric, metric)}")


def _tests_for(res: StudyResults, metric: str) -> list[str]:
    if metric in ("pckh", "pck"):
        return [t for t in res.tests_2d if res.primary_metric(t) == metric]
    return [res.primary_test] if res.primary_test else []
