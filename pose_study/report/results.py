"""The collected tables of one study, with the selections every report section needs."""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pose_study.arms import ARMS
from pose_study import plan as study_plan
from pose_study.plan import Plan, RunKey
from pose_study.report import tidy


@dataclass
class StudyResults:
    """A study's config and its tables (as written by ``collect``).

    Attributes:
        config: Validated study config.
        runs: ``runs.csv``. metrics: ``metrics.csv`` (``ok`` and ``missing`` rows).
        curves: ``curves.csv``. examples: ``examples.csv``. jobs: ``jobs.csv``.
    """

    config: dict
    runs: pd.DataFrame
    metrics: pd.DataFrame
    curves: pd.DataFrame
    examples: pd.DataFrame
    jobs: pd.DataFrame

    @classmethod
    def load(cls, config: dict, tables: str | os.PathLike) -> StudyResults:
        """Read every table from ``tables`` (FileNotFoundError/ValueError name the file)."""
        frames = {name: tidy.read_table(Path(tables), name) for name in tidy.SCHEMAS}
        return cls(config=config, **frames)

    @functools.cached_property
    def plan(self) -> Plan:
        """The study's plan: its runs, their upstream runs and its test sets."""
        return Plan(self.config)

    # --- the study's axes ---

    @property
    def arms(self) -> list[str]:
        return list(self.config["arms"])

    @property
    def models(self) -> list[str]:
        return list(self.config["models"])

    @property
    def baseline_arm(self) -> str | None:
        """The 3D-only arm every other arm is compared with, if the study has it."""
        return study_plan.BASELINE_ARM if study_plan.BASELINE_ARM in self.arms else None

    @property
    def compared_arms(self) -> list[str]:
        """Arms compared against the baseline arm (empty without a baseline)."""
        return [a for a in self.arms if a != self.baseline_arm] if self.baseline_arm else []

    @property
    def lifter_arms(self) -> list[str]:
        """Arms whose 3D pose comes from a lifter (scored through every study lifter)."""
        return [a for a in self.arms if a in ARMS and ARMS[a].uses_lifters]

    def evaluation_lifters(self) -> list[str]:
        """Lifter names scored by the lifter arms' evaluations: the config's, then any other found."""
        names = [name for name, _ in self.plan.evaluation_lifters()] if self.lifter_arms else []
        prefix = tidy.lifter_variant("")
        found = {v[len(prefix):] for v in self.metrics["variant"].dropna().unique() if str(v).startswith(prefix)}
        return names + sorted(found - set(names))

    @property
    def tests_3d(self) -> list[str]:
        return [t.name for t in self.plan.test_sets("3d")]

    @property
    def tests_2d(self) -> list[str]:
        return [t.name for t in self.plan.test_sets("2d")]

    @property
    def primary_test(self) -> str | None:
        """The headline 3D test set (``report.primary_3d_test``, default the first ``test_3d``)."""
        dataset = self.plan.primary_3d_test
        return f"{dataset}_{study_plan.SPLIT_3D_TEST}" if dataset else None

    @property
    def training_sets(self) -> tuple[str, str]:
        """(2D, 3D) training datasets of the runs the report compares: the first of each list."""
        return self.config["train_2d"][0], self.config["train_3d"][0]

    # --- selections (runs on ``training_sets``) ---

    def _on_training_sets(self, frame: pd.DataFrame) -> pd.Series:
        d2, d3 = self.training_sets
        pretrain = frame["stage"] == "pretrain_2d"
        return (frame["dataset_2d"] == d2) & ((frame["dataset_3d"] == d3) | pretrain)

    def scores(self, testset: str, metric: str, variant: str = "model",
               stage: str = "finetune_3d") -> pd.DataFrame:
        """One row per evaluated run: identity columns and ``value`` of the metric's total."""
        m = self.metrics
        rows = m[(m["status"] == "ok") & (m["stage"] == stage) & (m["testset"] == testset)
                 & self._on_training_sets(m) & (m["variant"] == variant) & (m["metric"] == metric)
                 & (m["scope"] == "total")]
        return rows[[*tidy.ID_COLUMNS, "value"]].reset_index(drop=True)

    def scoped(self, testset: str, metric: str, scope: str) -> pd.DataFrame:
        """Per-joint or per-action rows (model variant) of fine-tuned runs: identity, ``key``, ``value``."""
        m = self.metrics
        rows = m[(m["status"] == "ok") & (m["stage"] == "finetune_3d") & (m["testset"] == testset)
                 & self._on_training_sets(m) & (m["variant"] == "model") & (m["metric"] == metric)
                 & (m["scope"] == scope)]
        return rows[[*tidy.ID_COLUMNS, "key", "value"]].reset_index(drop=True)

    def primary_metric(self, testset: str) -> str | None:
        """The metric the evaluate stage named primary for ``testset`` (None if never evaluated)."""
        rows = self.metrics[(self.metrics["testset"] == testset) & (self.metrics["status"] == "ok")]
        return str(rows["primary_metric"].iloc[0]) if len(rows) else None

    def source(self, testset: str) -> str | None:
        """``real`` or ``synthetic``: where the test set's data came from (None if unknown)."""
        rows = self.metrics[(self.metrics["testset"] == testset) & (self.metrics["status"] == "ok")]
        return str(rows["source"].iloc[0]) if len(rows) else self._config_source(testset)

    def is_synthetic(self) -> bool:
        """True when any result of the study comes from the synthetic world."""
        sources = set(self.metrics["source"].dropna()) | set(self.runs["source"].dropna())
        configured = any(d["source"] == "synthetic" for d in self.config["datasets"].values())
        return "synthetic" in sources or configured

    def compute(self) -> pd.DataFrame:
        """Finished fine-tuning runs: identity, ``params``, ``value`` = device-hours incl. pre-training."""
        r = self.runs[(self.runs["status"] == "ok") & (self.runs["stage"] == "finetune_3d")
                      & self._on_training_sets(self.runs)]
        return r[[*tidy.ID_COLUMNS, "params", "forward_flops_per_image", "total_device_hours",
                  "total_train_flops"]].rename(columns={"total_device_hours": "value"}).reset_index(drop=True)

    def total_flops(self) -> pd.DataFrame:
        """Finished fine-tuning runs: identity and ``value`` = training FLOPs of the run and of every
        run its prediction depends on (``Plan.upstream``: pre-training, lifters), each counted
        once from its own ``train_flops``; NaN where one of them is missing."""
        ok = self.runs[self.runs["status"] == "ok"]
        own = dict(zip(ok["run"], ok["train_flops"].astype(float)))
        rows = ok[(ok["stage"] == "finetune_3d") & self._on_training_sets(ok)]
        values = [sum(own.get(k.path, math.nan) for k in [key, *self.plan.upstream(key)])
                  for key in (RunKey(stage=r.stage, arm=r.arm, model=r.model, dataset_2d=r.dataset_2d,
                                     dataset_3d=r.dataset_3d, seed=int(r.seed)) for r in rows.itertuples())]
        return rows[list(tidy.ID_COLUMNS)].assign(value=values).reset_index(drop=True)

    def fine_tuning_curves(self) -> pd.DataFrame:
        """``curves.csv`` rows of the fine-tuning runs on ``training_sets`` (every arm, model and seed)."""
        d2, d3 = self.training_sets
        c = self.curves
        return c[(c["stage"] == "finetune_3d") & (c["dataset_2d"] == d2) & (c["dataset_3d"] == d3)]

    def lifter_runs(self) -> pd.DataFrame:
        """``runs.csv`` rows of the lifter training and pose pre-training runs (every status)."""
        stages = ("pretrain_pose", "train_lifter")
        return self.runs[self.runs["stage"].isin(stages)].reset_index(drop=True)

    def params(self) -> dict[str, float]:
        """Parameters per model preset (from any finished detector run)."""
        detector = self.runs["stage"].isin(("pretrain_2d", "finetune_3d"))
        ok = self.runs[(self.runs["status"] == "ok") & detector].dropna(subset=["params"])
        return {str(m): float(p) for m, p in ok.groupby("model")["params"].first().items()}

    def missing_runs(self) -> pd.DataFrame:
        return self.runs[self.runs["status"] == "missing"].reset_index(drop=True)

    def missing_evaluations(self) -> pd.DataFrame:
        """Expected evaluations with no JSON, for runs that did finish (a missing run's are implied)."""
        m = self.metrics[self.metrics["status"] == "missing"]
        finished = set(self.runs.loc[self.runs["status"] == "ok", "run"])
        return m[m["run"].isin(finished)][["run", "testset"]].reset_index(drop=True)

    def _config_source(self, testset: str) -> str | None:
        for test in self.plan.test_sets():
            if test.name == testset:
                return self.config["datasets"][test.dataset]["source"]
        return None
