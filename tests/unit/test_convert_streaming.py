"""Converters write in parts: the same file as one write, and no file (nor temporary) after a failure."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from pose_study.data import convert
from pose_study.data.convert import lsp
from tests.fixtures.official import convert_fixture, write_lspet


@pytest.mark.parametrize("encoding", ["raw", "jpeg"])
def test_streamed_conversion_equals_one_write(tmp_path, monkeypatch, encoding):
    fx = write_lspet(tmp_path / "lspet")
    _, whole = convert_fixture("lspet", fx["root"], "train", tmp_path / "a", image_encoding=encoding)
    monkeypatch.setattr(convert, "FLUSH_EVERY", 2)  # 5 samples: parts of 2, 2 and 1
    report, parts = convert_fixture("lspet", fx["root"], "train", tmp_path / "b", image_encoding=encoding)
    assert report.written == len(parts) == len(whole) == 5
    for name in ("images", "joints_2d", "joints_2d_valid", "center", "scale", "clip", "frame"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(parts, name), err_msg=name)


def test_a_conversion_that_fails_midway_leaves_nothing(tmp_path, monkeypatch):
    fx = write_lspet(tmp_path / "lspet")
    monkeypatch.setattr(convert, "FLUSH_EVERY", 2)
    real_add, calls = lsp.SampleBuffer.add, []

    def failing_add(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # after one part (2 samples) reached the temporary file
            raise RuntimeError("disk full")
        return real_add(self, *args, **kwargs)

    monkeypatch.setattr(lsp.SampleBuffer, "add", failing_add)
    out_dir = tmp_path / "out"
    with pytest.raises(RuntimeError, match="disk full"):
        convert_fixture("lspet", fx["root"], "train", out_dir)
    gc.collect()  # the traceback held the buffer; once it is gone, so is the temporary file
    assert not out_dir.exists() or list(out_dir.iterdir()) == []
