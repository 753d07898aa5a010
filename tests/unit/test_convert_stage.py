"""The convert stage: spec validation, sidecar files, image policy, CLI entry."""

import argparse
import json

import numpy as np
import pytest

from pose_study._spec import load_spec_arg
from pose_study.data.formats import read_info
from pose_study.stages import convert as stage
from pose_study.stages.convert import ConvertSpec
from tests.fixtures.official import convert_fixture, write_lspet, write_mpii_json


@pytest.mark.parametrize("kwargs,match", [
    ({"dataset": "coco"}, "unknown dataset 'coco'"),
    ({"split": "test"}, r"unknown split 'test'; choices: \['train', 'valid'\]"),
    ({"crop_size": 0}, "crop_size"),
    ({"every_nth": 0}, "every_nth"),
    ({"image_encoding": "png"}, "image_encoding"),
    ({"annotation_format": "xml"}, "annotation_format"),
])
def test_spec_rejects_bad_values(kwargs, match):
    base = {"dataset": "mpii", "root": "r", "split": "valid", **kwargs}
    with pytest.raises(ValueError, match=match):
        ConvertSpec(**base)


def test_run_writes_split_spec_and_report(tmp_path):
    fx = write_lspet(tmp_path / "lspet")
    spec = ConvertSpec(dataset="lspet", root=str(fx["root"]), split="train", crop_size=24, image_encoding="jpeg")
    out = tmp_path / "out" / "train.h5"
    report = stage.run(spec, out)
    info = read_info(out)
    assert (info.dataset, info.split, info.source, info.skeleton) == ("lspet", "train", "real", "lsp14")
    assert info.converter.startswith("pose_study.data.convert.lsp ")
    assert load_spec_arg(ConvertSpec, str(out.with_name("train.spec.json"))) == spec
    assert json.loads(out.with_name("train.report.json").read_text()) == report.to_dict()


def test_cli_main(tmp_path):
    fx = write_lspet(tmp_path / "lspet")
    parser = argparse.ArgumentParser()
    stage.configure(parser)
    out = tmp_path / "x.h5"
    spec = json.dumps({"dataset": "lspet", "root": str(fx["root"]), "split": "train", "crop_size": 16})
    stage.main(parser.parse_args(["--spec", spec, "--out", str(out)]))
    assert read_info(out).dataset == "lspet"


def test_corrupt_image_is_an_error_by_default_and_a_counted_skip_on_request(tmp_path):
    fx = write_mpii_json(tmp_path / "mpii")
    (fx["root"] / "images" / "000000002.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ValueError, match=r"000000002\.jpg: image is corrupt"):
        convert_fixture("mpii", fx["root"], "train", tmp_path)
    assert not (tmp_path / "mpii_train.h5").exists()
    report, split = convert_fixture("mpii", fx["root"], "train", tmp_path, skip_bad_images=True)
    assert report.read == 3 and report.written == 2 and dict(report.skipped) == {"image corrupt": 1}
    assert list(split.clip) == ["000000001.jpg", "000000001.jpg"]


def test_missing_image_policy(tmp_path):
    fx = write_mpii_json(tmp_path / "mpii")
    (fx["root"] / "images" / "000000001.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"000000001\.jpg: image not found"):
        convert_fixture("mpii", fx["root"], "train", tmp_path)
    report, _ = convert_fixture("mpii", fx["root"], "train", tmp_path, skip_bad_images=True)
    assert dict(report.skipped) == {"image missing": 2} and report.written == 1


def test_nothing_written_is_an_error(tmp_path):
    fx = write_mpii_json(tmp_path / "mpii")
    for image in (fx["root"] / "images").iterdir():
        image.unlink()
    with pytest.raises(ValueError, match="no samples to write"):
        convert_fixture("mpii", fx["root"], "train", tmp_path, skip_bad_images=True)


def test_missing_root_says_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `python -m pose_study download`"):
        stage.run(ConvertSpec(dataset="lsp", root=str(tmp_path / "nope"), split="train"), tmp_path / "o.h5")


def test_jpeg_and_raw_crops_agree(tmp_path):
    fx = write_lspet(tmp_path / "lspet")
    _, raw = convert_fixture("lspet", fx["root"], "train", tmp_path / "a", image_encoding="raw")
    _, jpeg = convert_fixture("lspet", fx["root"], "train", tmp_path / "b", image_encoding="jpeg")
    assert raw.images.shape == jpeg.images.shape == (5, 32, 32, 3)
    assert np.abs(raw.images.astype(int) - jpeg.images.astype(int)).mean() < 4
