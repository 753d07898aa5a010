"""``python -m pose_study bench``: runs on the CPU with a tiny preset and reports every field."""

from __future__ import annotations

import json

import pytest
import torch

from pose_study import cli
from pose_study.benchmarks import training
from pose_study.data.batches import SplitTensors

TINY = ["bench", "--model", "hg1_tiny", "--crop-size", "64", "--batch-size", "4", "--steps", "2", "--warmup", "1",
        "--data-steps", "3", "--num-samples", "16", "--threads", "1", "--workers", "1"]
ROWS = ("data path (img/s)", "training (img/s)", "training (steps/s)", "model step only (img/s)",
        "training achieved TFLOP/s", "training MFU", "model-step MFU", "peak device memory (MiB)",
        "forward FLOPs per image", "bf16 peak: n/a", "data path / model consumption", "load average")


def test_bench_prints_and_writes_every_field(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert cli.main([*TINY, "--json", str(out)]) == 0
    table = capsys.readouterr().out
    for row in ROWS:
        assert row in table, row
    assert "ours/seed" in table and table.count("x\n") >= 4  # a ratio on every throughput row
    result = json.loads(out.read_text())
    for path in ("ours", "seed_style"):
        for part in ("data", "train", "model"):
            assert result[path][part]["img_per_s"] > 0
        assert result[path]["train"]["mfu"] is None  # no peak on the CPU
        assert result[path]["train"]["achieved_tflops"] > 0
    assert set(result["ratios"]) == {"data", "train", "model"}
    assert result["forward_flops_per_image"] > 0 and result["peak_bf16_tflops"] is None
    assert result["threads"] == 1 and result["workers"] == 1 and result["data"] == "synthesized"
    assert "git_sha" in result["_provenance"]


def test_bench_without_baseline_on_a_given_split(tiny_world, capsys):
    args = [a for a in TINY if a not in ("--crop-size", "64")] + ["--no-baseline", "--data", str(tiny_world["lab_val"])]
    assert cli.main(args) == 0
    table = capsys.readouterr().out
    assert "64 px crops" in table and "data: " + str(tiny_world["lab_val"]) in table


def test_crop_size_must_match_the_data(tiny_world):
    spec = training.BenchSpec(crop_size=128, steps=1, warmup=0, baseline=False, threads=1)
    with pytest.raises(ValueError, match="--crop-size 128 differs from the crops of .* \\(64 px\\)"):
        training.run(spec, tiny_world["wild_val"])


@pytest.mark.parametrize("field,value,message", [
    ("model", "hg3", "unknown model 'hg3'; choices"), ("batch_size", 0, "batch_size must be >= 1, got 0"),
    ("warmup", -1, "warmup must be >= 0, got -1"), ("crop_size", 66, "multiple of 4 and >= 32, got 66")])
def test_bad_settings_are_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        training.BenchSpec(**{field: value})


@pytest.mark.parametrize("name,peak", [("NVIDIA H100 80GB HBM3", 989.4), ("NVIDIA H100 PCIe", 756.0),
                                       ("NVIDIA H200", 989.4), ("NVIDIA A100-SXM4-80GB", 312.0),
                                       ("Tesla T4", None)])
def test_peak_is_looked_up_by_device_name(monkeypatch, name, peak):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    assert training.peak_tflops(torch.device("cuda", 0)) == peak


def test_no_peak_on_the_cpu():
    assert training.peak_tflops(torch.device("cpu")) is None


# --- GPU (skipped without CUDA) ----------------------------------------------------------------


gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@gpu
def test_bench_on_cuda_reports_mfu_and_memory(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = ["bench", "--model", "resnet_tiny", "--crop-size", "128", "--batch-size", "32", "--steps", "5",
            "--warmup", "2", "--data-steps", "5", "--num-samples", "64", "--workers", "2", "--device", "cuda",
            "--peak-tflops", "100", "--json", str(out)]
    assert cli.main(args) == 0
    result = json.loads(out.read_text())
    assert result["ours"]["train"]["mfu"] > 0 and result["ours"]["train"]["peak_memory_mb"] > 0
    assert "training MFU" in capsys.readouterr().out


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("resident", ["device", "host"])
def test_cuda_split_gathers_what_the_cpu_split_gathers(tiny_world, resident):
    cpu = SplitTensors.load(tiny_world["lab_val"], torch.device("cpu"))
    cuda = SplitTensors.load(tiny_world["lab_val"], torch.device("cuda"), resident=resident)
    assert cuda.on_device == (resident == "device")
    index = torch.tensor([3, 0, 7, 7])
    a, b = cpu.gather(index), cuda.gather(index)
    for name in ("images", "joints_2d", "valid_2d", "joints_3d", "valid_3d", "intrinsics", "is_3d"):
        torch.testing.assert_close(getattr(b, name).cpu(), getattr(a, name), msg=name)


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("resident", ["device", "host"])
def test_gathering_a_batch_does_not_wait_for_the_gpu(tiny_world, resident):
    split = SplitTensors.load(tiny_world["lab_val"], torch.device("cuda"), resident=resident)
    split.gather(torch.tensor([0, 1]))  # per-device constants are made on first use
    torch.cuda.set_sync_debug_mode("error")
    try:
        split.gather(torch.tensor([2, 3, 5]))
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.gpu
@gpu
@pytest.mark.xfail(strict=False, reason="transforms.apply_affines (new_tensor / as_tensor of host lists) and "
                   "objective.compute_losses (as_tensor of unused 0.0 terms) copy to the device blocking")
def test_a_whole_training_step_does_not_wait_for_the_gpu(tiny_world):
    from pose_study.models import build_model
    from pose_study.train.detection import DetectorTask, TrainData
    from pose_study.train.loop import LoopSpec, train_step

    cuda = torch.device("cuda")
    split = SplitTensors.load(tiny_world["wild_val"], cuda)
    task = DetectorTask(TrainData(val=split, train_2d=split), LoopSpec(batch_size=8))
    model = build_model("hg1_tiny").to(cuda).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters())
    generator = torch.Generator().manual_seed(0)
    step = lambda: train_step(model, model, optimizer, task, task.draw(generator))  # noqa: E731
    step()
    torch.cuda.set_sync_debug_mode("error")
    try:
        step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
