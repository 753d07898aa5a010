"""The report: statistics with known answers, and the page rendered from the fixture study.

The headline numbers are recomputed here independently from the CSV tables (pandas + scipy)
and compared with what the page shows, to the precision it shows.
"""

from __future__ import annotations

import argparse
import base64
import io
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from PIL import Image

from pose_study.arms import ARMS
from pose_study.plan import BASELINE_ARM
from pose_study.report import provenance, stats, strategies, summary
from pose_study.report.references import load_references, references_table
from pose_study.report.results import StudyResults
from pose_study.report.style import fmt, significant_decimals
from pose_study.stages import collect, report
from tests.fixtures.results_tree import (REFERENCES, ResultsTree, copy_study, delete_run, shared_lifter_study,
                                        shared_study)

SECTIONS = ("summary", "headline-section", "size-section", "compute-section", "matrix-section",
            "joints-section", "examples-section", "baselines-section", "references-section",
            "provenance-section")
MISSING_RUN = "finetune_3d/3d_only/hg1_tiny/wild_mpii/lab/seed1"


# --- helpers --------------------------------------------------------------------------------------

class Page(HTMLParser):
    """The parts of a page the tests read: element ids, table cells (text + attributes), images."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.cells: list[dict] = []
        self.images: list[str] = []
        self.tags: list[str] = []
        self._cell: dict | None = None
        self._table: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "table":
            self._table.append(attrs.get("id", ""))
        if tag == "td":
            self._cell = {**attrs, "table": self._table[-1], "text": ""}
        if tag == "img":
            self.images.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._cell["text"] = self._cell["text"].strip()
            self.cells.append(self._cell)
            self._cell = None
        if tag == "table":
            self._table.pop()

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data

    def table_text(self, table: str) -> str:
        return " | ".join(c["text"] for c in self.cells if c["table"] == table)


def render(tree: ResultsTree, out: Path, references: Path | None = REFERENCES) -> str:
    collect.run(tree.config, collect.CollectPaths(tree.results, tree.benchmarks, tree.tables))
    report.run(tree.config, report.ReportPaths(tree.tables, tree.data, references, out))
    return out.read_text(encoding="utf-8")


def parse_shown(text: str) -> tuple[float, float | None, int]:
    """``'−12.3 ± 4.5'`` → (-12.3, 4.5, decimals); ``'7.0 (n=1)'`` → (7.0, None, 1)."""
    numbers = re.findall(r"[+−-]?\d+(?:\.\d+)?", text.replace("(n=1)", ""))
    values = [float(n.replace("−", "-")) for n in numbers]
    decimals = len(numbers[0].split(".")[1]) if "." in numbers[0] else 0
    return values[0], (values[1] if len(values) > 1 else None), decimals


def t_half_width(values: np.ndarray) -> float:
    return scipy.stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))


@pytest.fixture(scope="module")
def study() -> tuple[ResultsTree, str]:
    tree = shared_study()
    return tree, tree.report.read_text(encoding="utf-8")


# --- statistics: known answers --------------------------------------------------------------------

def test_t_interval_known_answer():
    got = stats.t_interval([1, 2, 3, 4, 5])
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)  # t(0.975, 4) · s / √n, s² = 2.5
    assert (got.mean, got.n) == (3.0, 5)
    assert got.low == pytest.approx(3 - half) and got.high == pytest.approx(3 + half)
    assert got.low == pytest.approx(1.036756, abs=1e-6)


@pytest.mark.parametrize("values, n", [([7.0], 1), ([], 0), ([np.nan, 2.0], 1)], ids=["one", "none", "nan"])
def test_t_interval_without_spread(values, n):
    got = stats.t_interval(values)
    assert got.n == n and math.isnan(got.low) and math.isnan(got.high)
    assert math.isnan(got.mean) if n == 0 else got.mean == next(v for v in values if np.isfinite(v))


def test_t_interval_rejects_bad_confidence():
    with pytest.raises(ValueError, match="confidence"):
        stats.t_interval([1, 2], confidence=95)


def test_paired_differences_pair_by_seed():
    frame = pd.DataFrame({"arm": ["a", "a", "b", "b", "b"], "model": ["m"] * 5, "dataset_2d": ["x"] * 5,
                          "dataset_3d": ["y"] * 5, "seed": [0, 1, 0, 1, 2],
                          "value": [10.0, 12.0, 13.0, 20.0, 99.0]})
    pairs = stats.paired_differences(frame, "a", "b")
    assert pairs["difference"].tolist() == [-3.0, -8.0]


def test_value_at_budget():
    flops, values = np.array([10.0, 20.0, 30.0]), np.array([5.0, 4.0, 3.0])
    assert stats.value_at_budget(flops, values, 25.0) == 4.0
    assert stats.value_at_budget(flops, values, 30.0) == 3.0
    assert math.isnan(stats.value_at_budget(flops, values, 5.0))


def test_summarise_groups():
    frame = pd.DataFrame({"g": ["x", "x", "y"], "value": [1.0, 3.0, 5.0]})
    out = stats.summarise(frame, ["g"]).set_index("g")
    assert out.loc["x", "mean"] == 2.0 and out.loc["y", "n"] == 1 and math.isnan(out.loc["y", "low"])


@pytest.mark.parametrize("value, decimals, text",
                         [(-0.04, 1, "0.0"), (-1.25, 1, "−1.2"), (float("nan"), 2, "—")])
def test_fmt(value, decimals, text):
    assert fmt(value, decimals) == text


def test_significant_decimals_and_cuda_tag():
    assert [significant_decimals(v) for v in (123.0, 0.0189, 4.2)] == [0, 4, 2]
    assert provenance.cuda_of("2.4.0+cu121") == "12.1"
    assert provenance.cuda_of("2.13.0+cpu") == "none (CPU build)"


# --- the rendered page ----------------------------------------------------------------------------

def test_every_section_is_present(study):
    _, html = study
    page = Page(html)
    assert set(SECTIONS) <= page.ids
    assert {"headline", "baselines", "references", "versions", "hardware", "jobs", "config-yaml"} <= page.ids
    assert {"figure-answer", "answer", "figure-size", "figure-compute", "figure-matrix", "figure-per_joint", "figure-per_action",
            "figure-examples"} <= page.ids
    assert "missing-runs" not in page.ids


def test_headline_numbers_equal_the_tables(study):
    tree, html = study
    metrics = pd.read_csv(tree.tables / "metrics.csv")
    runs = pd.read_csv(tree.tables / "runs.csv")
    cells = [c for c in Page(html).cells if c["table"] == "headline" and "data-column" in c]
    assert len(cells) == 4 * 4 + 2 * 4  # (2 models × 2 arms) means + 2 difference rows, 4 columns each
    for cell in cells:
        values = expected_values(metrics, runs, cell)
        mean, half, decimals = parse_shown(cell["text"])
        tolerance = 0.5 * 10 ** -decimals + 1e-9
        assert mean == pytest.approx(values.mean(), abs=tolerance), cell
        assert half == pytest.approx(t_half_width(values), abs=tolerance), cell
        assert cell["data-n"] == str(len(values))


def expected_values(metrics: pd.DataFrame, runs: pd.DataFrame, cell: dict) -> np.ndarray:
    """Per-seed values (or paired differences) behind one headline cell, straight from the CSVs."""
    column, arm, model = cell["data-column"], cell["data-arm"], cell["data-model"]
    if column == "compute":
        rows = runs[(runs["stage"] == "finetune_3d") & (runs["model"] == model)]
        series = rows.set_index(["arm", "seed"])["total_device_hours"]
        scale = 1.0
    else:
        metric, testset = column.split("@")
        rows = metrics[(metrics["stage"] == "finetune_3d") & (metrics["model"] == model)
                       & (metrics["testset"] == testset) & (metrics["metric"] == metric)
                       & (metrics["variant"] == "model") & (metrics["scope"] == "total")]
        series = rows.set_index(["arm", "seed"])["value"]
        scale = 100.0 if metric.startswith("pck") else 1.0
    if cell["data-kind"] == "mean":
        return series.loc[arm].sort_index().to_numpy() * scale
    return (series.loc[arm].sort_index() - series.loc["3d_only"].sort_index()).to_numpy() * scale


def test_headline_answer_is_computed_from_the_data(study):
    tree, html = study
    m = pd.read_csv(tree.tables / "metrics.csv")
    m = m[(m["testset"] == "lab_test") & (m["metric"] == "mpjpe") & (m["variant"] == "model")
          & (m["scope"] == "total") & (m["stage"] == "finetune_3d")]
    m = m.set_index(["arm", "model", "seed"])["value"]
    diff = (m.loc["pretrained_2d"] - m.loc[BASELINE_ARM]).to_numpy()
    half = t_half_width(diff)
    assert diff.mean() < 0
    verdict = (": resolved." if half <= abs(diff.mean()) / 3 else
               f": not resolved with these seeds (its half-width, {fmt(half, 1)} mm, exceeds a third of the effect).")
    expected = (f"2D pre-training lowered MPJPE on lab_test (synthetic world) by {fmt(-diff.mean(), 1)} mm against "
                f"3D-only training (95% CI [{fmt(diff.mean() - half, 1)}, {fmt(diff.mean() + half, 1)}] mm over 4 "
                f"model×seed pairs){verdict}")
    assert expected in html


@pytest.mark.parametrize("interval, expected", [
    (stats.Interval(-10.0, -13.0, -7.0, 3), True),   # half-width 3 ≤ 10/3
    (stats.Interval(-10.0, -14.0, -6.0, 3), False),  # half-width 4 > 10/3
    (stats.Interval(2.0, -1.0, 5.0, 3), False),      # includes 0
    (stats.Interval(-10.0, math.nan, math.nan, 1), False)], ids=["narrow", "wide", "zero", "one"])
def test_resolved_needs_a_third_of_the_effect(interval, expected):
    assert summary.resolved(interval) is expected


def answer_cells(html: str) -> dict[tuple[str, str], dict]:
    return {(c["data-arm"], c["data-column"]): c for c in Page(html).cells if c["table"] == "answer"
            and "data-column" in c}


def test_answer_table_is_computed_from_the_curves(study):
    """Equal-compute Δ and time-to-accuracy per (model, seed), recomputed here with numpy from curves.csv."""
    tree, html = study
    curves = pd.read_csv(tree.tables / "curves.csv")
    curves = curves[curves["stage"] == "finetune_3d"]
    cells = answer_cells(html)
    for key, column in (("total", "flops_total"), ("finetune", "flops")):
        differences, ratios = [], []
        for (model, seed), part in curves.groupby(["model", "seed"]):
            arm, base = (part[part["arm"] == a].sort_values(column) for a in ("pretrained_2d", BASELINE_ARM))
            x, y = arm[column].to_numpy(), arm["val_value"].to_numpy()
            bx, by = base[column].to_numpy(), base["val_value"].to_numpy()
            assert bx[0] <= x[-1] <= bx[-1]  # the baseline's curve reaches the arm's compute
            differences.append(y[-1] - np.interp(x[-1], bx, by))
            first = lambda cx, cy: np.interp(by[-1], cy[::-1], cx[::-1])  # monotone curves: the crossing
            ratios.append(first(x, y) / bx[np.argmax(by <= by[-1])] if y.min() <= by[-1] else math.nan)
        cell = cells[("pretrained_2d", f"equal_compute_{key}")]
        assert float(cell["data-mean"]) == pytest.approx(np.mean(differences))
        assert float(cell["data-high"]) - float(cell["data-mean"]) == pytest.approx(t_half_width(np.array(differences)))
        assert cell["data-n"] == "4"
        logs = np.log(ratios)
        cell = cells[("pretrained_2d", f"time_ratio_{key}")]
        assert float(cell["data-mean"]) == pytest.approx(math.exp(logs.mean()))
        assert float(cell["data-low"]) == pytest.approx(math.exp(logs.mean() - t_half_width(logs)))
    assert ("pretrained_2d", "delta_p_mpjpe") in cells and (BASELINE_ARM, "p_mpjpe") in cells  # P-MPJPE beside MPJPE
    flops = cells[("pretrained_2d", "compute")]
    assert float(flops["data-hours"]) > 0 and float(flops["data-flops"]) > 0


def test_the_answer_is_short_and_every_arm_has_a_compute_answer(lifter_study):
    tree, html = lifter_study
    res = StudyResults.load(tree.config, tree.tables)
    sentences = summary.answers(res)
    assert len(sentences) <= len(res.compared_arms) + 1
    assert all(s.count(". ") == 0 for s in sentences)  # one sentence each
    assert not re.search(r"no equal-compute point|exceeded the .* budget", html)
    cells = answer_cells(html)
    for arm in res.compared_arms:
        for column in ("equal_compute_total", "time_ratio_total", "equal_compute_finetune", "time_ratio_finetune"):
            assert int(cells[(arm, column)]["data-n"]) == 2 and "[" in cells[(arm, column)]["text"], (arm, column)


def test_a_baseline_curve_that_stops_short_is_said_in_its_cell(study):
    tree, _ = study
    res = StudyResults.load(tree.config, tree.tables)
    c = res.curves
    short = (c["arm"] == BASELINE_ARM) & (c["step"] > 20)
    res.curves = c[~short]  # the baseline stops before the arm's compute
    row = next(r for r in summary.answer_table(res).rows if r[0].text == "2D pre-trained")
    equal = next(cell for cell in row if cell.data.get("column") == "equal_compute_total")
    assert equal.text.startswith("baseline stops at") and "× this arm's compute" in equal.text
    assert not any("equal" in s and "stops" in s for s in summary.answers(res))


def test_parameters_read_in_k_or_m(study):
    _, html = study
    sizes = [c["text"] for c in Page(html).cells if c["table"] == "headline" and c["text"].endswith(" k")]
    assert "54.2 k" in sizes and "106 k" in sizes and " M" not in Page(html).table_text("headline")


def test_synthetic_numbers_are_labelled(study):
    _, html = study
    page = Page(html)
    assert "synthetic-banner" in page.ids
    ours = [c for c in page.cells if c["table"] == "references" and c.get("class") == "synthetic"]
    assert ours and all("synthetic world" in c["text"] for c in ours)
    references = page.table_text("references")
    assert "64.55 mm" in references and "ECCV'18 challenge Val" in references


def test_published_numbers_stand_beside_ours_or_say_not_comparable(study):
    tree, html = study
    rows = [c for c in Page(html).cells if c["table"] == "references"]
    published = len(load_references(REFERENCES))
    assert sum(c["text"] == "not comparable: synthetic world" for c in rows) == published  # every metric is scored
    res = StudyResults.load(tree.config, tree.tables)
    res.metrics = res.metrics.assign(source="real")  # the same numbers, as if the test data were real
    table = references_table(res, [{"system": "S", "metric": "mpjpe", "value": 50.0, "unit": "mm", "dataset": "D",
                                    "protocol": "P", "source": "X"}])
    m = res.scores("lab_test", "mpjpe")
    expected = m.loc[(m["arm"] == "pretrained_2d") & (m["model"] == "hg2_tiny"), "value"].mean()
    assert table.rows[0][5].text == f"{fmt(expected, 1)} mm\n2D pre-trained · hg2_tiny · lab_test"


def test_page_is_self_contained_and_images_decode(study):
    _, html = study
    page = Page(html)
    assert "script" not in page.tags and not re.search(r"(src|href)=\"(?!data:|#)", html)
    assert "http://" not in html.split("<body>")[0] and len(page.images) == 7
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as image:
            image.load()
            assert image.width > 100 and image.height > 100


def test_provenance_names_versions_hardware_and_jobs(study):
    tree, html = study
    page = Page(html)
    sha = pd.read_csv(tree.tables / "runs.csv")["git_sha"].iloc[0]
    assert sha in page.table_text("versions") and "none (CPU build)" in page.table_text("versions")
    assert "cpu (x86_64, 2 threads)" in page.table_text("hardware")
    assert "finetune_3d/pretrained_2d/hg1_tiny/wild_mpii/lab/seed0" in page.table_text("jobs")
    assert "primary_3d_test: lab" in html and "&id0" not in html


def test_config_text_is_escaped(study, tmp_path):
    tree, _ = study
    config = {**tree.config, "title": "<script>alert(1)</script> & co"}
    out = report.run(config, report.ReportPaths(tree.tables, tree.data, None, tmp_path / "index.html"))
    html = out.read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html
    assert "script" not in Page(html).tags
    assert "No reference file was given" in html


def test_a_missing_run_is_named_and_the_page_still_renders(study, tmp_path):
    tree, _ = study
    copy = copy_study(tree, tmp_path / "copy")
    delete_run(copy, MISSING_RUN)
    html = render(copy, tmp_path / "index.html")
    page = Page(html)
    assert {"missing-runs", "headline"} <= page.ids
    assert MISSING_RUN in page.table_text("missing")
    seeds = [c["text"] for c in page.cells if c["table"] == "headline" and c["text"] in ("1/2", "2/2")]
    assert seeds.count("1/2") == 1
    n1 = [c for c in page.cells if c.get("data-model") == "hg1_tiny" and c.get("data-arm") == "3d_only"
          and c.get("data-kind") == "mean"]
    assert n1 and all(c["text"].endswith("(n=1)") for c in n1)


def test_reference_file_errors_name_file_and_entry(tmp_path):
    bad = tmp_path / "refs.yaml"
    bad.write_text("references:\n  - {system: X, metric: mpjpe, value: 1}\n")
    with pytest.raises(ValueError, match=r"refs\.yaml: references\[0\] \(X\) lacks key"):
        load_references(bad)
    with pytest.raises(FileNotFoundError, match="absent.yaml"):
        load_references(tmp_path / "absent.yaml")
    assert all(e["dataset"] and e["protocol"] and e["source"] for e in load_references(REFERENCES))


def test_command_line_renders_the_same_page(study, tmp_path):
    """The CLI path (config file, --results) gives byte-identical output: rendering is deterministic."""
    tree, html = study
    parser = argparse.ArgumentParser()
    report.configure(parser)
    out = tmp_path / "page.html"
    report.main(parser.parse_args(["--config", str(tree.config_path), "--tables", str(tree.tables),
                                   "--results", str(tree.results), "--references", str(REFERENCES),
                                   "--out", str(out)]))
    assert out.read_text(encoding="utf-8") == html


# --- the pre-training strategies section (every arm, lifter runs) ---------------------------------

@pytest.fixture(scope="module")
def lifter_study() -> tuple[ResultsTree, str]:
    tree = shared_lifter_study()
    return tree, tree.report.read_text(encoding="utf-8")


def test_two_arm_studies_have_no_strategies_section(study):
    _, html = study
    assert "strategies-section" not in Page(html).ids and "Pre-training strategies" not in html


def test_strategies_table_shows_the_seed_means_and_all_stage_flops(lifter_study):
    tree, html = lifter_study
    page = Page(html)
    assert "strategies-section" in page.ids and {"strategies", "cross_lifter", "lifter_runs"} <= page.ids
    others = [t for t in tree.config["test_3d"] if f"{t}_test" != "lab_test"]
    assert others and {f"cross_lifter_{t}_test" for t in others} <= page.ids  # every 3D test set, primary first
    metrics, runs = pd.read_csv(tree.tables / "metrics.csv"), pd.read_csv(tree.tables / "runs.csv")
    cells = {(c["data-arm"], c["data-column"]): c for c in page.cells
             if c["table"] == "strategies" and "data-column" in c}
    assert len(cells) == 8 * 5 - 1  # 8 arms × (2 test sets, P-MPJPE, FLOPs, Δ); the 3d_only arm has no Δ
    for arm in ARMS:
        for metric, test, column in (("mpjpe", "lab_test", "lab_test"), ("mpjpe", "occluded_test", "occluded_test"),
                                     ("p_mpjpe", "lab_test", "p_mpjpe:lab_test")):
            values = metrics[(metrics["arm"] == arm) & (metrics["testset"] == test) & (metrics["variant"] == "model")
                             & (metrics["metric"] == metric) & (metrics["scope"] == "total")
                             & (metrics["stage"] == "finetune_3d")]["value"].to_numpy()
            mean, half, _ = parse_shown(cells[(arm, column)]["text"])
            assert mean == pytest.approx(values.mean(), abs=0.05)
            assert half == pytest.approx(t_half_width(values), abs=0.05)
    own = runs.set_index("run")["train_flops"]
    apt = [own[f"{stage}/seed{s}"] for s in (0, 1) for stage in (
        "finetune_3d/apt_pose/hg1_tiny/wild_mpii/lab", "pretrain_2d/hg1_tiny/wild_mpii",
        "pretrain_pose/apt_tiny/wild_mpii/lab", "train_lifter/apt_tiny/pretrain_pose/wild_mpii/lab")]
    assert float(cells[("apt_pose", "flops")]["data-value"]) == pytest.approx(sum(apt) / 2)
    scratch = own[[f"finetune_3d/3d_only/hg1_tiny/wild_mpii/lab/seed{s}" for s in (0, 1)]].mean()
    assert float(cells[("3d_only", "flops")]["data-value"]) == pytest.approx(scratch)


def test_cross_lifter_table_marks_the_lifters_in_each_loss(lifter_study):
    tree, html = lifter_study
    metrics = pd.read_csv(tree.tables / "metrics.csv")
    cells = [c for c in Page(html).cells if c["table"] == "cross_lifter" and "data-lifter" in c]
    in_loss = {(c["data-arm"], c["data-lifter"]) for c in cells if c.get("class") == "in-loss"}
    assert in_loss == {("l2d_single", "mlp_tiny/scratch"), ("l2d_multi", "mlp_tiny/scratch"),
                       ("l2d_multi", "graph_tiny/scratch")}
    cell = next(c for c in cells if c.get("data-arm") == "mpt" and c["data-lifter"] == "transformer_tiny/scratch")
    values = metrics[(metrics["arm"] == "mpt") & (metrics["testset"] == "lab_test") & (metrics["metric"] == "mpjpe")
                     & (metrics["variant"] == "lifter:transformer_tiny/scratch")]["value"]
    assert parse_shown(cell["text"])[0] == pytest.approx(values.mean(), abs=0.05)
    upper = next(c for c in cells if c.get("data-kind") == "gt_2d" and c["data-lifter"] == "apt_tiny/pretrain_pose")
    truth = metrics[(metrics["testset"] == "lab_test") & (metrics["metric"] == "mpjpe")
                    & (metrics["variant"] == "gt_2d:apt_tiny/pretrain_pose")].groupby("seed")["value"].mean()
    assert parse_shown(upper["text"])[0] == pytest.approx(truth.mean(), abs=0.05)
    assert "transformer_tiny/<wbr>scratch (held out)" in html and "ground-truth 2D (upper bound)" in html


def _apt_differences(tree: ResultsTree) -> np.ndarray:
    m = pd.read_csv(tree.tables / "metrics.csv")
    m = m[(m["arm"] == "apt_pose") & (m["testset"] == "lab_test") & (m["metric"] == "mpjpe")]
    per_seed = {init: m[m["variant"] == f"gt_2d:apt_tiny/{init}"].groupby("seed")["value"].mean()
                for init in ("pretrain_pose", "scratch")}
    return (per_seed["pretrain_pose"] - per_seed["scratch"]).to_numpy()


def test_apt_sentence_says_beat_with_the_paired_interval(lifter_study):
    tree, html = lifter_study
    diff = _apt_differences(tree)
    half = t_half_width(diff)
    assert diff.mean() + half < 0
    expected = (f"The APTPose-pre-trained sequence lifter (apt_tiny) beat the same lifter trained from scratch on "
                f"lab_test (synthetic world) at equal fine-tuning steps (40): {fmt(diff.mean(), 1)} mm MPJPE from "
                f"ground-truth 2D, 95% CI [{fmt(diff.mean() - half, 1)}, {fmt(diff.mean() + half, 1)}] over 2 seeds")
    assert expected in html


def test_apt_sentence_says_did_not_beat_when_pretraining_hurt():
    tree = shared_lifter_study(apt_gain=1.3, report_page=False)
    diff = _apt_differences(tree)
    assert diff.mean() > 0
    sentence = strategies.apt_sentence(StudyResults.load(tree.config, tree.tables))
    assert sentence.startswith("The APTPose-pre-trained sequence lifter (apt_tiny) did not beat the same lifter")
    assert f"+{fmt(diff.mean(), 1)} mm MPJPE from ground-truth 2D" in sentence


def test_sections_hide_without_lifter_data(lifter_study):
    tree, _ = lifter_study
    res = StudyResults.load({**tree.config, "arms": ["3d_only", "pretrained_2d"]}, tree.tables)
    assert not strategies.present(res) and strategies.apt_sentence(res) is None
    res = StudyResults.load({**tree.config, "arms": ["3d_only", "ft_2d"]}, tree.tables)
    assert strategies.present(res) and strategies.apt_sentence(res) is None
    assert [row[1].text for row in strategies.cross_lifter(res).rows] == ["2D fine-tuned + lifter",
                                                                         "ground-truth 2D (upper bound)"]


def test_si_prefixes():
    assert [strategies.si(v) for v in (2.61e10, 1.234e12, 999.0, 5e5, math.nan)] == [
        "26.1 G", "1.23 T", "999", "500 k", "—"]


def test_header_slashes_break_and_stay_escaped():
    assert str(report.break_after_slashes("<b>a/b</b>")) == "&lt;b&gt;a/<wbr>b&lt;/<wbr>b&gt;"


def test_headline_says_resolved_when_the_interval_is_narrow(study):
    tree, _ = study
    res = StudyResults.load(tree.config, tree.tables)
    m = res.metrics
    rows = (m["arm"] == "pretrained_2d") & (m["stage"] == "finetune_3d") & (m["variant"] == "model")
    base = m[(m["arm"] == BASELINE_ARM) & (m["stage"] == "finetune_3d") & (m["variant"] == "model")]
    shifted = m.loc[rows, [*tidy_keys(), "value"]].merge(base[[*tidy_keys(), "value"]], on=tidy_keys(),
                                                         suffixes=("", "_base"))
    offsets = np.array([-20.0, -21.0, -19.0, -20.5])  # mean −20.1, half-width ≈ 1.4 mm
    m.loc[rows, "value"] = shifted["value_base"].to_numpy() + np.resize(offsets, rows.sum())
    sentence = summary.headline_sentence(res, "pretrained_2d")
    assert sentence.startswith("2D pre-training lowered MPJPE on lab_test (synthetic world) by ")
    assert sentence.endswith(": resolved.")


def tidy_keys() -> list[str]:
    return ["model", "seed", "testset", "metric", "scope", "key"]
