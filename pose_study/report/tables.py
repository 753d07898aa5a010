"""The report's tables as plain data (the template escapes and lays them out).

Headline: model size × arm → 3D errors on the primary test set, 2D accuracy on each 2D test set
and compute (device-hours including pre-training), each the mean ± 95 % t-interval over seeds,
followed by the paired difference of every arm against the 3D-only arm. Baselines: the trivial
mean pose and the GT-2D lifting diagnostic beside the models, on every test set.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from pose_study.report import stats
from pose_study.report.results import StudyResults
from pose_study.report.style import MetricStyle, arm_label, fmt, metric_style, si, significant_decimals

COMPUTE_STYLE = MetricStyle("Compute incl. pre-training", "device-hours", 1.0, 3)


@dataclass(frozen=True)
class Cell:
    """One table cell: its text, a CSS class, a tooltip, and ``data-*`` attributes (machine-readable)."""

    text: str
    css: str = ""
    title: str = ""
    data: dict[str, str] = field(default_factory=dict)


@dataclass
class Table:
    """Column headers, rows of cells and a CSS class per row."""

    id: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    row_css: list[str] = field(default_factory=list)

    def add(self, cells: list[Cell], css: str = "") -> None:
        self.rows.append(cells)
        self.row_css.append(css)


@dataclass(frozen=True)
class Column:
    """A headline column: its key, header, style and the per-run values it summarises."""

    key: str
    header: str
    style: MetricStyle
    values: Callable[[], pd.DataFrame]


def interval_cell(interval: stats.Interval, style: MetricStyle, data: dict[str, str] | None = None,
                  signed: bool = False) -> Cell:
    """``mean ± half-width`` in display units (``mean (n=1)`` for one seed, ``—`` for none)."""
    data = {**(data or {}), "n": str(interval.n)}
    if interval.n == 0:
        return Cell("—", "na", "no finished run", data)
    scale = style.scale
    decimals = style.decimals if style is not COMPUTE_STYLE else significant_decimals(interval.mean)
    mean = ("+" if signed and interval.mean * scale > 0 else "") + fmt(interval.mean * scale, decimals)
    if interval.n == 1:
        return Cell(f"{mean} (n=1)", "", "one seed: no interval", data)
    low, high = fmt(interval.low * scale, decimals), fmt(interval.high * scale, decimals)
    title = f"95% t-interval [{low}, {high}], n={interval.n}"
    return Cell(f"{mean} ± {fmt(interval.half_width * scale, decimals)}", "", title, data)


def headline_columns(res: StudyResults) -> list[Column]:
    """Columns of the headline table: primary-test 3D errors, 2D test metrics, compute."""
    columns = []
    if res.primary_test:
        for metric in ("mpjpe", "p_mpjpe"):
            style = metric_style(metric)
            columns.append(Column(f"{metric}@{res.primary_test}", f"{style.label} · {res.primary_test}",
                                  style, _scores(res, res.primary_test, metric)))
    for test in res.tests_2d:
        metric = res.primary_metric(test) or "pckh"
        columns.append(Column(f"{metric}@{test}", f"{metric_style(metric).label} · {test}",
                              metric_style(metric), _scores(res, test, metric)))
    columns.append(Column("compute", COMPUTE_STYLE.label, COMPUTE_STYLE, res.compute))
    return columns


def headline(res: StudyResults) -> Table:
    """Model × arm rows (mean ± 95 % CI over seeds), then paired differences to the 3D-only arm."""
    columns = headline_columns(res)
    values = {c.key: c.values() for c in columns}
    table = Table("headline", ["Model", "Parameters", "Arm", "Seeds", *[c.header for c in columns]])
    params = res.params()
    for model in res.models:
        size = si(params[model]) if model in params else "—"
        for arm in res.arms:
            cells = [interval_cell(_over_seeds(values[c.key], arm, model), c.style,
                                   {"arm": arm, "model": model, "column": c.key, "kind": "mean"})
                     for c in columns]
            seeds = finished_seeds(res, arm, model)
            table.add([Cell(model), Cell(size), Cell(arm_label(arm), f"arm arm-{arm}"),
                       Cell(f"{seeds}/{len(res.config['seeds'])}"), *cells])
        for arm in res.compared_arms:
            table.add(_difference_row(res, columns, values, arm, model), "difference")
    return table


def _difference_row(res: StudyResults, columns: list[Column], values: dict[str, pd.DataFrame], arm: str,
                    model: str) -> list[Cell]:
    cells = []
    for c in columns:
        frame = values[c.key]
        pairs = stats.paired_differences(frame[frame["model"] == model], arm, res.baseline_arm)
        interval = stats.t_interval(pairs["difference"])
        data = {"arm": arm, "model": model, "column": c.key, "kind": "difference"}
        cell = interval_cell(interval, c.style, data, signed=True)
        cells.append(Cell(cell.text, verdict(interval, c.style), cell.title, cell.data))
    label = f"Δ {arm_label(arm)} − {arm_label(res.baseline_arm)} (paired by seed)"
    return [Cell(model), Cell(""), Cell(label, "delta"), Cell(""), *cells]


def verdict(interval: stats.Interval, style: MetricStyle) -> str:
    """``better``/``worse`` when the whole interval lies on one side of 0, else no class."""
    if interval.n < 2 or not math.isfinite(interval.low) or style is COMPUTE_STYLE:
        return ""
    if interval.high < 0 or interval.low > 0:
        improved = (interval.high < 0) == style.lower_is_better
        return "better" if improved else "worse"
    return ""


def baselines(res: StudyResults) -> Table:
    """Models beside the mean-pose and GT-2D-lifting baselines on every test set (mean over seeds)."""
    tests = [(t, "mpjpe") for t in res.tests_3d]
    tests += [(t, res.primary_metric(t) or "pckh") for t in res.tests_2d]
    table = Table("baselines", ["Model", "Predictor", *[f"{metric_style(m).label} · {t}" for t, m in tests]])
    for model in res.models:
        for arm in res.arms:
            lifting = f"GT-2D lifting ({arm_label(arm)})"
            for variant, label in (("model", arm_label(arm)), ("gt_2d_lifting", lifting)):
                cells = [_baseline_cell(res, t, m, variant, arm, model) for t, m in tests]
                table.add([Cell(model), Cell(label, f"arm arm-{arm}" if variant == "model" else "")] + cells,
                          "" if variant == "model" else "diagnostic")
        stage1 = [_stage1_cell(res, t, m, model) if t in res.tests_2d else Cell("—", "na")
                  for t, m in tests]
        if any(c.text != "—" for c in stage1):
            table.add([Cell(model), Cell("after 2D pre-training only (stage 1)")] + stage1, "diagnostic")
    table.add([Cell("—"), Cell("mean training pose")] + [_mean_pose_cell(res, t, m) for t, m in tests],
              "baseline")
    return table


def _baseline_cell(res: StudyResults, test: str, metric: str, variant: str, arm: str, model: str) -> Cell:
    frame = res.scores(test, metric, variant)
    return interval_cell(_over_seeds(frame, arm, model), metric_style(metric))


def _stage1_cell(res: StudyResults, test: str, metric: str, model: str) -> Cell:
    frame = res.scores(test, metric, stage="pretrain_2d")
    return interval_cell(stats.t_interval(frame.loc[frame["model"] == model, "value"]), metric_style(metric))


def _mean_pose_cell(res: StudyResults, test: str, metric: str) -> Cell:
    values = pd.concat([res.scores(test, metric, "mean_pose"),
                        res.scores(test, metric, "mean_pose", "pretrain_2d")])
    if values.empty:
        return Cell("—", "na")
    style = metric_style(metric)
    return Cell(fmt(values["value"].mean() * style.scale, style.decimals), "",
                "depends only on the training data: the same for every run")


def _scores(res: StudyResults, test: str, metric: str) -> Callable[[], pd.DataFrame]:
    return lambda: res.scores(test, metric)


def _over_seeds(frame: pd.DataFrame, arm: str, model: str) -> stats.Interval:
    return stats.t_interval(frame.loc[(frame["arm"] == arm) & (frame["model"] == model), "value"])


def finished_seeds(res: StudyResults, arm: str, model: str) -> int:
    r = res.runs
    return int(((r["stage"] == "finetune_3d") & (r["arm"] == arm) & (r["model"] == model)
                & (r["status"] == "ok")).sum())


def missing(res: StudyResults) -> Table:
    """Every expected run or evaluation whose files are absent."""
    table = Table("missing", ["What", "Run", "Test set / missing files"])
    for row in res.missing_runs().itertuples():
        table.add([Cell("training run"), Cell(row.run), Cell(row.missing_files.replace(";", ", "))])
    for row in res.missing_evaluations().itertuples():
        table.add([Cell("evaluation"), Cell(row.run), Cell(row.testset)])
    return table
