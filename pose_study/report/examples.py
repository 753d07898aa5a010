"""Example test images with the predicted and the true 2D skeleton drawn on them.

The evaluate stage keeps the best and worst samples of every run (``examples.csv``: sample index
and 2D joints in crop pixels). For the largest model, first finished seed, every arm, the best and
the worst sample of the primary 3D test set and of the first 2D test set are drawn (up to
``MAX_EXAMPLES``). Only those images are read from the test split's canonical HDF5 file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D

from pose_study.data.formats import ENCODINGS, FormatError, decode_jpeg, read_info
from pose_study.report.figures import Figure, encode, new_figure
from pose_study.report.results import StudyResults
from pose_study.report.style import TRUTH_COLOUR, arm_colours, arm_label, fmt, metric_style
from pose_study.skeletons import CANONICAL

MAX_EXAMPLES = 12
COLUMNS = 4


@dataclass(frozen=True)
class Example:
    """One sample to draw: where it comes from and its joints ([K, 2] crop pixels, [K] valid)."""

    arm: str
    model: str
    seed: int
    testset: str
    test_dataset: str
    test_split: str
    case: str
    metric: str
    index: int
    value: float
    pred: np.ndarray
    gt: np.ndarray
    valid: np.ndarray


def select_examples(res: StudyResults) -> list[Example]:
    """Best and worst sample per arm and test set, for the largest model (first finished seed)."""
    params = res.params()
    e = res.examples
    d2, d3 = res.training_sets
    e = e[(e["stage"] == "finetune_3d") & (e["dataset_2d"] == d2) & (e["dataset_3d"] == d3)
          & (e["rank"] == 0)]
    if e.empty or not params:
        return []
    model = max((m for m in res.models if m in params), key=params.get)
    tests = [t for t in [res.primary_test, *res.tests_2d[:1]] if t]
    chosen = []
    for test in tests:
        for arm in res.arms:
            part = e[(e["model"] == model) & (e["arm"] == arm) & (e["testset"] == test)]
            if part.empty:
                continue
            first = part[part["seed"] == part["seed"].min()]
            metric = res.primary_metric(test) or "value"
            chosen += [_example(first[first["case"] == case], metric) for case in ("best", "worst")
                       if not first[first["case"] == case].empty]
    return chosen[:MAX_EXAMPLES]


def _example(rows: pd.DataFrame, metric: str) -> Example:
    rows = rows.set_index("joint").reindex(list(CANONICAL.joints))
    first = rows.dropna(subset=["run"]).iloc[0]
    pred, gt = (rows[[f"{k}_x", f"{k}_y"]].to_numpy(np.float64) for k in ("pred", "gt"))
    return Example(str(first["arm"]), str(first["model"]), int(first["seed"]), str(first["testset"]),
                   str(first["test_dataset"]), str(first["test_split"]), str(first["case"]), metric,
                   int(first["index"]), float(first["value"]), pred, gt,
                   rows["valid"].fillna(False).astype(bool).to_numpy())


def read_images(path: Path, indices: list[int]) -> dict[int, np.ndarray] | None:
    """The [S, S, 3] uint8 images at ``indices`` of a canonical split, or None if the file is absent."""
    if not path.is_file():
        return None
    read_info(path)  # validates the format version and attributes, naming the file on error
    with h5py.File(path, "r") as h5:
        encoding = str(h5.attrs.get("image_encoding", "raw"))
        if encoding not in ENCODINGS:
            raise FormatError(f"{path}: attribute 'image_encoding' is {encoding!r}, "
                              f"expected one of {ENCODINGS}")
        images = h5["images"]
        if max(indices, default=-1) >= len(images):
            raise ValueError(f"{path}: example index {max(indices)} is outside 'images' "
                             f"({len(images)} entries)")
        return {i: images[i] if encoding == "raw" else decode_jpeg(images[i]) for i in sorted(set(indices))}


def examples_figure(res: StudyResults, data: Path) -> Figure | None:
    """A grid of example images with the true (white) and predicted (arm colour) skeletons."""
    chosen = select_examples(res)
    if not chosen:
        return None
    images = _load(chosen, data)
    rows = math.ceil(len(chosen) / COLUMNS)
    fig, axes = new_figure(2.6 * COLUMNS, 2.9 * rows + 0.4, rows, COLUMNS, layout=None)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.93, bottom=0.08, wspace=0.05, hspace=0.25)
    colours = arm_colours(res.arms)
    for ax, example in zip(axes.flat, chosen):
        image = images.get((example.test_dataset, example.test_split), {})
        _draw(ax, image.get(example.index) if image else None, example, colours[example.arm])
    for ax in list(axes.flat)[len(chosen):]:
        ax.set_axis_off()
    handles = [Line2D([], [], color=TRUTH_COLOUR, marker="o", markeredgecolor="black",
                      label="true 2D joints")]
    handles += [Line2D([], [], color=colours[a], linewidth=2.5, label=f"predicted: {arm_label(a)}")
                for a in res.arms]
    fig.legend(handles=handles, loc="lower center", ncols=len(handles), fontsize="small", facecolor="#BBBBBB")
    alt = (f"{len(chosen)} test images with predicted and true skeletons: the best and the worst sample "
           "of each arm.")
    return Figure("examples", encode(fig), alt)


def _load(chosen: list[Example], data: Path) -> dict[tuple[str, str], dict[int, np.ndarray] | None]:
    wanted: dict[tuple[str, str], list[int]] = {}
    for e in chosen:
        wanted.setdefault((e.test_dataset, e.test_split), []).append(e.index)
    return {key: read_images(data / key[0] / f"{key[1]}.h5", idx) for key, idx in wanted.items()}


def _draw(ax: Axes, image: np.ndarray | None, e: Example, colour: str) -> None:
    if image is None:
        size = float(np.nanmax(np.abs(e.gt))) + 8 if np.isfinite(e.gt).any() else 64
        image = np.full((int(size), int(size), 3), 200, np.uint8)
        ax.text(0.5, 0.02, "image file not found", transform=ax.transAxes, ha="center", fontsize="x-small")
    ax.imshow(image, interpolation="nearest")
    _skeleton(ax, e.gt, e.valid, TRUTH_COLOUR, 1.5, outline=True)
    _skeleton(ax, e.pred, e.valid, colour, 2.0, outline=False)
    # joints predicted off the crop are clipped, so every panel shows exactly its image
    ax.set(xlim=(-0.5, image.shape[1] - 0.5), ylim=(image.shape[0] - 0.5, -0.5))
    style = metric_style(e.metric)
    value = fmt(e.value * style.scale, style.decimals)
    ax.set_title(f"{arm_label(e.arm)} · {e.case}\n{e.testset} #{e.index}: {value} {style.unit}",
                 fontsize="small")
    ax.set_axis_off()


def _skeleton(ax: Axes, joints: np.ndarray, valid: np.ndarray, colour: str, width: float,
              outline: bool) -> None:
    """Bones between valid joints (one line collection), optionally outlined in black, and the joints."""
    bones = [joints[[child, parent]] for child, parent in CANONICAL.bones if valid[child] and valid[parent]]
    if outline:
        ax.add_collection(LineCollection(bones, colors="black", linewidths=width + 1.5, capstyle="round"))
    ax.add_collection(LineCollection(bones, colors=colour, linewidths=width, capstyle="round"))
    shown = joints[valid]
    ax.scatter(shown[:, 0], shown[:, 1], s=8, color=colour, edgecolors="black" if outline else "none",
               linewidths=0.5, zorder=3)
