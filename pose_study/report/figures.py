"""The report's figures, drawn with matplotlib's object API + seaborn and embedded as base64 PNG.

No pyplot (no global figure state); fixed size and DPI and no PNG software/date metadata, so the
same tables give byte-identical figures. Every arm has one colour everywhere
(``style.arm_colours``); bands and error bars are 95 % t-intervals over seeds, drawn light
(``BAND_ALPHA``) so the lines behind them stay visible. Each figure has one legend, shared by its
panels and placed outside every data area (``shared_legend``).
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import EngFormatter, LogLocator, NullFormatter

from pose_study.report import stats
from pose_study.report.efficiency import error_at
from pose_study.report.results import StudyResults
from pose_study.report.style import (BASELINE_COLOUR, SYNTHETIC_LABEL, MetricStyle, arm_colours, arm_label,
                                     metric_style, si)
from pose_study.skeletons import CANONICAL

DPI = 100
PAGE_WIDTH_IN = 12.0  # widest figure that shows at about its natural size in the page
THEME = {"style": "whitegrid", "context": "notebook"}
BAND_ALPHA = 0.12


@dataclass(frozen=True)
class Figure:
    """An embedded figure: ``png`` is base64 PNG data; ``alt`` describes it for screen readers."""

    id: str
    png: str
    alt: str


def encode(fig: MplFigure) -> str:
    """The figure as base64 PNG (fixed DPI, no metadata that changes between runs)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def new_figure(width: float, height: float, rows: int = 1, cols: int = 1, layout: str | None = "constrained",
               **kwargs) -> tuple[MplFigure, np.ndarray]:
    """A figure with a grid of axes (always a 2-D array), in the report's seaborn theme."""
    with sns.axes_style(THEME["style"]), sns.plotting_context(THEME["context"]):
        fig = MplFigure(figsize=(width, height), layout=layout)
        axes = fig.subplots(rows, cols, squeeze=False, **kwargs)
    return fig, axes


def world_suffix(res: StudyResults, test: str | None) -> str:
    return f" — {SYNTHETIC_LABEL}" if test and res.source(test) == "synthetic" else ""


def shared_legend(fig: MplFigure, axes: np.ndarray, extra: list[Line2D] = (), loc: str = "outside upper center",
                  ncols: int | None = None) -> None:
    """One legend for the whole figure, outside the panels: every labelled artist once (by label), then ``extra``."""
    handles: dict[str, object] = {}
    for ax in np.ravel(axes):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    for handle in extra:
        handles.setdefault(handle.get_label(), handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc=loc, fontsize="small", frameon=False,
                   ncols=ncols or min(len(handles), 4))


# --- error vs model size --------------------------------------------------------------------------

def size_figure(res: StudyResults) -> Figure | None:
    """Error against parameters for every arm, with CI bands and the mean-pose baseline."""
    panels = [(res.primary_test, "mpjpe")] if res.primary_test else []
    panels += [(t, res.primary_metric(t) or "pckh") for t in res.tests_2d[:1]]
    params = res.params()
    if not panels or not params:
        return None
    fig, axes = new_figure(5.2 * len(panels), 4.0, 1, len(panels))
    colours = arm_colours(res.arms)
    for ax, (test, metric) in zip(axes[0], panels):
        style = metric_style(metric)
        frame = res.scores(test, metric)
        for arm in res.arms:
            summary = stats.summarise(frame[frame["arm"] == arm], ["model"])
            summary["x"] = summary["model"].map(params)
            _line_with_band(ax, summary.dropna(subset=["x"]).sort_values("x"), "x", style, colours[arm],
                            arm_label(arm))
        _baseline_line(ax, res.scores(test, metric, "mean_pose")["value"].mean() * style.scale)
        ax.set_xscale("log")
        _model_ticks(ax, params)
        ax.set(xlabel="parameters (log scale)", ylabel=style.label, title=f"{test}{world_suffix(res, test)}")
    shared_legend(fig, axes)
    alt = "Error against model size (parameters) for each arm, mean over seeds with 95% confidence bands."
    return Figure("size", encode(fig), alt)


def _line_with_band(ax: Axes, summary: pd.DataFrame, x: str, style: MetricStyle, colour: str,
                    label: str) -> None:
    """Mean line with its interval band, the band clipped to the metric's possible values."""
    if summary.empty:
        return
    ax.plot(summary[x], summary["mean"] * style.scale, marker="o", color=colour, label=label, linewidth=2)
    band = summary.dropna(subset=["low", "high"])
    if not band.empty:
        low, high = ((band[c] * style.scale).clip(*style.display_range) for c in ("low", "high"))
        ax.fill_between(band[x], low, high, color=colour, alpha=BAND_ALPHA, linewidth=0)


def _baseline_line(ax: Axes, value: float) -> None:
    if math.isfinite(value):
        ax.axhline(value, color=BASELINE_COLOUR, linestyle=":", linewidth=1.4, label="mean training pose")


def _model_ticks(ax: Axes, params: dict[str, float]) -> None:
    labels = [f"{m}\n{si(p)}" for m, p in params.items()]
    ax.set_xticks(list(params.values()), labels, fontsize="small")
    ax.minorticks_off()
    lo, hi = min(params.values()), max(params.values())
    ax.set_xlim(lo / 1.4, hi * 1.4)


# --- the first screen: each arm against the baseline at equal compute ----------------------------

ANSWER_COLUMNS = 4  # panels per row of the answer figure


def answer_figure(res: StudyResults) -> Figure | None:
    """One panel per compared arm: its validation curve and the baseline's against total compute (every
    upstream stage counted), one pair per model, mean over seeds; the equal-compute point marked."""
    c = res.fine_tuning_curves()
    base = res.baseline_arm
    arms = [a for a in res.compared_arms if a in set(c["arm"])]
    if c.empty or base not in set(c["arm"]) or not arms:
        return None
    metric = str(c.loc[c["arm"] == base, "val_metric"].iloc[0])
    c, style, colours = c[c["val_metric"] == metric], metric_style(metric), arm_colours(res.arms)
    cols = min(len(arms), ANSWER_COLUMNS)
    rows = math.ceil(len(arms) / cols)
    width = 3.2 * cols + 0.6 if cols > 2 else 4.4 * cols + 3.4  # few panels: the legend goes to their right
    fig, axes = new_figure(width, 2.1 * rows + (0.5 if cols > 2 else 0.3), rows, cols, sharex=True, sharey=True)
    for ax, arm in zip(axes.flat, arms):
        for model in res.models:
            mine, theirs = (_mean_curve(c[(c["model"] == model) & (c["arm"] == a)]) for a in (arm, base))
            ax.plot(theirs["x"], theirs["mean"] * style.scale, color=colours[base], linestyle="--", linewidth=1.4,
                    label=f"baseline: {arm_label(base)}")
            ax.plot(mine["x"], mine["mean"] * style.scale, color=colours[arm], linewidth=2)
            _equal_compute_mark(ax, mine, theirs, style, colours[arm], model)
        _flops_axis(ax)
        ax.set_title(arm_label(arm), fontsize="medium", color=colours[arm])
    for ax in list(axes.flat)[len(arms):]:
        ax.set_axis_off()
    extra = [Line2D([], [], color=BASELINE_COLOUR, linewidth=2, label="the panel's arm (solid, in its colour)"),
             Line2D([], [], color=BASELINE_COLOUR, marker="o", linestyle="-", markerfacecolor="white",
                    label="equal compute: the arm's final error (filled)\nand the baseline's at that compute (open)")]
    shared_legend(fig, axes, extra, *(("outside upper center", 3) if cols > 2 else ("outside right upper", 1)))
    fig.supylabel(f"{style.label} on {res.training_sets[1]} val", fontsize="small")
    fig.supxlabel("cumulative training FLOPs, every stage counted (log scale)", fontsize="small")
    alt = ("For each arm, its validation error against total training compute beside the baseline's curve, one "
           "pair of curves per model, with the equal-compute point marked.")
    return Figure("answer", encode(fig), alt)


def _mean_curve(part: pd.DataFrame) -> pd.DataFrame:
    """Mean validation value over seeds per step, at the mean total compute of that step."""
    summary = stats.summarise(part, ["step"], value="val_value")
    summary["x"] = summary["step"].map(part.groupby("step")["flops_total"].mean())
    return summary.sort_values("x").reset_index(drop=True)


def _equal_compute_mark(ax: Axes, arm: pd.DataFrame, base: pd.DataFrame, style: MetricStyle, colour: str,
                        model: str) -> None:
    """The arm's final point and the baseline's error at that compute, joined; labelled with the model."""
    if arm.empty:
        return
    x, y = float(arm["x"].iloc[-1]), float(arm["mean"].iloc[-1]) * style.scale
    ax.plot([x], [y], marker="o", color=colour, markersize=6, zorder=4)
    ax.annotate(model, (x, y), xytext=(4, -10), textcoords="offset points", fontsize="x-small", color=colour)
    if base.empty:
        return
    at = error_at(base["x"], base["mean"], x) * style.scale
    if math.isfinite(at):
        ax.plot([x, x], [y, at], color=colour, linewidth=1, zorder=3)
        ax.plot([x], [at], marker="o", color=BASELINE_COLOUR, markerfacecolor="white", markersize=6, zorder=4)


# --- error vs cumulative compute ------------------------------------------------------------------

def compute_figure(res: StudyResults) -> Figure | None:
    """Validation learning curves against cumulative FLOPs (pre-training included), one panel per model."""
    d3 = res.training_sets[1]
    c = res.fine_tuning_curves()
    if c.empty:
        return None
    reference = c[c["arm"] == res.baseline_arm] if res.baseline_arm in set(c["arm"]) else c
    metric = str(reference["val_metric"].iloc[0])
    c = c[c["val_metric"] == metric]  # one y axis: arms validated with another metric are left out
    models = [m for m in res.models if m in set(c["model"])]
    if not models:
        return None
    fig, axes = new_figure(4.6 * len(models), 3.8, 1, len(models), sharey=True)
    colours = arm_colours(res.arms)
    style = metric_style(metric)
    for ax, model in zip(axes[0], models):
        for arm in res.arms:
            part = c[(c["model"] == model) & (c["arm"] == arm)]
            summary = stats.summarise(part, ["step"], value="val_value")
            summary["x"] = summary["step"].map(part.groupby("step")["flops_total"].mean())
            _line_with_band(ax, summary.sort_values("x"), "x", style, colours[arm], arm_label(arm))
            _pretraining_mark(ax, part, colours[arm])
        _flops_axis(ax)
        ax.set(title=model)
    mark = Line2D([], [], color=BASELINE_COLOUR, linestyle=":", linewidth=1.5,
                  label="pre-training done (dotted, in the arm's colour)")
    shared_legend(fig, axes, [mark])
    axes[0][0].set_ylabel(f"{style.label} on {d3} val")
    fig.supxlabel("cumulative training FLOPs, pre-training included (log scale)")
    alt = ("Validation error against cumulative training compute for each arm and model; the pre-trained "
           "arm's curves start after its pre-training FLOPs.")
    return Figure("compute", encode(fig), alt)


def _flops_axis(ax: Axes) -> None:
    """Log axis labelled with SI prefixes (20G = 2·10¹⁰ FLOPs): ticks at 1, 2, 5 × 10^k, or at 10^k only when
    the data span more than two decades (call after plotting)."""
    ax.set_xscale("log")
    low, high = ax.get_xlim()
    subs = (1.0,) if high > 100 * low else (1.0, 2.0, 5.0)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.xaxis.set_major_formatter(EngFormatter(places=0, sep=""))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _pretraining_mark(ax: Axes, curve: pd.DataFrame, colour: str) -> None:
    """A dotted vertical line where pre-training ended (the FLOPs carried into fine-tuning), if any."""
    prior = float((curve["flops_total"] - curve["flops"]).mean()) if len(curve) else 0.0
    if prior > 0:
        ax.axvline(prior, color=colour, linestyle=":", linewidth=1.5)


# --- error vs total training compute, every run ---------------------------------------------------

MODEL_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def strategies_figure(res: StudyResults) -> Figure | None:
    """MPJPE on the primary test set against total training FLOPs (all stages), one point per run."""
    if not res.primary_test:
        return None
    style = metric_style("mpjpe")
    flops = res.total_flops()[["run", "value"]].rename(columns={"value": "flops"})
    frame = res.scores(res.primary_test, "mpjpe").merge(flops, on="run").dropna(subset=["value", "flops"])
    if frame.empty:
        return None
    fig, axes = new_figure(7.5, 4.6)
    ax, colours = axes[0][0], arm_colours(res.arms)
    markers = dict(zip(res.models, MODEL_MARKERS * (len(res.models) // len(MODEL_MARKERS) + 1)))
    for arm in res.arms:
        for model in res.models:
            part = frame[(frame["arm"] == arm) & (frame["model"] == model)]
            if not part.empty:
                ax.scatter(part["flops"], part["value"] * style.scale, color=colours[arm], marker=markers[model],
                           s=46, edgecolors="white", linewidths=0.6, label=f"{arm_label(arm)} · {model}")
    _flops_axis(ax)
    test = res.primary_test
    ax.set(xlabel="training FLOPs, all stages (log scale)", ylabel=f"{style.label} · {test}",
           title=f"{test}{world_suffix(res, test)}")
    shared_legend(fig, axes, loc="outside right upper", ncols=1)
    alt = ("MPJPE on the primary test set against total training FLOPs including pre-training and lifter "
           "training, one point per run, coloured by arm, marker by model.")
    return Figure("strategies", encode(fig), alt)


# --- cross-dataset matrix -------------------------------------------------------------------------

def matrix_figure(res: StudyResults) -> Figure | None:
    """Heatmaps: mean MPJPE per (arm, model) × 3D test set, and the paired arm − 3D-only difference."""
    values = {t: res.scores(t, "mpjpe") for t in res.tests_3d}
    rows = [(arm, model) for arm in res.arms for model in res.models]
    grid = pd.DataFrame([[_mean(values[t], arm, model) for t in res.tests_3d] for arm, model in rows],
                        index=[f"{arm_label(a)} · {m}" for a, m in rows], columns=res.tests_3d)
    if grid.empty or grid.isna().all().all():
        return None
    diffs = _difference_grid(res, values)
    cols = 2 if diffs is not None else 1
    fig, axes = new_figure(4.2 + 1.6 * len(res.tests_3d) * cols, 1.2 + 0.55 * len(rows), 1, cols)
    sns.heatmap(grid, ax=axes[0][0], annot=True, fmt=".1f", cmap="viridis_r",
                cbar_kws={"label": "MPJPE (mm)"})
    axes[0][0].set(title="MPJPE (mm), mean over seeds", xlabel="3D test set", ylabel="")
    if diffs is not None:
        limit = float(np.nanmax(np.abs(diffs.to_numpy()))) or 1.0
        sns.heatmap(diffs, ax=axes[0][1], annot=True, fmt="+.1f", cmap="vlag", vmin=-limit, vmax=limit,
                    cbar_kws={"label": "Δ MPJPE (mm); < 0: arm better"})
        axes[0][1].set(title=f"paired difference vs {arm_label(res.baseline_arm)}", xlabel="3D test set",
                       ylabel="")
    for ax in axes[0]:  # test-set names side by side would run into each other
        ax.tick_params(axis="x", labelrotation=25)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    return Figure("matrix", encode(fig), "Cross-dataset MPJPE matrix and the paired difference between arms.")


def _mean(frame: pd.DataFrame, arm: str, model: str) -> float:
    values = frame.loc[(frame["arm"] == arm) & (frame["model"] == model), "value"]
    return float(values.mean()) if len(values) else math.nan


def _difference_grid(res: StudyResults, values: dict[str, pd.DataFrame]) -> pd.DataFrame | None:
    """Mean paired difference (arm − 3D-only) per (arm, model) × test set; None if there is no pair."""
    if not res.compared_arms:
        return None

    def mean_difference(test: str, arm: str, model: str) -> float:
        frame = values[test]
        pairs = stats.paired_differences(frame[frame["model"] == model], arm, res.baseline_arm)
        return pairs["difference"].mean()

    rows = [(arm, model) for arm in res.compared_arms for model in res.models]
    data = [[mean_difference(t, arm, model) for t in res.tests_3d] for arm, model in rows]
    grid = pd.DataFrame(data, index=[f"{arm_label(a)} · {m}" for a, m in rows], columns=res.tests_3d)
    return None if grid.isna().all().all() else grid


# --- per joint and per action ---------------------------------------------------------------------

def per_joint_figure(res: StudyResults) -> Figure | None:
    """Per-joint MPJPE on the primary test set: bars per arm, one panel per model."""
    if not res.primary_test:
        return None
    frame = res.scoped(res.primary_test, "mpjpe", "joint")
    scored = set(frame.loc[frame["value"] != 0, "key"])  # the root is 0 by definition
    joints = [j for j in CANONICAL.joints if j in scored]
    return _bar_panels(res, frame, joints, "mpjpe", "per_joint", [res.primary_test],
                       "Per-joint MPJPE on the primary 3D test set for each arm and model (the root joint, "
                       "0 by definition, is left out).")


def per_action_figure(res: StudyResults) -> Figure | None:
    """Per-action primary error on every 3D test set with action labels."""
    tests = [t for t in res.tests_3d if not res.scoped(t, "mpjpe", "action").empty]
    if not tests:
        return None
    frame = pd.concat([res.scoped(t, "mpjpe", "action").assign(test=t) for t in tests])
    actions = sorted(set(frame["key"]))
    return _bar_panels(res, frame, actions, "mpjpe", "per_action", tests,
                       "Per-action MPJPE for each arm and model on the 3D test sets that label actions.")


def _bar_panels(res: StudyResults, frame: pd.DataFrame, categories: list[str], metric: str, fig_id: str,
                tests: list[str], alt: str) -> Figure | None:
    """One bar panel per (model, test set), wrapped into as many columns as fit a page width."""
    if frame.empty or not categories:
        return None
    if "test" not in frame.columns:
        frame = frame.assign(test=tests[0])
    panels = [(m, t) for m in res.models for t in tests
              if ((frame["model"] == m) & (frame["test"] == t)).any()]
    width = 0.3 * len(categories) * len(res.arms) + 1.5
    cols = max(1, min(len(panels), int(PAGE_WIDTH_IN // width)))
    rows = math.ceil(len(panels) / cols)
    fig, axes = new_figure(max(width, 6.0) * cols, 2.7 * rows + 0.4, rows, cols, sharey=True)
    colours, style = arm_colours(res.arms), metric_style(metric)
    for ax, (model, test) in zip(axes.flat, panels):
        part = frame[(frame["model"] == model) & (frame["test"] == test)]
        shown = set(part["key"])
        _grouped_bars(ax, part, [c for c in categories if c in shown], res.arms, colours, style)
        ax.set(title=f"{model} · {test}{world_suffix(res, test)}", ylabel=style.label)
        ax.tick_params(axis="x", labelrotation=60, labelsize="small")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_axis_off()
    shared_legend(fig, axes[:1, :1])
    return Figure(fig_id, encode(fig), alt)


def _grouped_bars(ax: Axes, frame: pd.DataFrame, categories: list[str], arms: list[str],
                  colours: dict[str, str], style: MetricStyle) -> None:
    """Bars per category and arm, with interval error bars clipped to the metric's possible values."""
    width = 0.8 / len(arms)
    x = np.arange(len(categories))
    for i, arm in enumerate(arms):
        s = stats.summarise(frame[frame["arm"] == arm], ["key"]).set_index("key").reindex(categories)
        mean = s["mean"].to_numpy() * style.scale
        low, high = ((s[c] * style.scale).clip(*style.display_range).to_numpy() for c in ("low", "high"))
        errors = np.nan_to_num(np.stack([mean - low, high - mean]))
        ax.bar(x + (i - (len(arms) - 1) / 2) * width, mean, width, yerr=errors, color=colours[arm],
               label=arm_label(arm), error_kw={"elinewidth": 1, "capsize": 2, "ecolor": BASELINE_COLOUR})
    ax.set_xticks(x, categories)
