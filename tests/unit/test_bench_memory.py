"""bench-memory: repeated splits have the asked size; one small run reports RSS and both rates."""

from __future__ import annotations

import numpy as np
import pytest

from pose_study.benchmarks import memory
from pose_study.data.formats import read_split


def test_a_split_of_repeated_renders_has_the_asked_size(tmp_path):
    path = memory.make_split(tmp_path / "s.h5", 23, 64, "jpeg", base=10)
    split = read_split(path)
    assert len(split) == 23
    np.testing.assert_array_equal(split.joints_2d[:10], split.joints_2d[10:20])
    np.testing.assert_array_equal(split.joints_2d[:3], split.joints_2d[20:])


@pytest.mark.slow
def test_a_small_run_reports_memory_and_throughput(tmp_path):
    spec = memory.MemorySpec(sizes=(40, 80), encodings=("jpeg",), crop_size=64, base=40, steps=1, data_steps=2,
                             rounds=1)
    result = memory.run(spec, tmp_path)
    assert [r["size"] for r in result["rows"]] == [40, 80] and all(r["streamed"] for r in result["rows"])
    assert all(r["peak_rss_mb"] > 50 and r["data_ratio"] > 0 for r in result["rows"])
    assert "jpeg" in result["growth"] and "peak RSS" in memory.format_table(result)
