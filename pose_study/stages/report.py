"""Stage ``report``: render the study's single-file HTML report from the collected tables.

Inputs: the study config (validated), the tables written by ``collect`` (``runs.csv``,
``metrics.csv``, ``curves.csv``, ``examples.csv``, ``jobs.csv``), the study's canonical HDF5 test
splits (only the example images are read: ``{data}/{dataset}/{split}.h5``) and the published
reference numbers (``reports/reference_results.yaml``).

Output: one self-contained HTML page (jinja2, autoescaped; figures as base64 PNG; inline CSS; no
script and no external request, enforced by a Content-Security-Policy). Sections: the first screen
(question, one figure of every arm against the baseline at equal compute, one compact table and the
answer: a summary sentence and at most one sentence per arm), missing runs (when any), the
headline table per model size (folded), pre-training strategies (studies with lifter
arms: every arm at its full training cost, cross-lifter validation, the APTPose lifter against its
scratch twin, the lifter runs), error vs model size, error vs compute, the
cross-dataset matrix, per-joint/per-action errors, example images, baselines, published
references, provenance. The same tables give the same page (no timestamps).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from pose_study._io import write_text
from pose_study.report import figures, provenance, strategies, summary, tables
from pose_study.report.examples import examples_figure
from pose_study.report.references import load_references, references_table
from pose_study.report.results import StudyResults
from pose_study.report.style import SYNTHETIC_LABEL, arm_colours, arm_label
from pose_study.stages.collect import load_config_arg

log = logging.getLogger(__name__)

TEMPLATE = "index.html.j2"


@dataclass(frozen=True)
class ReportPaths:
    """Where report reads and writes.

    Attributes:
        tables: Folder of the collected CSV tables (``results/{study}/tables``).
        data: Folder of the canonical splits (``results/{study}/data``), for example images.
        references: Published numbers (``reports/reference_results.yaml``), or None to show none.
        out: The HTML page (``reports/{study}/index.html``).
    """

    tables: Path
    data: Path
    references: Path | None
    out: Path


def run(config: dict, paths: ReportPaths) -> Path:
    """Render the report of ``config``'s study to ``paths.out``; returns that path."""
    res = StudyResults.load(config, paths.tables)
    html = render(build_context(res, paths))
    write_text(paths.out, html)
    log.info("wrote %s (%.0f kB)", paths.out, len(html.encode()) / 1024)
    return paths.out


def build_context(res: StudyResults, paths: ReportPaths) -> dict[str, Any]:
    """Everything the template shows, as plain values (escaped by the template)."""
    config = res.config
    return {
        "title": config["title"], "study": config["study"], "training_sets": res.training_sets,
        "arms_text": "arms " + ", ".join(arm_label(a) for a in res.arms),
        "models_text": ", ".join(res.models), "seeds_text": ", ".join(str(s) for s in config["seeds"]),
        "synthetic": res.is_synthetic(), "synthetic_label": SYNTHETIC_LABEL, "colours": arm_colours(res.arms),
        "all_tests": res.tests_3d + res.tests_2d,
        "synthetic_tests": [t for t in res.tests_3d + res.tests_2d if res.source(t) == "synthetic"],
        "question": summary.question(res), "answers": summary.answers(res), "answer_table": summary.answer_table(res),
        "answer_primary": res.primary_test,
        "baseline_label": arm_label(res.baseline_arm) if res.baseline_arm else "none",
        "missing": tables.missing(res), "headline": tables.headline(res), "baselines": tables.baselines(res),
        "strategies": strategies_context(res),
        "references": references_table(res, load_references(paths.references)),
        "references_given": paths.references is not None,
        "figures": build_figures(res, paths.data),
        "versions": provenance.versions_table(res), "hardware": provenance.hardware_table(res),
        "stage_jobs": provenance.stage_jobs_table(res.jobs), "jobs": provenance.jobs_table(res.jobs),
        "config_yaml": provenance.config_yaml(config),
    }


def _primary_first(res: StudyResults) -> list[str]:
    """The 3D test sets, the primary one first."""
    return sorted(res.tests_3d, key=lambda test: test != res.primary_test)


def strategies_context(res: StudyResults) -> dict[str, Any] | None:
    """The "Pre-training strategies" section, or None when the study has no arm beyond the detector-only ones."""
    if not strategies.present(res):
        return None
    return {"table": strategies.strategies(res), "fairness": strategies.fairness(res),
            "figure": figures.strategies_figure(res),
            "cross_lifter": [(test, strategies.cross_lifter(res, test)) for test in _primary_first(res)],
            "apt_sentence": strategies.apt_sentence(res),
            "lifter_runs": strategies.lifter_runs(res), "primary_test": res.primary_test}


def build_figures(res: StudyResults, data: Path) -> dict[str, figures.Figure | None]:
    """Every figure of the page (None where the results do not allow it)."""
    return {
        "answer": figures.answer_figure(res), "size": figures.size_figure(res),
        "compute": figures.compute_figure(res),
        "matrix": figures.matrix_figure(res), "per_joint": figures.per_joint_figure(res),
        "per_action": figures.per_action_figure(res), "examples": examples_figure(res, data),
    }


def render(context: dict[str, Any]) -> str:
    """The page: the package's template rendered with autoescaping (config text cannot inject markup)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("pose_study.report", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=False, lstrip_blocks=False)
    env.filters["break_after_slashes"] = break_after_slashes
    return env.get_template(TEMPLATE).render(**context)


def break_after_slashes(text: str) -> Markup:
    """``text`` escaped, with a line-break opportunity (``<wbr>``) after each ``/``: long names such as
    ``transformer_tiny/scratch`` then wrap in a narrow table header instead of widening the table."""
    return Markup.escape(text).replace("/", Markup("/<wbr>"))


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="study config: YAML/JSON file or inline JSON")
    parser.add_argument("--tables", type=Path, required=True, help="folder of the collected CSV tables")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--data", type=Path,
                       help="folder of the canonical splits ({dataset}/{split}.h5), for the example images")
    where.add_argument("--results", type=Path, help="the study's results folder: same as --data RESULTS/data")
    parser.add_argument("--references", type=Path,
                        help="published reference numbers (reports/reference_results.yaml)")
    parser.add_argument("--out", type=Path, required=True, help="the HTML page to write")


def main(args: argparse.Namespace) -> None:
    data = args.data if args.data is not None else args.results / "data"
    run(load_config_arg(args.config), ReportPaths(args.tables, data, args.references, args.out))
