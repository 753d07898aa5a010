"""Provenance section: the config, software versions, hardware and per-job runtimes.

Versions come from each run's ``spec.json`` (``_provenance``: package version, git SHA, Python,
torch); the CUDA version is read from torch's build tag (``2.4.0+cu121`` → 12.1). Hardware is the
device each training run recorded in ``metrics.json``. Runtimes and memory per job come from
Snakemake's benchmark files (``jobs.csv``).
"""

from __future__ import annotations

import re

import pandas as pd
import yaml

from pose_study.report.results import StudyResults
from pose_study.report.style import fmt
from pose_study.report.tables import Cell, Table


def cuda_of(torch_version: str | None) -> str:
    """The CUDA version of a torch build tag (``+cu121`` → ``12.1``); CPU builds say so."""
    if not isinstance(torch_version, str) or not torch_version:
        return "unknown"
    match = re.search(r"\+cu(\d+)(\d)$", torch_version)
    if match:
        return f"{match.group(1)}.{match.group(2)}"
    return "none (CPU build)" if torch_version.endswith("+cpu") else "not in the build tag"


class _PlainDumper(yaml.SafeDumper):
    """Writes shared sub-objects out in full instead of as YAML anchors/aliases (``&id001``)."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def config_yaml(config: dict) -> str:
    """The validated config (defaults filled) as YAML, keys in config order."""
    return yaml.dump(config, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True)


def versions_table(res: StudyResults) -> Table:
    """One row per distinct (version, git SHA, Python, torch) among the finished runs."""
    table = Table("versions", ["pose_study", "git SHA", "Python", "torch", "CUDA", "runs"])
    columns = ["pose_study_version", "git_sha", "python", "torch"]
    ok = res.runs[res.runs["status"] == "ok"].astype({c: str for c in columns})
    for key, part in ok.groupby(columns, sort=True):
        table.add([Cell(key[0]), Cell(key[1], "mono"), Cell(key[2]), Cell(key[3]), Cell(cuda_of(key[3])),
                   Cell(str(len(part)))])
    return table


def hardware_table(res: StudyResults) -> Table:
    """Devices the training runs recorded, with run counts, device-hours and peak memory."""
    table = Table("hardware", ["Device", "Devices per run", "Training runs", "Device-hours (own)",
                               "Peak memory (MiB)", "Throughput (img/s, median)"])
    ok = res.runs[res.runs["status"] == "ok"]
    for (device, count), part in ok.groupby(["device", "device_count"], sort=True):
        table.add([Cell(str(device)), Cell(str(int(count))), Cell(str(len(part))),
                   Cell(fmt(part["device_hours"].sum(), 4)), Cell(fmt(part["peak_memory_mb"].max(), 0)),
                   Cell(fmt(part["img_per_s"].median(), 1))])
    return table


def stage_jobs_table(jobs: pd.DataFrame) -> Table:
    """Per stage: jobs, total and longest wall time, peak resident memory (Snakemake benchmarks)."""
    table = Table("stage-jobs", ["Stage", "Jobs", "Wall time total (s)", "Longest job (s)",
                                 "CPU time total (s)", "Max RSS (MB)"])
    for stage, part in jobs.groupby("stage", sort=True):
        table.add([Cell(str(stage)), Cell(str(part["job"].nunique())), Cell(fmt(part["seconds"].sum(), 1)),
                   Cell(fmt(part["seconds"].max(), 1)), Cell(fmt(part["cpu_seconds"].sum(), 1)),
                   Cell(fmt(part["max_rss_mb"].max(), 0))])
    return table


def jobs_table(jobs: pd.DataFrame) -> Table:
    """Every job (and benchmark repeat) with runtime and memory."""
    table = Table("jobs", ["Stage", "Job", "Repeat", "Wall time (s)", "CPU time (s)", "Max RSS (MB)",
                           "Mean load (%)"])
    for row in jobs.sort_values(["stage", "job", "repeat"]).itertuples():
        table.add([Cell(str(row.stage)), Cell(str(row.job), "mono"), Cell(str(row.repeat)),
                   Cell(fmt(row.seconds, 2)), Cell(fmt(row.cpu_seconds, 2)), Cell(fmt(row.max_rss_mb, 1)),
                   Cell(fmt(row.mean_load, 1))])
    return table
