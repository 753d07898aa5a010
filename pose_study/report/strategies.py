"""The "Pre-training strategies" section: every arm at its full training cost, cross-lifter validation,
the APTPose lifter against its scratch twin, and the lifter runs themselves.

* ``strategies``: model × arm → MPJPE on every 3D test set (mean ± 95 % t-interval over seeds), the
  training FLOPs of all stages the arm's prediction depends on (``StudyResults.total_flops``), and
  the paired difference to the 3D-only arm on the primary test set.
* ``cross_lifter``: the lifter arms' detectors through every study lifter (``lifter:NAME``) on the
  primary test set, lifters in the arm's loss marked; last row: each lifter on ground-truth 2D
  (``gt_2d:NAME``), the upper bound of lifting that detector-free 2D.
* ``fairness``: per arm, what it was given: steps (its own and with every upstream run), the training
  data it and its upstream runs saw (2D, 3D and pose-only sets, with sample counts where the config
  fixes them), its upstream runs and their training FLOPs (``Plan.fairness``).
* ``apt_sentence``: whether the pose-pre-trained sequence lifter beat the same lifter from scratch, at
  equal fine-tuning steps and, against the scratch lifter trained for the pre-trained one's total
  steps (``scratch_total``), at equal total steps.
* ``lifter_runs``: final validation error, size and cost of the lifter and pose pre-training runs.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pose_study.arms import ARMS
from pose_study.plan import NO_2D, SCRATCH_TOTAL, RunKey
from pose_study.report import stats
from pose_study.report.results import StudyResults
from pose_study.report.style import SYNTHETIC_LABEL, MetricStyle, arm_label, fmt, metric_style, si
from pose_study.report.tables import Cell, Table, finished_seeds, interval_cell, verdict
from pose_study.report.tidy import lifter_variant

METRIC = "mpjpe"
FLOPS_STYLE = MetricStyle("Training FLOPs, all stages", "FLOPs", 1.0, 3)


def present(res: StudyResults) -> bool:
    """The section is shown when the study has an arm beyond the detector-only ones."""
    return bool(res.lifter_arms)


# --- (a) every arm at its full cost -----------------------------------------------------------------

def strategies(res: StudyResults) -> Table:
    """Model × arm: MPJPE per 3D test set, P-MPJPE on the primary test (free of scale), training FLOPs of
    every stage, Δ to the baseline on the primary test."""
    style, test = metric_style(METRIC), res.primary_test
    scores = {t: res.scores(t, METRIC) for t in res.tests_3d}
    aligned = metric_style("p_mpjpe")
    procrustes = res.scores(test, "p_mpjpe") if test else None
    flops = res.total_flops()
    with_delta = bool(res.baseline_arm and test)
    delta = [f"Δ {style.name} vs {arm_label(res.baseline_arm)} · {test} (paired)"] if with_delta else []
    p_column = [f"{aligned.label} · {test}"] if test else []
    table = Table("strategies", ["Model", "Arm", "Seeds", *[f"{style.label} · {t}" for t in res.tests_3d],
                                 *p_column, f"{FLOPS_STYLE.name}", *delta])
    for model in res.models:
        for arm in res.arms:
            data = {"arm": arm, "model": model}
            cells = [interval_cell(_over_seeds(scores[t], arm, model), style, {**data, "column": t})
                     for t in res.tests_3d]
            if test:
                cells.append(interval_cell(_over_seeds(procrustes, arm, model), aligned,
                                           {**data, "column": f"p_mpjpe:{test}"}))
            total = _over_seeds(flops, arm, model)
            cells.append(Cell(si(total.mean), "", f"mean over {total.n} seed(s) of the run's FLOPs plus its "
                              "pre-training and every lifter it depends on",
                              {**data, "column": "flops", "value": repr(total.mean)}))
            if with_delta:
                cells.append(_delta_cell(res, scores[test], arm, model, style))
            table.add([Cell(model), Cell(arm_label(arm), f"arm arm-{arm}"),
                       Cell(f"{finished_seeds(res, arm, model)}/{len(res.config['seeds'])}"), *cells])
    return table


def _delta_cell(res: StudyResults, frame: pd.DataFrame, arm: str, model: str, style: MetricStyle) -> Cell:
    if arm == res.baseline_arm:
        return Cell("—", "na", "the reference arm")
    pairs = stats.paired_differences(frame[frame["model"] == model], arm, res.baseline_arm)
    interval = stats.t_interval(pairs["difference"])
    cell = interval_cell(interval, style, {"arm": arm, "model": model, "column": "delta"}, signed=True)
    return Cell(cell.text, verdict(interval, style), cell.title, cell.data)


def _over_seeds(frame: pd.DataFrame, arm: str, model: str) -> stats.Interval:
    return stats.t_interval(frame.loc[(frame["arm"] == arm) & (frame["model"] == model), "value"])


# --- (b) what each arm was given ------------------------------------------------------------------

DATA_ROLES = (("2d", "2D data"), ("3d", "3D data"), ("pose", "Pose-only data"))


def fairness(res: StudyResults) -> Table:
    """Model × arm (× training sets): steps, data seen, upstream runs and training FLOPs of every stage.

    Steps, data and upstream runs are the plan's (the same for every seed); FLOPs are measured (mean
    over seeds of ``StudyResults.total_flops``).
    """
    flops = res.total_flops()
    table = Table("fairness", ["Model", "Arm", "Training sets", "Steps (own)", "Steps (all stages)",
                               *[label for _, label in DATA_ROLES], "Upstream runs", FLOPS_STYLE.name])
    seed = res.config["seeds"][0]
    for key in res.plan.runs():
        if key.stage != "finetune_3d" or key.seed != seed:
            continue
        f = res.plan.fairness(key)
        data = {"arm": key.arm, "model": key.model}
        upstream = [path.rsplit("/seed", 1)[0] for path in f["upstream"]]
        rows = flops[(flops["arm"] == key.arm) & (flops["model"] == key.model)
                     & (flops["dataset_2d"] == key.dataset_2d) & (flops["dataset_3d"] == key.dataset_3d)]
        total = stats.t_interval(rows["value"])
        steps, why = f["steps"], ""
        if res.plan.budget(key) == "compute_matched":  # its length is set at run time: show what it ran
            steps, why = _measured_steps(res, key), "compute-matched: the mean over seeds of the steps it ran"
        total_steps = steps + f["upstream_steps"]
        table.add([Cell(key.model), Cell(arm_label(key.arm), f"arm arm-{key.arm}"),
                   Cell(f"{key.dataset_2d} · {key.dataset_3d}"),
                   Cell(f"{steps:,}", "", why, {**data, "column": "steps", "value": str(steps)}),
                   Cell(f"{total_steps:,}", "", "the run's steps plus every upstream run's",
                        {**data, "column": "total_steps", "value": str(total_steps)}),
                   *[Cell(_sets_text(f["data"][role]) or "—", "" if f["data"][role] else "na",
                          "training split, samples", {**data, "column": role})
                     for role, _ in DATA_ROLES],
                   Cell("; ".join(upstream) or "—", "" if upstream else "na", "",
                        {**data, "column": "upstream", "value": str(len(upstream))}),
                   Cell(si(total.mean), "", f"mean over {total.n} seed(s)",
                        {**data, "column": "flops", "value": repr(total.mean)})])
    return table


def _measured_steps(res: StudyResults, key: RunKey) -> int:
    """Mean over finished seeds of the steps ``key``'s runs ran (0 when none finished)."""
    runs = res.runs
    rows = runs[(runs["status"] == "ok") & (runs["stage"] == key.stage) & (runs["arm"] == key.arm)
                & (runs["model"] == key.model) & (runs["dataset_2d"] == key.dataset_2d)
                & (runs["dataset_3d"] == key.dataset_3d)]
    return int(round(rows["steps"].mean())) if len(rows) else 0


def _sets_text(sets: dict[str, int | None]) -> str:
    """``lab (4,000)``, ``h36m (n unknown until converted)``, comma-separated."""
    return ", ".join(f"{name} ({n:,})" if n is not None else f"{name} (n unknown until converted)"
                     for name, n in sets.items())


# --- (c) cross-lifter validation ------------------------------------------------------------------

def lifter_role(config: dict, name: str) -> str:
    """How a study lifter was trained and used: ``guide``, ``held out``, ``sequence`` or ``heatmap``."""
    s, (lifter, _, init) = config["lifters"], name.partition("/")
    if lifter in s["guide"]:
        return "guide"
    if lifter in s["held_out"]:
        return "held out"
    return {s["sequence"]: "sequence", s["heatmap"]: "heatmap"}.get(lifter, init)


def in_loss(config: dict, arm: str, name: str) -> bool:
    """True when lifter ``name`` was a frozen guide in ``arm``'s training loss."""
    chosen = ARMS[arm].guide_lifters(config["lifters"]["guide"])
    return name in {f"{lifter}/scratch" for lifter in chosen}


def cross_lifter(res: StudyResults, test: str | None = None) -> Table:
    """Lifter arms × every study lifter on ``test`` (default: the primary test set), and each lifter on
    ground-truth 2D. The primary test set's table has the id ``cross_lifter``."""
    test = test or res.primary_test
    names, style = res.evaluation_lifters(), metric_style(METRIC)
    headers = [f"{n} ({lifter_role(res.config, n)})" for n in names]
    table_id = "cross_lifter" if test == res.primary_test else f"cross_lifter_{test}"
    table = Table(table_id, ["Model", "Arm", f"Own 3D · {test}", *headers])
    if not test or not names:
        return table
    own = res.scores(test, METRIC)
    through = {n: res.scores(test, METRIC, lifter_variant(n)) for n in names}
    for model in res.models:
        for arm in res.lifter_arms:
            cells = [interval_cell(_over_seeds(own, arm, model), style, {"arm": arm, "model": model, "lifter": "own"})]
            for n in names:
                cell = interval_cell(_over_seeds(through[n], arm, model), style,
                                     {"arm": arm, "model": model, "lifter": n})
                loss = in_loss(res.config, arm, n)
                cells.append(Cell(cell.text, "in-loss" if loss else "", ("in this arm's training loss; " if loss
                                                                         else "") + cell.title, cell.data))
            table.add([Cell(model), Cell(arm_label(arm), f"arm arm-{arm}"), *cells])
    upper = [interval_cell(_per_seed(res.scores(test, METRIC, lifter_variant(n, gt_2d=True))), style,
                           {"lifter": n, "kind": "gt_2d"}) for n in names]
    table.add([Cell("—"), Cell("ground-truth 2D (upper bound)"), Cell("—", "na"), *upper], "baseline")
    return table


def _per_seed(frame: pd.DataFrame) -> stats.Interval:
    """Interval over seeds of a lifter's score (the same lifter is scored in every run of a seed)."""
    return stats.t_interval(frame.groupby("seed")["value"].mean()) if len(frame) else stats.t_interval([])


# --- (d) APTPose pre-training against scratch ------------------------------------------------------

def apt_sentence(res: StudyResults) -> str | None:
    """Did the pose-pre-trained sequence lifter beat the same lifter from scratch? None without ``apt_pose``.

    Against the scratch lifter at equal fine-tuning steps and, when the study has it, against the
    scratch lifter trained for the pre-trained one's pose pre-training plus fine-tuning steps.
    """
    arm = next((a for a in res.arms if a in ARMS and ARMS[a].lifted_by == "sequence"), None)
    if arm is None:
        return None
    seq, test = res.config["lifters"]["sequence"], res.primary_test
    world = f" ({SYNTHETIC_LABEL})" if test and res.source(test) == "synthetic" else ""
    subject = (f"The APTPose-pre-trained sequence lifter ({seq}) {{verb}} the same lifter trained from scratch "
               f"on {test}{world} {_steps_text(res, seq)}")
    text = _apt_comparison(res, arm, seq, "scratch", subject)
    if f"{seq}/{SCRATCH_TOTAL}" in res.evaluation_lifters():
        subject = f"At equal total steps it {{verb}} the scratch lifter {_total_steps_text(res, seq)}"
        text += " " + _apt_comparison(res, arm, seq, SCRATCH_TOTAL, subject)
    return text


def _apt_comparison(res: StudyResults, arm: str, seq: str, scratch: str, subject: str) -> str:
    """One sentence: ``seq``/pretrain_pose against ``seq``/``scratch`` (``subject`` has a ``{verb}`` slot)."""
    truth = _lifter_pairs(res, arm, seq, gt_2d=True, scratch=scratch).groupby("seed")["difference"].mean()
    if truth.empty:
        return subject.format(verb="could not be compared with") + ": no evaluation of the APTPose arm scored both."
    interval = stats.t_interval(truth)
    text = subject.format(verb=_verb(interval)) + (f": {_signed(interval.mean)} mm MPJPE from ground-truth 2D, "
                                                   f"{_ci(interval, 'seed')}")
    detected = stats.t_interval(_lifter_pairs(res, arm, seq, gt_2d=False, scratch=scratch)["difference"])
    if detected.n:
        text += (f"; from the APTPose arm's detected 2D {_signed(detected.mean)} mm, "
                 f"{_ci(detected, 'model×seed pair')}")
    caveat = " (lower on average, but the interval includes 0)" if interval.mean < 0 < interval.high else ""
    return text + caveat + "."


def _lifter_pairs(res: StudyResults, arm: str, seq: str, gt_2d: bool,
                  scratch: str = "scratch") -> pd.DataFrame:
    """Per (model, seed) of ``arm``: MPJPE of ``seq``/pretrain_pose − ``seq``/``scratch`` on the primary
    test."""
    frames = []
    for init in ("pretrain_pose", scratch):
        scores = res.scores(res.primary_test, METRIC, lifter_variant(f"{seq}/{init}", gt_2d))
        frames.append(scores[scores["arm"] == arm].assign(arm=init))  # the init takes the arm's place in the pairing
    return stats.paired_differences(pd.concat(frames), "pretrain_pose", scratch)


def _verb(interval: stats.Interval) -> str:
    resolved = interval.n < 2 or interval.high < 0
    return "beat" if interval.mean < 0 and resolved else "did not beat"


def _run_steps(res: StudyResults, stage: str, seq: str, init: str) -> np.ndarray:
    runs = res.lifter_runs()
    return runs.loc[(runs["stage"] == stage) & (runs["lifter"] == seq) & (runs["init"] == init)
                    & (runs["status"] == "ok"), "steps"].dropna().unique()


def _steps_text(res: StudyResults, seq: str) -> str:
    inits = ("scratch", "pretrain_pose")
    steps = {init: _run_steps(res, "train_lifter", seq, init) for init in inits}
    values = sorted({int(v) for v in np.concatenate(list(steps.values()))})
    if len(values) == 1:
        return f"at equal fine-tuning steps ({values[0]})"
    if not values:
        return "(fine-tuning steps unknown)"
    return "at unequal fine-tuning steps (" + " vs ".join(
        f"{init}: {'/'.join(str(int(v)) for v in sorted(steps[init]))}" for init in inits) + ")"


def _total_steps_text(res: StudyResults, seq: str) -> str:
    """``trained for N steps, as its pose pre-training plus fine-tuning (P + F)`` from the finished runs."""
    total, pre, tuned = (_run_steps(res, stage, seq, init) for stage, init in (
        ("train_lifter", SCRATCH_TOTAL), ("pretrain_pose", ""), ("train_lifter", "pretrain_pose")))
    if not (len(total) and len(pre) and len(tuned)):
        return f"({SCRATCH_TOTAL}; steps unknown)"
    pre_tuned = f"{int(pre.max())} + {int(tuned.max())}"
    equal = "" if int(total.max()) == int(pre.max()) + int(tuned.max()) else ", unequal"
    return (f"trained for {int(total.max())} steps ({SCRATCH_TOTAL}; pose pre-training + fine-tuning "
            f"{pre_tuned}{equal})")


def _ci(interval: stats.Interval, unit: str) -> str:
    if interval.n < 2:
        return f"n={interval.n} {unit} (no interval)"
    return f"95% CI [{fmt(interval.low, 1)}, {fmt(interval.high, 1)}] over {interval.n} {unit}s"


def _signed(value: float) -> str:
    return ("+" if math.isfinite(value) and round(value, 1) > 0 else "") + fmt(value, 1)


# --- (e) the lifter runs --------------------------------------------------------------------------

def lifter_runs(res: StudyResults) -> Table:
    """Lifter training and pose pre-training runs: final validation error over seeds, size, cost."""
    runs = res.lifter_runs()
    table = Table("lifter_runs", ["Stage", "Lifter", "Init", "2D data", "3D data", "Seeds",
                                  "Final validation error", "Parameters", "FLOPs / sample", "Training FLOPs (own)"])
    groups = runs.groupby(["stage", "lifter", "init", "dataset_2d", "dataset_3d"], sort=False)
    for (stage, lifter, init, d2, d3), part in groups:
        ok = part[part["status"] == "ok"]
        metric = str(ok["final_metric"].iloc[0]) if len(ok) else METRIC
        world = f" · {SYNTHETIC_LABEL}" if res.config["datasets"].get(d3, {}).get("source") == "synthetic" else ""
        final = interval_cell(stats.t_interval(ok["final_value"]), metric_style(metric),
                              {"stage": stage, "lifter": lifter, "init": init})
        table.add([Cell(stage), Cell(lifter), Cell(init or "—"), Cell(d2 if d2 not in ("", NO_2D) else "—"),
                   Cell(f"{d3} val{world}"),
                   Cell(f"{len(ok)}/{len(part)}"),
                   Cell(final.text + (f" ({metric_style(metric).unit})" if final.text != "—" else ""), final.css,
                        final.title, final.data),
                   Cell(si(_first(ok, "params"))), Cell(si(_first(ok, "forward_flops_per_image"))),
                   Cell(si(ok["train_flops"].astype(float).mean() if len(ok) else math.nan))])
    return table


def _first(frame: pd.DataFrame, column: str) -> float:
    values = frame[column].dropna()
    return float(values.iloc[0]) if len(values) else math.nan
