"""The report's figures: legends outside every data area, one legend per figure, light bands.

Every figure of the fixture studies is captured just before it is saved (``encode`` is replaced by
a recorder) and its artists are laid out (``draw_without_rendering``), so the extents checked here
are those of the saved PNG.
"""

from __future__ import annotations

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure as MplFigure
from matplotlib.transforms import Bbox

from pose_study.arms import ARMS
from pose_study.plan import BASELINE_ARM
from pose_study.report import examples, figures
from pose_study.report.results import StudyResults
from pose_study.report.style import OKABE_ITO, WINE, arm_colours, arm_label
from tests.fixtures.results_tree import shared_lifter_study, shared_study

BUILDERS = ("answer_figure", "size_figure", "compute_figure", "strategies_figure", "matrix_figure",
            "per_joint_figure", "per_action_figure")


def drawn_figures(tree) -> dict[str, MplFigure]:
    """Every figure of a study, as matplotlib figures drawn on an Agg canvas as ``encode`` would save them."""
    captured: list[MplFigure] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(figures, "encode", lambda fig: captured.append(fig) or "")
        patch.setattr(examples, "encode", lambda fig: captured.append(fig) or "")
        res = StudyResults.load(tree.config, tree.tables)
        out = {}
        for name in BUILDERS:
            if getattr(figures, name)(res) is not None:
                out[name] = captured[-1]
        if examples.examples_figure(res, tree.data) is not None:
            out["examples_figure"] = captured[-1]
    for fig in out.values():
        FigureCanvasAgg(fig).draw()
    return out


def overlap_area(a: Bbox, b: Bbox) -> float:
    inter = Bbox.intersection(a, b)
    return 0.0 if inter is None else max(inter.width, 0) * max(inter.height, 0)


@pytest.fixture(scope="module", params=["two_arms", "every_arm"])
def drawn(request) -> dict[str, MplFigure]:
    return drawn_figures(shared_study() if request.param == "two_arms" else shared_lifter_study())


def test_no_legend_overlaps_a_data_area(drawn):
    assert {"answer_figure", "size_figure", "compute_figure", "matrix_figure", "examples_figure"} <= set(drawn)
    for name, fig in drawn.items():
        renderer = fig.canvas.get_renderer()
        legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
        assert len(legends) <= 1, f"{name}: {len(legends)} legends (one shared legend per figure)"
        areas = [ax.get_window_extent(renderer) for ax in fig.axes
                 if ax.get_visible() and (ax.axison or ax.images)]  # example images have no axis lines
        for legend in legends:
            box = legend.get_window_extent(renderer)
            for area in areas:
                assert overlap_area(box, area) == 0.0, f"{name}: legend {box} overlaps an axes' data area {area}"


def test_bands_are_light_and_each_label_appears_once(drawn):
    for name in ("size_figure", "compute_figure"):
        fig = drawn[name]
        bands = [c for ax in fig.axes for c in ax.collections if isinstance(c, PolyCollection)]
        assert bands and all(c.get_alpha() <= 0.15 for c in bands), name
        labels = [t.get_text() for t in fig.legends[0].get_texts()]
        assert len(labels) == len(set(labels)), (name, labels)
    compute = [t.get_text() for t in drawn["compute_figure"].legends[0].get_texts()]
    assert sum("pre-training done" in t for t in compute) <= 1


def test_arm_colours_are_distinct_colour_blind_safe_and_the_same_in_every_figure(drawn):
    colours = arm_colours(list(ARMS))
    assert len(set(colours.values())) == len(colours)
    assert set(colours.values()) <= {*OKABE_ITO, WINE} - {"#F0E442"}  # Okabe–Ito without its yellow, and wine
    used = {}
    for name in ("answer_figure", "size_figure", "compute_figure"):
        for ax in drawn[name].axes:
            for line in ax.get_lines():
                label = line.get_label()
                used.setdefault(label, set()).add(line.get_color())
    for arm in ARMS:
        assert len(used.get(arm_label(arm), set())) <= 1  # one colour per arm label across figures
    assert used[arm_label(BASELINE_ARM)] == {colours[BASELINE_ARM]}
