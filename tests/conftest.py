"""Shared fixtures: a tiny synthetic world in the canonical format, made once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pose_study import _spec
from pose_study.data.synthetic.worlds import SynthesizeSpec
from pose_study.stages import synthesize

torch.set_num_threads(1)  # two cores shared by pytest and the subprocesses it starts


@pytest.fixture(autouse=True)
def _no_recorded_threads(monkeypatch):
    """The thread count of a spec.json one test reads (``--spec``) must not set the next test's."""
    monkeypatch.setattr(_spec, "_recorded_threads", None)


WORLD = {  # dataset -> (world, {split: samples})
    "wild": ("wild", {"train": 384, "val": 96}),
    "lab": ("lab", {"train": 384, "val": 96, "test": 96}),
}


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> dict[str, Path]:
    """``{"wild_train": path, "wild_val": ..., "lab_train": ..., "lab_val": ..., "lab_test": ...}``."""
    root = tmp_path_factory.mktemp("world")
    paths = {}
    for seed, (name, (world, splits)) in enumerate(WORLD.items()):
        for split, n in splits.items():
            spec = SynthesizeSpec(world=world, split=split, num_samples=n, crop_size=64,
                                  seed=100 * seed + len(paths), dataset=name)
            paths[f"{name}_{split}"] = root / f"{name}_{split}.h5"
            synthesize.run(spec, paths[f"{name}_{split}"])
    return paths
