"""Streamed splits give exactly the batches held splits give; chunked writes give the file one write gives."""

from __future__ import annotations

import io

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from pose_study.data.batches import SplitTensors, StreamedSplit, decoded_image_bytes
from pose_study.data.formats import (FormatError, SplitWriter, decode_jpeg, encode_jpeg, read_split,
                                     write_split)
from pose_study.data.synthetic import split as synthetic_split
from pose_study.data.synthetic.worlds import SynthesizeSpec
from pose_study.train.detection import DetectorTask, TrainData, draw_batch
from pose_study.train.loop import LoopSpec, Phase

CPU = torch.device("cpu")
FIELDS = ("images", "joints_2d", "valid_2d", "joints_3d", "valid_3d", "intrinsics", "is_3d")


@pytest.fixture(scope="module")
def jpeg_lab(tmp_path_factory):
    path = tmp_path_factory.mktemp("jpeg") / "lab_jpeg.h5"
    synthetic_split.write(SynthesizeSpec(world="lab", split="val", num_samples=40, crop_size=64, seed=3,
                                         chunk_size=16, image_encoding="jpeg"), path)
    return path


def _same(a, b) -> None:
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and torch.equal(x, y), name


@pytest.mark.parametrize("name", ["lab_val", "wild_val", "jpeg"])
def test_streamed_gather_equals_held_gather(tiny_world, jpeg_lab, name):
    path = jpeg_lab if name == "jpeg" else tiny_world[name]
    held = SplitTensors.load(path, CPU)
    streamed = SplitTensors.load(path, CPU, memory_budget_mb=0)
    assert isinstance(held, SplitTensors) and isinstance(streamed, StreamedSplit)
    assert (len(streamed), streamed.has_3d, streamed.crop_size, streamed.info) == \
        (len(held), held.has_3d, held.crop_size, held.info)
    index = torch.tensor([5, 0, 5, len(held) - 1, 17, 2])  # unsorted, repeated, both ends
    _same(held.gather(index), streamed.gather(index))


def test_the_loop_draws_the_same_batches_from_either_kind(tiny_world):
    loop = LoopSpec(batch_size=8, seed=1, device="cpu")

    def draws(budget):
        data = TrainData(val=SplitTensors.load(tiny_world["lab_val"], CPU, memory_budget_mb=budget),
                         train_2d=SplitTensors.load(tiny_world["wild_train"], CPU, memory_budget_mb=budget),
                         train_3d=SplitTensors.load(tiny_world["lab_train"], CPU, memory_budget_mb=budget))
        generator = torch.Generator().manual_seed(4)
        return [draw_batch(data, loop, 0.5, generator) for _ in range(3)]

    for held, streamed in zip(draws(None), draws(0)):
        _same(held, streamed)


def test_the_budget_decides_between_holding_and_streaming(tiny_world):
    path = tiny_world["wild_val"]
    need_mb = decoded_image_bytes(path) / 2**20
    assert decoded_image_bytes(path) == 96 * 64 * 64 * 3
    assert isinstance(SplitTensors.load(path, CPU, memory_budget_mb=need_mb), SplitTensors)
    assert isinstance(SplitTensors.load(path, CPU, memory_budget_mb=need_mb * 0.99), StreamedSplit)
    with pytest.raises(ValueError, match="memory_budget_mb"):
        SplitTensors.load(path, CPU, memory_budget_mb=-1)


def test_a_streamed_split_rejects_indices_outside_it(tiny_world):
    streamed = StreamedSplit(tiny_world["wild_val"], CPU, threads=1)
    with pytest.raises(IndexError, match="wild_val.h5"):
        streamed.gather(torch.tensor([0, 96]))
    streamed.close()


@pytest.mark.parametrize("size", [31, 64, 128])
def test_jpeg_crops_decode_to_the_pixels_pil_gives(size):
    rng = np.random.default_rng(size)
    smooth = np.cumsum(rng.integers(-3, 4, (size, size, 3)), axis=1)
    image = np.clip(smooth + 128, 0, 255).astype(np.uint8)
    blob = np.frombuffer(encode_jpeg(image), np.uint8)
    with Image.open(io.BytesIO(blob.tobytes())) as img:
        expected = np.asarray(img.convert("RGB"))
    assert np.array_equal(decode_jpeg(blob), expected)
    assert np.abs(expected.astype(int) - image).mean() < 8  # a real decode of this image


@pytest.mark.parametrize("threads", [1, 3])
def test_jpeg_decoding_threads_do_not_change_the_batch(jpeg_lab, threads):
    held = SplitTensors.load(jpeg_lab, CPU)
    streamed = StreamedSplit(jpeg_lab, CPU, threads=threads)
    index = torch.tensor([39, 3, 3, 0, 21, 8, 30, 12])
    _same(held.gather(index), streamed.gather(index))
    streamed.close()


def test_a_jpeg_crop_of_another_size_than_the_file_says_is_named(jpeg_lab, tmp_path):
    path = tmp_path / "wrong_size.h5"
    path.write_bytes(jpeg_lab.read_bytes())
    with h5py.File(path, "r+") as h5:
        h5.attrs["crop_size"] = 32  # the crops are 64 px
    streamed = StreamedSplit(path, CPU, threads=1)
    with pytest.raises(FormatError, match=r"wrong_size.h5: a JPEG crop decodes to 64x64 px, expected 32x32"):
        streamed.gather(torch.tensor([1]))
    streamed.close()


@pytest.mark.parametrize("encoding", ["raw", "jpeg"])
def test_chunked_writes_equal_one_write(tiny_world, tmp_path, encoding):
    split = read_split(tiny_world["lab_val"])
    write_split(tmp_path / "one.h5", split, encoding)
    with SplitWriter(tmp_path / "parts.h5", split.info, encoding) as writer:
        for start, stop in ((0, 10), (10, 10), (10, 50), (50, 96)):  # an empty part too
            writer.append(split.select(slice(start, stop)))
    one, parts = read_split(tmp_path / "one.h5"), read_split(tmp_path / "parts.h5")
    assert writer.count == len(split) == len(parts)
    for name in ("images", "joints_2d", "joints_3d", "intrinsics", "center", "frame", "subject", "clip"):
        np.testing.assert_array_equal(getattr(one, name), getattr(parts, name), err_msg=name)
    with h5py.File(tmp_path / "parts.h5") as h5:
        assert h5.attrs["crop_size"] == 64 and h5.attrs["image_encoding"] == encoding


def test_a_failed_write_leaves_no_file(tiny_world, tmp_path):
    split = read_split(tiny_world["lab_val"])
    target = tmp_path / "out.h5"
    with pytest.raises(FormatError, match=r"fields .* differ"):
        with SplitWriter(target, split.info) as writer:
            writer.append(split.select(slice(0, 10)))
            assert not target.exists()  # only complete files appear
            writer.append(read_split(tiny_world["wild_val"]).select(slice(0, 10)))  # no 3D fields
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(FormatError, match="nothing was written"):
        with SplitWriter(target, split.info):
            pass
    assert not target.exists()


def test_synthesize_output_does_not_depend_on_the_chunk_size(tmp_path):
    spec = SynthesizeSpec(world="wild", split="train", num_samples=20, crop_size=64, seed=2, chunk_size=7)
    synthetic_split.write(spec, tmp_path / "a.h5")
    synthetic_split.write(SynthesizeSpec(**{**spec.__dict__, "chunk_size": 20}), tmp_path / "b.h5")
    a, b = read_split(tmp_path / "a.h5"), read_split(tmp_path / "b.h5")
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.joints_2d, b.joints_2d)


def test_training_on_a_streamed_split_gives_the_weights_training_on_a_held_one_gives(tiny_world, tmp_path):
    from pose_study import models
    from pose_study.train.loop import train

    loop = LoopSpec(batch_size=4, seed=3, device="cpu", eval_every=1000, checkpoint_every=1000, log_every=1000,
                    eval_samples=4)
    weights = []
    for budget in (None, 0):
        torch.manual_seed(0)
        model = models.build_model("hg1_tiny")
        data = TrainData(val=SplitTensors.load(tiny_world["wild_val"], CPU, memory_budget_mb=budget),
                         train_2d=SplitTensors.load(tiny_world["wild_train"], CPU, memory_budget_mb=budget))
        train(model, [Phase("p", 3, DetectorTask(data, loop), loop.schedule(1e-3))], loop, tmp_path / f"ckpt{budget}",
              flops_per_sample=1)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.manual_seed(0)
    init = torch.cat([p.detach().flatten() for p in models.build_model("hg1_tiny").parameters()])
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], init)
