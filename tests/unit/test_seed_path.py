"""The seed-style data path does the same work as the fast path: same samples, same training result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pose_study import models
from pose_study.benchmarks import seed_path
from pose_study.data.batches import SplitTensors, to_float_images
from pose_study.data.formats import decode_jpeg, read_split
from pose_study.data.synthetic.worlds import SynthesizeSpec
from pose_study.data.transforms import IMAGENET_MEAN, IMAGENET_STD, AugmentSpec, normalise_images
from pose_study.stages import synthesize
from pose_study.train.detection import DetectorTask, TrainData, draw_batch, validate
from pose_study.train.loop import LoopSpec, LRSchedule, Phase, train
from pose_study.train.objective import build_targets

CPU = torch.device("cpu")
BATCH = 16


@pytest.fixture(scope="module")
def jpeg_split(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("jpeg") / "wild_jpeg.h5"
    synthesize.run(SynthesizeSpec(world="wild", split="train", num_samples=48, crop_size=64, seed=7,
                                  image_encoding="jpeg"), path)
    return path


def unnormalise(images: torch.Tensor) -> torch.Tensor:
    """[B, 3, S, S] normalised → [0, 1] RGB."""
    return images * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)


def both_paths(path: Path, seed: int) -> tuple:
    """The fast path's first batch and targets, and the seed-style samples for the same draws."""
    tensors = SplitTensors.load(path, CPU)
    spec = LoopSpec(batch_size=BATCH, seed=seed)
    fast = draw_batch(TrainData(val=tensors, train_2d=tensors), spec, 0.0, torch.Generator().manual_seed(seed))
    targets = build_targets(fast, (tensors.crop_size // 4,) * 2, spec.heatmap_sigma)
    dataset = seed_path.SeedStyleDataset(path)
    planned = seed_path.PlannedBatches(len(dataset), BATCH, 1, spec.augment, seed, dataset.has_3d)
    keys = next(iter(planned))
    return fast, targets, [dataset[key] for key in keys], keys


@pytest.mark.parametrize("split", ["wild_train", "lab_train", "jpeg"])
def test_both_paths_make_the_same_samples(split, tiny_world, jpeg_split):
    path = jpeg_split if split == "jpeg" else tiny_world[split]
    fast, targets, items, keys = both_paths(path, seed=3)
    linear = np.array([k[1] for k in keys]).reshape(-1, 2, 2)
    assert (np.linalg.det(linear) < 0).any() and (np.linalg.det(linear) > 0).any()  # flips and non-flips
    if split != "lab_train":
        assert (np.abs(linear[:, 0, 1]) > 1e-3).any()  # some 2D sample is rotated
    seed_images = unnormalise(torch.stack([it["images"] for it in items]))
    diff = (unnormalise(fast.images) - seed_images).abs()[..., 1:-1, 1:-1]
    assert float(diff.mean()) < 2 / 255 and float(diff.max()) < 4 / 255
    torch.testing.assert_close(torch.stack([it["joints_2d"] for it in items]), fast.joints_2d, atol=1e-3, rtol=0)
    assert torch.equal(torch.stack([it["valid_2d"] for it in items]), fast.valid_2d)
    torch.testing.assert_close(torch.stack([it["heatmaps"] for it in items]), targets.heatmaps, atol=1e-4, rtol=0)


def test_jpeg_split_is_decoded_once_at_load_into_the_same_crops(jpeg_split):
    import h5py

    tensors = SplitTensors.load(jpeg_split, CPU)
    with h5py.File(jpeg_split, "r") as h5:
        first = decode_jpeg(h5["images"][0])
    assert tensors.images.dtype == torch.uint8 and tensors.images.shape[1:] == (64, 64, 3)
    assert np.array_equal(tensors.images[0].numpy(), first)
    assert len(tensors) == len(read_split(jpeg_split, images=False))


def test_fast_normalisation_equals_the_reference():
    images = torch.randint(0, 256, (3, 16, 16, 3), dtype=torch.uint8)
    torch.testing.assert_close(to_float_images(images), normalise_images(images), atol=1e-5, rtol=0)


def test_loader_workers_collate_batches_and_a_seed_step_runs(tiny_world):
    torch.manual_seed(0)
    dataset = seed_path.SeedStyleDataset(tiny_world["wild_train"])
    batches = seed_path.PlannedBatches(len(dataset), 4, 2, AugmentSpec(), seed=0)
    model = models.build_model("hg1_tiny")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for batch in seed_path.seed_loader(dataset, batches, workers=1, device=CPU):
        assert batch["images"].shape == (4, 3, 64, 64) and batch["heatmaps"].shape == (4, 17, 16, 16)
        losses.append(seed_path.seed_train_step(model, optimizer, seed_path.to_device(batch, CPU)))
    assert len(losses) == 2 and all(np.isfinite(losses))


def test_bad_worker_count_is_named(tiny_world):
    dataset = seed_path.SeedStyleDataset(tiny_world["wild_train"])
    with pytest.raises(ValueError, match="workers must be >= 0, got -1"):
        seed_path.seed_loader(dataset, seed_path.PlannedBatches(8, 2, 1, AugmentSpec(), 0), -1, CPU)


# --- equal work gives an equal result ----------------------------------------------------------


def train_both(world: dict, steps: int, tmp_path: Path) -> tuple[float, float, float]:
    """Validation 2D error (px) before training, after ``steps`` of the fast loop, after ``steps``
    seed-style steps — same init, same batches, same augmentations."""
    val = SplitTensors.load(world["wild_val"], CPU)
    train_split = SplitTensors.load(world["wild_train"], CPU)
    spec = LoopSpec(batch_size=BATCH, eval_every=steps, log_every=steps, checkpoint_every=steps, eval_samples=96)
    torch.manual_seed(spec.seed)
    fast = models.build_model("hg1_tiny").to(memory_format=torch.channels_last)
    initial = validate(fast, val, 96, BATCH)[1]
    task = DetectorTask(TrainData(val=val, train_2d=train_split), spec)
    train(fast, [Phase("fast", steps, task, LRSchedule(2e-3))], spec, tmp_path / "ckpt", flops_per_sample=1)
    torch.manual_seed(spec.seed)
    seed_model = models.build_model("hg1_tiny")
    optimizer = torch.optim.Adam(seed_model.parameters(), lr=2e-3)
    dataset = seed_path.SeedStyleDataset(world["wild_train"])
    planned = seed_path.PlannedBatches(len(dataset), BATCH, steps, spec.augment, spec.seed)
    for batch in seed_path.seed_loader(dataset, planned, workers=0, device=CPU):
        seed_path.seed_train_step(seed_model, optimizer, batch)
    return initial, validate(fast, val, 96, BATCH)[1], validate(seed_model, val, 96, BATCH)[1]


def test_equal_steps_reach_a_similar_validation_error_quick(tiny_world, tmp_path):
    initial, fast, seed = train_both(tiny_world, 40, tmp_path)
    assert fast < 0.8 * initial and seed < 0.8 * initial  # both learned
    assert abs(fast - seed) <= 0.2 * seed, (initial, fast, seed)


@pytest.mark.slow
def test_equal_steps_reach_the_same_validation_error(tiny_world, tmp_path):
    initial, fast, seed = train_both(tiny_world, 150, tmp_path)
    assert fast < 0.5 * initial and seed < 0.5 * initial
    assert abs(fast - seed) <= 0.15 * seed, (initial, fast, seed)
