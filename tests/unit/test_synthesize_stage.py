"""The ``synthesize`` stage: run(), spec.json, and the command line (help, errors, a real run)."""

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

from pose_study._spec import load_spec_arg
from pose_study.data.formats import FORMAT_VERSION, read_split
from pose_study.data.synthetic.worlds import SynthesizeSpec
from pose_study.stages import synthesize

OPTIONS = ("--spec", "--world", "--split", "--num-samples", "--crop-size", "--seed", "--joint-set",
           "--dataset", "--clip-length", "--chunk-size", "--image-encoding", "--out")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pose_study", "synthesize", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def help_text() -> str:
    out = cli("--help")
    assert out.returncode == 0, out.stderr
    return " ".join(out.stdout.split())


@pytest.mark.parametrize("option", OPTIONS)
def test_help_documents_every_option(help_text, option):
    assert f"{option} " in help_text
    assert "spec.json" in help_text and f"format version {FORMAT_VERSION}" in help_text


def test_run_writes_a_readable_split_and_its_spec(tmp_path):
    spec = SynthesizeSpec(world="outdoor", split="test", num_samples=11, chunk_size=4, clip_length=3)
    out = tmp_path / "data" / "synth_outdoor" / "test.h5"
    synthesize.run(spec, out)
    split = read_split(out)
    assert split.info.source == "synthetic" and split.info.dataset == "synth_outdoor"
    assert split.info.skeleton == "h36m17" and len(split) == 11 and split.has_3d
    assert list(split.frame) == [0, 1, 2] * 3 + [0, 1]
    record = json.loads((tmp_path / "data" / "synth_outdoor" / "test.spec.json").read_text())
    assert record["world"] == "outdoor" and "_provenance" in record
    assert load_spec_arg(SynthesizeSpec, str(synthesize.spec_json_path(out))) == spec


def test_rerun_from_spec_json_rebuilds_identical_data(tmp_path):
    spec = SynthesizeSpec(world="wild", split="val", num_samples=6, joint_set="flic11", image_encoding="jpeg")
    synthesize.run(spec, tmp_path / "a.h5")
    again = load_spec_arg(SynthesizeSpec, str(tmp_path / "a.spec.json"))
    synthesize.run(again, tmp_path / "b.h5")
    a, b = read_split(tmp_path / "a.h5"), read_split(tmp_path / "b.h5")
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.joints_2d, b.joints_2d)
    assert a.info.skeleton == "flic11" and a.head_box is None and not a.has_3d


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    synthesize.configure(parser)
    return parser.parse_args(argv)


def test_options_override_spec_keys():
    spec = synthesize.spec_from_args(_args("--spec", '{"world": "lab", "split": "train", "num_samples": 5}',
                                           "--seed", "3", "--out", "x.h5"))
    assert spec == SynthesizeSpec(world="lab", split="train", num_samples=5, seed=3)
    wild = synthesize.spec_from_args(_args("--spec", '{"world": "lab", "split": "train", "num_samples": 5}',
                                           "--world", "wild", "--out", "x.h5"))
    assert wild.joint_set == "mpii16" and wild.dataset == "synth_wild_mpii16"


@pytest.mark.parametrize("argv,message", [
    (("--world", "moon", "--split", "train", "--num-samples", "4"), "--world"),
    (("--world", "lab", "--split", "train", "--num-samples", "4", "--crop-size", "20"), "crop_size"),
    (("--world", "lab", "--split", "train", "--num-samples", "4", "--joint-set", "lsp14"), "joint_set"),
    (("--world", "lab", "--split", "train"), "--num-samples"),
    (("--spec", '{"world": "lab", "split": "train", "num_samples": 4, "colour": 1}'), "colour"),
], ids=["bad-world", "bad-crop-size", "wrong-joint-set", "missing-num-samples", "unknown-spec-key"])
def test_bad_option_exits_non_zero_naming_it(tmp_path, argv, message):
    out = cli(*argv, "--out", str(tmp_path / "x.h5"))
    assert out.returncode != 0 and message in out.stderr
    assert not (tmp_path / "x.h5").exists()


def test_cli_run_writes_a_synthetic_file(tmp_path):
    out = cli("--world", "wild", "--split", "train", "--num-samples", "5", "--joint-set", "mpii16",
              "--out", str(tmp_path / "w" / "train.h5"))
    assert out.returncode == 0, out.stderr
    split = read_split(tmp_path / "w" / "train.h5")
    assert split.info.source == "synthetic" and split.head_box is not None
    assert split.images.shape == (5, 64, 64, 3)
    assert (tmp_path / "w" / "train.spec.json").is_file()
