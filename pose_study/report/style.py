"""Presentation conventions of the report: one colour per arm, metric names/units, number formats.

Colours are the Okabe–Ito palette (safe for the common colour-vision deficiencies): orange for the
baseline arm (``arms.BASELINE``), blue for ``pretrained_2d``, then one per other arm of
``pose_study.arms.ARMS`` (the yellow, hard to see on white, replaced by Paul Tol's wine); an arm keeps
its colour in every figure. Labels and sentence nouns come from the same table. Metrics are stored as the evaluate
stage writes them (fractions for PCK-type metrics) and shown in the units below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pose_study.arms import ARMS, BASELINE

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
WINE = "#882255"  # Paul Tol's, in place of Okabe–Ito's yellow
# the baseline orange and pretrained_2d blue, as in every earlier report; fusion_scratch wine; the lifter
# arms in ARMS order (black last: it is hard to see on the example images)
ARM_COLOURS = {"3d_only": OKABE_ITO[1], "fusion_scratch": WINE, "pretrained_2d": OKABE_ITO[0], "ft_2d": OKABE_ITO[2],
               "l2d_single": OKABE_ITO[3], "l2d_multi": OKABE_ITO[4], "apt_pose": OKABE_ITO[5], "mpt": OKABE_ITO[7]}
assert set(ARM_COLOURS) == set(ARMS) and ARM_COLOURS[BASELINE] == OKABE_ITO[1], "every arm needs a colour"
ARM_LABELS = {name: arm.label for name, arm in ARMS.items()}
ARM_NOUNS = {name: arm.noun for name, arm in ARMS.items()}  # for sentences
BASELINE_COLOUR = "#8C8C8C"  # reference lines (mean training pose), not an arm
TRUTH_COLOUR = "#FFFFFF"
SYNTHETIC_LABEL = "synthetic world"


@dataclass(frozen=True)
class MetricStyle:
    """How a metric is shown.

    Attributes:
        name: Display name (protocol named).
        unit: Display unit.
        scale: Factor from the stored value to the display unit (100 for fractions shown in %).
        decimals: Decimals shown.
        lower_is_better: Direction of improvement.
    """

    name: str
    unit: str
    scale: float = 1.0
    decimals: int = 1
    lower_is_better: bool = True

    @property
    def label(self) -> str:
        return f"{self.name} ({self.unit})"

    @property
    def display_range(self) -> tuple[float, float]:
        """Values a display can take (every metric here is ≥ 0; percentages ≤ 100)."""
        return (0.0, 100.0) if self.unit == "%" else (0.0, float("inf"))


METRICS = {
    "mpjpe": MetricStyle("MPJPE", "mm"),
    "p_mpjpe": MetricStyle("P-MPJPE", "mm"),
    "n_mpjpe": MetricStyle("n-MPJPE (seed protocol)", "mm"),
    "pck3d": MetricStyle("3DPCK@150 mm", "%", 100.0, 1, False),
    "auc": MetricStyle("3DPCK AUC 0–150 mm", "%", 100.0, 1, False),
    "pckh": MetricStyle("PCKh@0.5", "%", 100.0, 1, False),
    "pck": MetricStyle("PCK@0.2 (torso)", "%", 100.0, 1, False),
    "error_2d_px": MetricStyle("2D joint error", "px", 1.0, 2),
    "mpjpe_mm": MetricStyle("validation MPJPE", "mm"),
}


def metric_style(metric: str) -> MetricStyle:
    """The style of ``metric``; unknown metrics are shown as stored."""
    return METRICS.get(metric, MetricStyle(metric, "as stored", 1.0, 3))


def arm_colours(arms: list[str]) -> dict[str, str]:
    """Colour of every arm: fixed ones for known arms, then the unused palette colours in order."""
    spare = [c for c in (*OKABE_ITO, WINE) if c not in ARM_COLOURS.values() and c != OKABE_ITO[6]]  # no yellow
    out = {}
    for arm in arms:
        if arm in ARM_COLOURS:
            out[arm] = ARM_COLOURS[arm]
        else:
            out[arm] = spare.pop(0) if spare else BASELINE_COLOUR
    return out


def arm_label(arm: str) -> str:
    """Short label of an arm for tables and legends."""
    return ARM_LABELS.get(arm, arm)


def arm_noun(arm: str) -> str:
    """An arm as a noun phrase for sentences ("2D pre-training")."""
    return ARM_NOUNS.get(arm, f"arm {arm}")


def significant_decimals(value: float, digits: int = 3) -> int:
    """Decimals that show ``value`` with ``digits`` significant digits (at least 0)."""
    if not math.isfinite(value) or value == 0:
        return digits - 1
    return max(0, digits - 1 - math.floor(math.log10(abs(value))))


SI_PREFIXES = ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def si(value: float) -> str:
    """A count with an SI prefix and three significant digits (``2.61 G``, ``54.2 k``); ``—`` for NaN."""
    if value is None or not math.isfinite(value):
        return "—"
    scale, prefix = next(((s, p) for s, p in SI_PREFIXES if abs(value) >= s), (1.0, ""))
    shown = value / scale
    return f"{fmt(shown, max(0, 2 - math.floor(math.log10(abs(shown)))) if shown else 0)} {prefix}".rstrip()


def fmt(value: float, decimals: int) -> str:
    """A number with fixed decimals; ``—`` for NaN/None; a true minus sign."""
    if value is None or not math.isfinite(value):
        return "—"
    text = f"{value:.{decimals}f}"
    if text.startswith("-") and float(text) == 0:
        text = text[1:]
    return text.replace("-", "−")
