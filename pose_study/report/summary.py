"""The report's first screen: the study's question, one compact table and a short answer.

Every compared arm is paired with the baseline arm (``StudyResults.baseline_arm``) over (model,
seed): the same model, training data and seed in both runs. Per arm the table gives

* MPJPE and P-MPJPE on the primary test set (mean ± 95 % t half-width over all its runs) and the
  paired differences to the baseline with their 95 % t-intervals;
* from the validation learning curves (``val_value``): the error difference at equal compute and
  the time-to-accuracy ratio (``efficiency.paired_efficiency``), once with every upstream stage
  counted (``flops_total``) and once with fine-tuning compute only (``flops``: pre-training as a
  cost already paid). Ratios are summarised by their geometric mean and the t-interval of their log;
* the compute of its runs, FLOPs and device-hours, every upstream stage counted.

The answer is one summary sentence on the headline comparison (2D pre-training against the
baseline) and at most one sentence per arm with the verdicts the table leaves to the reader. An
effect is *resolved* when its 95 % interval excludes 0 and its half-width is at most a third of the
effect's magnitude (for ratios: on the log scale); otherwise the answer says it is not resolved.
A curve that does not answer (the baseline stops before the arm's compute) is said so in its cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from pose_study.arms import ARMS
from pose_study.report import stats
from pose_study.report.efficiency import paired_efficiency
from pose_study.report.results import StudyResults
from pose_study.report.style import (SYNTHETIC_LABEL, arm_label, arm_noun, fmt, metric_style, si,
                                     significant_decimals)
from pose_study.report.tables import Cell, Table

METRICS = ("mpjpe", "p_mpjpe")
RESOLVING_FRACTION = 1 / 3  # an effect is resolved when its 95 % half-width is at most this fraction of it


@dataclass(frozen=True)
class Counting:
    """A way of counting an arm's compute: its ``curves.csv`` column and how the report names it."""

    key: str
    column: str
    label: str
    phrase: str


COUNTINGS = (Counting("total", "flops_total", "all stages", "counting every stage"),
             Counting("finetune", "flops", "fine-tuning only", "counting fine-tuning only"))


def question(res: StudyResults) -> str:
    """The study's question, naming its arms, its baseline and its primary test set."""
    test = res.primary_test or "the 3D test sets"
    world = f" ({SYNTHETIC_LABEL})" if res.source(test) == "synthetic" else ""
    baseline = arm_noun(res.baseline_arm) if res.baseline_arm else "3D-only training"
    nouns = [arm_noun(a) for a in res.compared_arms] or ["2D pre-training"]
    if len(nouns) > 2:
        arms = f"each of the {len(nouns)} strategies below"
    else:
        arms = " or ".join(nouns)
    return (f"Does {arms} give better 3D pose than {baseline} on {test}{world}, and at what compute, counting "
            "every stage or fine-tuning only?")


def headline_arm(res: StudyResults) -> str | None:
    """The arm of the paper's headline comparison: the 2D pre-trained detector with its own 3D (no lifter),
    else the first compared arm."""
    own_3d = [a for a in res.compared_arms if a in ARMS and ARMS[a].detector_init == "pretrain_2d"
              and not ARMS[a].uses_lifters]
    return (own_3d or res.compared_arms or [None])[0]


def resolved(interval: stats.Interval, centre: float = 0.0) -> bool:
    """True when the interval excludes ``centre`` and its half-width is at most a third of the effect."""
    if interval.n < 2 or not math.isfinite(interval.low):
        return False
    effect = abs(interval.mean - centre)
    return not interval.low <= centre <= interval.high and interval.half_width <= RESOLVING_FRACTION * effect


# --- the paired numbers ---------------------------------------------------------------------------

def accuracy_pairs(res: StudyResults, arm: str, metric: str = "mpjpe") -> pd.DataFrame:
    """Paired test-set differences (arm − baseline) on the primary test set, per (model, seed)."""
    return stats.paired_differences(res.scores(res.primary_test, metric), arm, res.baseline_arm)


def efficiency_pairs(res: StudyResults, arm: str, counting: Counting) -> pd.DataFrame:
    """``efficiency.paired_efficiency`` of ``arm`` against the baseline, compute counted as ``counting``."""
    return paired_efficiency(res.fine_tuning_curves(), arm, res.baseline_arm, counting.column)


def log_ratio(interval: stats.Interval) -> stats.Interval:
    """A ratio interval on the log scale (where ``resolved`` judges it)."""
    return stats.Interval(*(math.log(v) if v > 0 else math.nan for v in (interval.mean, interval.low,
                                                                         interval.high)), interval.n)


# --- the compact table ----------------------------------------------------------------------------

def answer_table(res: StudyResults) -> Table:
    """Arm × {MPJPE, Δ MPJPE, P-MPJPE, Δ P-MPJPE, equal-compute Δ and time to accuracy (all stages and
    fine-tuning only), compute per run}; the baseline first."""
    test = res.primary_test
    columns = ["Arm"]
    for metric in METRICS:
        columns += [f"{metric_style(metric).name} (mm) · {test}", f"Δ {metric_style(metric).name}"]
    for counting in COUNTINGS:
        columns += [f"Equal-compute Δ, {counting.label}", f"Time to accuracy, {counting.label}"]
    columns.append("Compute per run: FLOPs · device-h")
    table = Table("answer", columns)
    if not test or not res.baseline_arm:
        return table
    table.add(_baseline_row(res), "reference")
    for arm in res.compared_arms:
        table.add(_arm_row(res, arm))
    return table


def _baseline_row(res: StudyResults) -> list[Cell]:
    arm = res.baseline_arm
    cells = [Cell(f"{arm_label(arm)} (baseline)", f"arm arm-{arm}", "the arm every other arm is compared with")]
    for metric in METRICS:
        cells += [_mean_cell(res, arm, metric), Cell("—", "na", "the baseline itself")]
    cells += [Cell("—", "na", "the baseline itself")] * (2 * len(COUNTINGS))
    return [*cells, _compute_cell(res, arm)]


def _arm_row(res: StudyResults, arm: str) -> list[Cell]:
    cells = [Cell(arm_label(arm), f"arm arm-{arm}")]
    for metric in METRICS:
        pairs = accuracy_pairs(res, arm, metric)
        cells += [_mean_cell(res, arm, metric),
                  difference_cell(stats.t_interval(pairs["difference"]), {"arm": arm, "column": f"delta_{metric}"},
                                  f"paired over model×seed; {metric_style(metric).name} on {res.primary_test}")]
    for counting in COUNTINGS:
        pairs = efficiency_pairs(res, arm, counting)
        cells += [_equal_compute_cell(pairs, arm, counting), _time_ratio_cell(pairs, arm, counting)]
    return [*cells, _compute_cell(res, arm)]


def _mean_cell(res: StudyResults, arm: str, metric: str) -> Cell:
    frame = res.scores(res.primary_test, metric)
    interval = stats.t_interval(frame.loc[frame["arm"] == arm, "value"])
    if not interval.n:
        return Cell("—", "na", "no finished run")
    text = fmt(interval.mean, 1) + (f"\n± {fmt(interval.half_width, 1)}" if interval.n > 1 else "\n(n=1)")
    return Cell(text, "num", f"mean over {interval.n} runs (every model and seed) ± 95% t half-width",
                {"arm": arm, "column": metric, "mean": repr(interval.mean), "n": str(interval.n)})


def difference_cell(interval: stats.Interval, data: dict[str, str], what: str, unit: str = "mm") -> Cell:
    """A paired difference: signed mean over its 95 % interval (two lines); bold when resolved."""
    data = {**data, "mean": repr(interval.mean), "low": repr(interval.low), "high": repr(interval.high),
            "n": str(interval.n)}
    if not interval.n:
        return Cell("—", "na", "no pair of finished runs", data)
    if interval.n == 1:
        return Cell(f"{_signed(interval.mean)}\n(one pair)", "num", what, data)
    text = f"{_signed(interval.mean)}\n[{fmt(interval.low, 1)}, {fmt(interval.high, 1)}]"
    css = "num " + _direction_css(interval.mean, resolved(interval))
    return Cell(text, css.strip(), f"{what}; mean, 95% t-interval over {interval.n} pairs ({unit})", data)


def ratio_cell(interval: stats.Interval, data: dict[str, str], what: str) -> Cell:
    """A ratio: geometric mean over its 95 % interval (two lines); bold when resolved on the log scale."""
    data = {**data, "mean": repr(interval.mean), "low": repr(interval.low), "high": repr(interval.high),
            "n": str(interval.n)}
    if interval.n == 1:
        return Cell(f"{fmt(interval.mean, 2)}×\n(one pair)", "num", what, data)
    text = f"{fmt(interval.mean, 2)}×\n[{fmt(interval.low, 2)}, {fmt(interval.high, 2)}]"
    css = "num " + _direction_css(math.log(interval.mean), resolved(log_ratio(interval)))
    return Cell(text, css.strip(), f"{what}; geometric mean, 95% t-interval of the log ratio over {interval.n} "
                "pairs", data)


def _equal_compute_cell(pairs: pd.DataFrame, arm: str, counting: Counting) -> Cell:
    data = {"arm": arm, "column": f"equal_compute_{counting.key}"}
    answered = pairs.dropna(subset=["equal_compute"])
    if len(answered):
        what = (f"validation error at the arm's final compute ({counting.label}) minus the baseline's error at "
                "that compute")
        cell = difference_cell(stats.t_interval(answered["equal_compute"]), data, what)
        return _partial(cell, len(answered), len(pairs))
    if pairs.empty:
        return Cell("—", "na", "no pair of validation curves with one metric", data)
    if (pairs["baseline_start"] > pairs["arm_compute"]).all():
        return Cell("baseline's first point\nis past this arm's end", "na", "the baseline's learning curve starts "
                    "after this arm's final compute: no equal-compute reading", data)
    reach = float((pairs["baseline_compute"] / pairs["arm_compute"]).max())
    return Cell(f"baseline stops at\n{fmt(reach, 2)}× this arm's compute", "na",
                "the baseline run stopped before this arm's compute: no equal-compute reading", data)


def _time_ratio_cell(pairs: pd.DataFrame, arm: str, counting: Counting) -> Cell:
    data = {"arm": arm, "column": f"time_ratio_{counting.key}"}
    answered = pairs.dropna(subset=["time_ratio"])
    if len(answered):
        what = (f"compute ({counting.label}) the arm needed to reach the baseline's final validation error, over "
                "the baseline's")
        return _partial(ratio_cell(stats.ratio_interval(answered["time_ratio"]), data, what), len(answered),
                        len(pairs))
    if pairs.empty:
        return Cell("—", "na", "no pair of validation curves with one metric", data)
    return Cell("not reached\nin its run", "na", "the arm's validation error never reached the baseline's final "
                "error", data)


def _partial(cell: Cell, answered: int, pairs: int) -> Cell:
    """Say in the cell when only some pairs answered."""
    if answered == pairs:
        return cell
    return Cell(f"{cell.text}\n{answered} of {pairs} pairs", cell.css, cell.title + f"; the other {pairs - answered} "
                "pair(s) gave no reading", cell.data)


def _compute_cell(res: StudyResults, arm: str) -> Cell:
    flops = res.total_flops()
    hours = res.compute()
    f = flops.loc[flops["arm"] == arm, "value"].astype(float)
    h = hours.loc[hours["arm"] == arm, "value"].astype(float)
    if not len(f):
        return Cell("—", "na", "no finished run")
    return Cell(f"{si(f.mean())}\n{fmt(h.mean(), significant_decimals(h.mean(), 2))} h", "num",
                f"mean over {len(f)} runs of the run's training FLOPs and device-hours plus every upstream run's",
                {"arm": arm, "column": "compute", "flops": repr(float(f.mean())), "hours": repr(float(h.mean()))})


def _direction_css(value: float, is_resolved: bool) -> str:
    if not is_resolved:
        return ""
    return "better" if value < 0 else "worse"


# --- the answer -----------------------------------------------------------------------------------

def answers(res: StudyResults) -> list[str]:
    """One summary sentence on the headline comparison, then at most one sentence per compared arm."""
    arm = headline_arm(res)
    if not res.primary_test or not arm:
        return ["No comparison is possible: the study needs a 3D test set, the baseline arm and at least one "
                "other arm."]
    return [headline_sentence(res, arm), *(arm_sentence(res, a) for a in res.compared_arms)]


def headline_sentence(res: StudyResults, arm: str) -> str:
    """E.g. "2D pre-training lowered MPJPE on lab_test by 12.3 mm against 3D-only training (…): resolved."."""
    test = res.primary_test
    world = f" ({SYNTHETIC_LABEL})" if res.source(test) == "synthetic" else ""
    interval = stats.t_interval(accuracy_pairs(res, arm)["difference"])
    noun, base = arm_noun(arm), arm_noun(res.baseline_arm)
    subject = f"{noun[0].upper()}{noun[1:]}"
    if interval.n == 0:
        return f"{subject} and {base} have no pair of finished runs evaluated on {test}."
    verb = "lowered" if interval.mean < 0 else "raised"
    text = f"{subject} {verb} MPJPE on {test}{world} by {fmt(abs(interval.mean), 1)} mm against {base} ("
    if interval.n < 2:
        return text + "one model×seed pair, no interval): not resolved; the study needs two or more seeds."
    text += f"95% CI [{fmt(interval.low, 1)}, {fmt(interval.high, 1)}] mm over {interval.n} model×seed pairs)"
    if resolved(interval):
        return text + ": resolved."
    why = ("the interval includes 0" if interval.low <= 0 <= interval.high else
           f"its half-width, {fmt(interval.half_width, 1)} mm, exceeds a third of the effect")
    return text + f": not resolved with these seeds ({why})."


def arm_sentence(res: StudyResults, arm: str) -> str:
    """The verdicts of one arm's row: accuracy, then equal compute and time to accuracy per counting (once
    when both countings agree)."""
    interval = stats.t_interval(accuracy_pairs(res, arm)["difference"])
    clauses = {counting.phrase: _compute_verdicts(res, arm, counting) for counting in COUNTINGS}
    parts = [f"test MPJPE {_verdict(interval, 'lower', 'higher')}"]
    if len(set(clauses.values())) == 1 and next(iter(clauses.values())):
        parts.append(f"{next(iter(clauses.values()))}, whether counting "
                     + " or ".join(c.label for c in COUNTINGS))
    else:
        parts += [f"{text}, {phrase}" for phrase, text in clauses.items() if text]
    return f"{arm_label(arm)} against {arm_label(res.baseline_arm)}: " + "; ".join(parts) + "."


def _compute_verdicts(res: StudyResults, arm: str, counting: Counting) -> str:
    """E.g. "validation error at equal compute lower and the baseline's final error reached sooner"."""
    pairs = efficiency_pairs(res, arm, counting)
    clauses = []
    if pairs["equal_compute"].notna().any():
        clauses.append("validation error at equal compute "
                       + _verdict(stats.t_interval(pairs["equal_compute"]), "lower", "higher"))
    if pairs["time_ratio"].notna().any():
        ratio = log_ratio(stats.ratio_interval(pairs["time_ratio"]))
        clauses.append("the baseline's final error reached " + _verdict(ratio, "sooner", "later"))
    return " and ".join(clauses)


def _verdict(interval: stats.Interval, below: str, above: str) -> str:
    """``lower``, ``lower (not resolved)`` or ``not compared`` for a difference (or log ratio) interval."""
    if interval.n == 0 or not math.isfinite(interval.mean):
        return "not compared"
    word = below if interval.mean < 0 else above
    return word if resolved(interval) else f"{word} (not resolved)"


def _signed(value: float) -> str:
    """A difference with its sign always shown (+9.2, −23.9)."""
    return ("+" if math.isfinite(value) and round(value, 1) > 0 else "") + fmt(value, 1)

