"""Benchmark ``bench``: training throughput of our data path and step against the seed-style path.

For one model preset, crop size, batch size and device it measures, in one process and on the same
data (a JPEG-encoded synthetic split made on the fly, or ``--data``):

* **data path**: images/s delivered to the device with augmentation and heatmap targets.
  Ours: ``detection.draw_batch`` (one gather, one batched affine resample, labels) + ``build_targets``.
  Seed-style: ``benchmarks.seed_path`` (per-sample read, JPEG decode, PIL warp, numpy heatmaps in
  DataLoader workers) + the copy to the device.
* **training**: whole steps (data + forward + backward + optimiser), images/s and steps/s. Ours:
  ``loop.train_step`` of a ``detection.DetectorTask`` (bf16 autocast on CUDA and on CPUs with native bf16, channels_last, optional torch.compile, no host sync);
  seed-style: fp32, NCHW, loss read back every step.
* **model step only**: the same steps on one fixed batch — the model's consumption rate, against
  which the data path must keep a margin (DESIGN.md: loader ≥ 1.5× the model's consumption).
* forward FLOPs per image (``models.forward_flops``), achieved FLOP/s = 3 × forward FLOPs × img/s
  (forward + backward ≈ 3 forwards; reference/anchors.md §3b), MFU against the device's dense
  bf16 peak (``PEAK_BF16_TFLOPS``; n/a on the CPU), and peak memory.

Both paths draw the same batches and augmentations from the same seed, so they do the same work.
Timing: ``--warmup`` steps, then ``--steps`` timed steps ended by a device sync; with
``--repeats`` > 1 the measurements are interleaved round by round and the median is reported
(shared machines drift). The seed-style loader may hold up to ``2 × workers`` batches prefetched
during warm-up, which flatters it slightly.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from pose_study import models
from pose_study._io import write_json
from pose_study._spec import provenance
from pose_study.benchmarks import seed_path
from pose_study.data.batches import SplitTensors
from pose_study.data.synthetic import split as synthetic_split
from pose_study.data.synthetic.worlds import SynthesizeSpec
from pose_study.train import accounting, distributed
from pose_study.train.detection import DetectorTask, TrainData
from pose_study.train.loop import LoopSpec, resolve_device, train_step
from pose_study.train.objective import build_targets

log = logging.getLogger(__name__)

# Dense bf16 tensor peaks (TFLOP/s) by a substring of torch.cuda.get_device_name(); first match
# wins (reference/anchors.md §3b). "H100 80GB HBM3" is the SXM part; PCIe must match before it.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100 80GB HBM3", 989.4),
    ("H100 SXM", 989.4),
    ("H200", 989.4),
    ("A100", 312.0),
)
TARGETS = {"cpu_data_ratio": 3.0, "cpu_train_ratio": 1.5, "data_over_model": 1.5,
           "gpu_resnet50_256_img_per_s": 2500.0}
LR = 1e-3
DEFAULT_CROP = 128


@dataclasses.dataclass(frozen=True)
class BenchSpec:
    """What ``bench`` measures (see ``configure`` for the meaning of each option)."""

    model: str = "hg1_tiny"
    crop_size: int | None = None  # None: the --data file's, or DEFAULT_CROP for a synthesized split
    batch_size: int = 32
    device: str = "auto"
    steps: int = 20
    warmup: int = 3
    data_steps: int = 50
    repeats: int = 1
    threads: int | None = None
    workers: int | None = None
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    baseline: bool = True
    num_samples: int = 512
    seed: int = 0
    peak_tflops: float | None = None

    def __post_init__(self) -> None:
        if self.model not in models.MODELS:
            raise ValueError(f"unknown model {self.model!r}; choices: {sorted(models.MODELS)}")
        for name in ("batch_size", "steps", "data_steps", "repeats", "num_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        if self.crop_size is not None and (self.crop_size % 4 or self.crop_size < 32):
            raise ValueError(f"crop_size must be a multiple of 4 and >= 32, got {self.crop_size}")

    def loop(self) -> LoopSpec:
        return LoopSpec(batch_size=self.batch_size, seed=self.seed, device=self.device, amp=self.amp,
                        channels_last=self.channels_last, compile=self.compile)


def peak_tflops(device: torch.device) -> float | None:
    """Dense bf16 peak of ``device`` from ``PEAK_BF16_TFLOPS``; None on the CPU or an unlisted GPU."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in name), None)


# --- timing --------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], steps: int, warmup: int, device: torch.device) -> dict[str, float]:
    """Seconds and peak CUDA memory of ``steps`` calls of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    seconds = time.perf_counter() - t0
    memory = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
    return {"seconds": seconds, "steps": steps, "peak_memory_mb": memory}


def _rates(timing: dict[str, float], batch_size: int) -> dict[str, float]:
    return {"img_per_s": timing["steps"] * batch_size / timing["seconds"],
            "steps_per_s": timing["steps"] / timing["seconds"], "peak_memory_mb": timing["peak_memory_mb"]}


# --- the two paths -------------------------------------------------------------------------------


class _Ours:
    """Our path on ``data``: batches drawn by the loop, model in the loop's settings."""

    def __init__(self, spec: BenchSpec, data: TrainData, device: torch.device) -> None:
        self.spec, self.data, self.device, self.loop = spec, data, device, spec.loop()
        self.generator = torch.Generator().manual_seed(spec.seed)
        torch.manual_seed(spec.seed)
        self.model = models.build_model(spec.model).to(device)
        if spec.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.net = torch.compile(self.model) if spec.compile else self.model
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LR)
        self.task = DetectorTask(data, self.loop)
        self.fixed = self.task.draw(self.generator)

    def data_step(self) -> None:
        batch = self.task.draw(self.generator)
        build_targets(batch, (self.spec.crop_size // 4,) * 2, self.loop.heatmap_sigma)

    def train_step(self, fixed: bool = False) -> None:
        batch = self.fixed if fixed else self.task.draw(self.generator)
        train_step(self.net, self.model, self.optimizer, self.task, batch, self.loop.grad_clip)


class _Seed:
    """The seed-style path on the same file: per-sample work in loader workers, fp32 NCHW training."""

    def __init__(self, spec: BenchSpec, path: Path, device: torch.device, workers: int) -> None:
        self.spec, self.device, self.workers = spec, device, workers
        self.dataset = seed_path.SeedStyleDataset(path)
        torch.manual_seed(spec.seed)
        self.model = models.build_model(spec.model).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LR)
        self.fixed = seed_path.to_device(next(iter(self._loader(1, workers=0))), device)

    def _loader(self, steps: int, workers: int | None = None) -> torch.utils.data.DataLoader:
        batches = seed_path.PlannedBatches(len(self.dataset), self.spec.batch_size, steps, self.spec.loop().augment,
                                           self.spec.seed, self.dataset.has_3d)
        return seed_path.seed_loader(self.dataset, batches, self.workers if workers is None else workers,
                                     self.device)

    def batches(self, steps: int) -> Callable[[], dict[str, torch.Tensor]]:
        """A function returning the next of ``steps`` batches, on the device; workers start on the first call."""
        state: dict = {}

        def next_batch() -> dict[str, torch.Tensor]:
            if "it" not in state:
                state["it"] = iter(self._loader(steps))
            return seed_path.to_device(next(state["it"]), self.device)

        return next_batch

    def train_step(self, batch: dict[str, torch.Tensor]) -> None:
        seed_path.seed_train_step(self.model, self.optimizer, batch)


def _measure_round(spec: BenchSpec, ours: _Ours, seed: _Seed | None, device: torch.device) -> dict:
    b, w = spec.batch_size, spec.warmup
    out = {"ours": {"data": _rates(_timed(ours.data_step, spec.data_steps, w, device), b),
                    "train": _rates(_timed(ours.train_step, spec.steps, w, device), b),
                    "model": _rates(_timed(lambda: ours.train_step(fixed=True), spec.steps, w, device), b)}}
    if seed is not None:
        data_batch, train_batch = seed.batches(spec.data_steps + w), seed.batches(spec.steps + w)
        out["seed_style"] = {
            "data": _rates(_timed(data_batch, spec.data_steps, w, device), b),
            "train": _rates(_timed(lambda: seed.train_step(train_batch()), spec.steps, w, device), b),
            "model": _rates(_timed(lambda: seed.train_step(seed.fixed), spec.steps, w, device), b)}
    return out


def _median(rounds: list[dict]) -> dict:
    """Element-wise median of the rounds' nested measurement dicts."""
    first = rounds[0]
    if isinstance(first, dict):
        return {k: _median([r[k] for r in rounds]) for k in first}
    return statistics.median(rounds)


# --- the whole benchmark -------------------------------------------------------------------------


def run(spec: BenchSpec, data: Path | None = None) -> dict:
    """Measure both paths (the baseline only with ``spec.baseline``); returns the results dict."""
    load_before = os.getloadavg()[0]
    threads = distributed.configure_threads(spec.threads)
    workers = threads if spec.workers is None else spec.workers
    device = resolve_device(spec.device)
    with tempfile.TemporaryDirectory(prefix="pose_study_bench_") as tmp:
        if data is None:
            spec = dataclasses.replace(spec, crop_size=spec.crop_size or DEFAULT_CROP)
        path = data if data is not None else _synthesize(spec, Path(tmp))
        tensors = SplitTensors.load(path, device)
        if spec.crop_size not in (None, tensors.crop_size):
            raise ValueError(f"--crop-size {spec.crop_size} differs from the crops of {path} "
                             f"({tensors.crop_size} px); leave it out to use the file's")
        spec = dataclasses.replace(spec, crop_size=tensors.crop_size)
        ours = _Ours(spec, TrainData(val=tensors, train_2d=tensors), device)
        seed = _Seed(spec, Path(path), device, workers) if spec.baseline else None
        rounds = []
        for r in range(spec.repeats):
            rounds.append(_measure_round(spec, ours, seed, device))
            log.info("round %d/%d done", r + 1, spec.repeats)
    flops = models.forward_flops(ours.model, spec.crop_size)
    result = _summarise(spec, _median(rounds), flops, device, threads, workers,
                        str(data) if data is not None else "synthesized")
    result["load_average_1min"] = {"before": load_before, "after": os.getloadavg()[0]}
    return result


def _synthesize(spec: BenchSpec, root: Path) -> Path:
    path = root / "bench.h5"
    synthetic_split.write(SynthesizeSpec(world="wild", split="train", num_samples=spec.num_samples,
                                         crop_size=spec.crop_size, seed=spec.seed, image_encoding="jpeg"), path)
    return path


def _summarise(spec: BenchSpec, measured: dict, flops: int, device: torch.device, threads: int,
               workers: int, data: str) -> dict:
    peak = spec.peak_tflops if spec.peak_tflops is not None else peak_tflops(device)
    for path in measured.values():
        for part in ("train", "model"):
            achieved = 3 * flops * path[part]["img_per_s"]
            path[part]["achieved_tflops"] = achieved / 1e12
            path[part]["mfu"] = achieved / (peak * 1e12) if peak else None
    ours = measured["ours"]
    result = {"config": dataclasses.asdict(spec), "data": data, "device": accounting.device_name(device),
              "threads": threads, "workers": workers, "forward_flops_per_image": flops,
              "peak_bf16_tflops": peak, "peak_memory_mb": accounting.peak_memory_mb(device), **measured,
              "data_over_model": ours["data"]["img_per_s"] / ours["model"]["img_per_s"],
              "targets": TARGETS, "_provenance": provenance()}
    if "seed_style" in measured:
        result["ratios"] = {part: ours[part]["img_per_s"] / measured["seed_style"][part]["img_per_s"]
                            for part in ("data", "train", "model")}
    return result


# --- output --------------------------------------------------------------------------------------


def format_table(result: dict) -> str:
    """The results as a fixed-width text table (the command's output)."""
    c = result["config"]
    seed = result.get("seed_style")
    lines = [f"bench: {c['model']}, {c['crop_size']} px crops, batch {c['batch_size']}, {result['device']}, "
             f"{result['workers']} seed-style loader workers; {c['steps']} timed steps after {c['warmup']} "
             f"warm-up (data path: {c['data_steps']}), median of {c['repeats']} round(s); data: {result['data']}",
             f"{'':34}{'ours':>12}{'seed-style':>12}{'ours/seed':>11}"]
    rows = [("data path (img/s)", "data", "img_per_s", "{:.1f}"), ("training (img/s)", "train", "img_per_s", "{:.1f}"),
            ("training (steps/s)", "train", "steps_per_s", "{:.2f}"),
            ("model step only (img/s)", "model", "img_per_s", "{:.1f}"),
            ("training achieved TFLOP/s", "train", "achieved_tflops", "{:.4g}"),
            ("training MFU", "train", "mfu", "{:.1%}"), ("model-step MFU", "model", "mfu", "{:.1%}"),
            ("peak device memory (MiB)", "train", "peak_memory_mb", "{:.0f}")]
    for label, part, key, fmt in rows:
        a = result["ours"][part][key]
        b = seed[part][key] if seed else None
        ratio = f"{a / b:.2f}x" if key in ("img_per_s", "steps_per_s") and b else "-"
        lines.append(f"{label:<34}{_cell(a, fmt):>12}{_cell(b, fmt):>12}{ratio:>11}")
    peak = result["peak_bf16_tflops"]
    lines += [f"forward FLOPs per image: {result['forward_flops_per_image'] / 1e9:.4g} G "
              f"(training FLOPs = 3 x forward); bf16 peak: {f'{peak:g} TFLOP/s' if peak else 'n/a'}",
              f"data path / model consumption: {result['data_over_model']:.2f}x "
              f"(target >= {TARGETS['data_over_model']}x); process peak RSS or device memory: "
              f"{result['peak_memory_mb']:.0f} MiB",
              "host load average (1 min) before/after: {before:.2f} / {after:.2f}".format(
                  **result["load_average_1min"])]
    return "\n".join(lines)


def _cell(value: float | None, fmt: str) -> str:
    if value is None:
        return "n/a"
    return "-" if value != value else fmt.format(value)  # NaN: not measured here (CPU memory)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's options to ``parser``."""
    d = BenchSpec()
    parser.add_argument("--model", default=d.model, choices=sorted(models.MODELS), help=f"preset (default {d.model})")
    parser.add_argument("--crop-size", type=int,
                        help=f"crop side in px (default: the --data file's, else {DEFAULT_CROP})")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help=f"default {d.batch_size}")
    parser.add_argument("--device", default=d.device, help="auto | cpu | cuda | cuda:N (default auto)")
    parser.add_argument("--steps", type=int, default=d.steps, help=f"timed training steps (default {d.steps})")
    parser.add_argument("--warmup", type=int, default=d.warmup, help=f"untimed steps first (default {d.warmup})")
    parser.add_argument("--data-steps", type=int, default=d.data_steps,
                        help=f"timed data-path batches (default {d.data_steps})")
    parser.add_argument("--repeats", type=int, default=d.repeats, help="interleaved rounds, median reported")
    parser.add_argument("--threads", type=int, help="CPU threads (default: $OMP_NUM_THREADS, else torch's)")
    parser.add_argument("--workers", type=int, help="seed-style DataLoader workers (default: the CPU threads)")
    parser.add_argument("--no-amp", dest="amp", action="store_false", help="ours without bf16 autocast (CUDA, CPUs with native bf16)")
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false", help="ours in NCHW")
    parser.add_argument("--compile", action="store_true", help="ours with torch.compile")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the seed-style path")
    parser.add_argument("--num-samples", type=int, default=d.num_samples,
                        help=f"size of the synthesized JPEG split (default {d.num_samples})")
    parser.add_argument("--seed", type=int, default=d.seed, help="data, init and augmentation seed")
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak of an unlisted device (for MFU)")
    parser.add_argument("--data", type=Path, help="benchmark on this canonical split instead of a synthesized one")
    parser.add_argument("--json", type=Path, help="also write the results (and provenance) to this JSON file")


def main(args: argparse.Namespace) -> None:
    """Entry point of ``python -m pose_study bench``."""
    spec = BenchSpec(**{f.name: getattr(args, f.name) for f in dataclasses.fields(BenchSpec)})
    result = run(spec, args.data)
    sys.stdout.write(format_table(result) + "\n")  # the table is the command's output
    if args.json is not None:
        write_json(args.json, result)
