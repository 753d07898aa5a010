"""Benchmark ``bench-memory``: peak RSS and data-path throughput of training jobs as the split grows.

For each split size (``--sizes``) and image encoding (``--encodings``) it writes a synthetic ``wild``
split of that many crops, then runs one *job* per split in a fresh Python process (so that each
peak RSS is that job's alone): load the split as a training stage does (``SplitTensors.load``
with ``--memory-budget-mb``; 0 streams every split), build the model, run ``--steps`` training
steps through the detector task's ``draw`` (``train.detection.draw_batch``) and the loop's ``train_step``, read the process's peak RSS, then time
the data path (``--data-steps`` batches: ours, i.e. ``DetectorTask.draw`` + heatmap targets on one CPU
thread, against the seed-style loader on the same file, same draws, ``--workers`` processes;
``--rounds`` interleaved rounds, medians of the rates and of the per-round ratios).

Writing 50 k rendered crops would cost minutes of CPU, so a split of N crops is ``--base``
rendered crops repeated until N (``SplitWriter``, chunk by chunk). Repetition does not flatter
the read path: every sample is its own HDF5 row and random draws touch rows all over the file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from pose_study import models
from pose_study._io import write_json
from pose_study._spec import provenance
from pose_study.benchmarks import seed_path
from pose_study.data.batches import SplitTensors, StreamedSplit
from pose_study.data.formats import SplitWriter
from pose_study.data.synthetic import split as synthetic_split
from pose_study.data.synthetic.worlds import SynthesizeSpec
from pose_study.train import distributed
from pose_study.train.detection import DetectorTask, TrainData
from pose_study.train.loop import LoopSpec, train_step
from pose_study.train.objective import build_targets

log = logging.getLogger(__name__)
LR = 1e-3
TARGETS = {"rss_growth": 0.10, "data_ratio": 3.0}


@dataclasses.dataclass(frozen=True)
class MemorySpec:
    """What ``bench-memory`` measures (``configure`` documents each option)."""

    sizes: tuple[int, ...] = (5000, 50000)
    encodings: tuple[str, ...] = ("jpeg", "raw")
    crop_size: int = 128
    base: int = 256
    model: str = "hg1_tiny"
    batch_size: int = 32
    steps: int = 10
    data_steps: int = 30
    rounds: int = 3
    workers: int = 1
    memory_budget_mb: float = 0.0
    decode_threads: int = 0
    seed: int = 0


def make_split(path: Path, num_samples: int, crop_size: int, encoding: str, base: int = 256, seed: int = 0) -> Path:
    """Write a ``wild`` split of ``num_samples`` crops: ``base`` rendered ones, repeated (module docstring)."""
    spec = SynthesizeSpec(world="wild", split="train", num_samples=min(base, num_samples), crop_size=crop_size,
                          seed=seed, image_encoding=encoding)
    rendered = list(synthetic_split.render_chunks(spec))
    with SplitWriter(path, synthetic_split.split_info(spec), encoding) as writer:
        while writer.count < num_samples:
            for part in rendered:
                take = min(len(part), num_samples - writer.count)
                if take:
                    writer.append(part if take == len(part) else part.select(slice(0, take)))
    return path


def job(path: Path, spec: MemorySpec) -> dict:
    """One training job on ``path`` (run in its own process by ``run``): peak RSS, then data-path rates."""
    distributed.configure_threads(1)
    load_before = os.getloadavg()[0]  # other processes' load: a busy machine moves the ratio
    device = torch.device("cpu")
    loop = LoopSpec(batch_size=spec.batch_size, seed=spec.seed, device="cpu")
    t0 = time.perf_counter()
    split = SplitTensors.load(path, device, memory_budget_mb=spec.memory_budget_mb)
    if isinstance(split, StreamedSplit) and spec.decode_threads:
        split.close()
        split = StreamedSplit(path, device, threads=spec.decode_threads)
    task = DetectorTask(TrainData(val=split, train_2d=split), loop)
    generator = torch.Generator().manual_seed(spec.seed)
    torch.manual_seed(spec.seed)
    model = models.build_model(spec.model).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    for _ in range(spec.steps):
        train_step(model, model, optimizer, task, task.draw(generator), loop.grad_clip)
    out = {"samples": len(split), "streamed": isinstance(split, StreamedSplit),
           "train_s": time.perf_counter() - t0,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    dataset = seed_path.SeedStyleDataset(path)
    batches = seed_path.PlannedBatches(len(dataset), spec.batch_size, spec.rounds * (spec.data_steps + 2),
                                       loop.augment, spec.seed)
    it = iter(seed_path.seed_loader(dataset, batches, spec.workers, device))
    ours, seed = [], []
    for _ in range(spec.rounds):  # interleaved: a busy machine slows both alike
        ours.append(_rate(lambda: build_targets(task.draw(generator), (split.crop_size // 4,) * 2,
                                                loop.heatmap_sigma), spec))
        seed.append(_rate(lambda: next(it), spec))
    out.update(ours_img_per_s=statistics.median(ours), seed_img_per_s=statistics.median(seed),
               data_ratio=statistics.median([a / b for a, b in zip(ours, seed)]),
               load_before=load_before, load_after=os.getloadavg()[0])
    return out


def _rate(step, spec: MemorySpec) -> float:
    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(spec.data_steps):
        step()
    return spec.data_steps * spec.batch_size / (time.perf_counter() - t0)


def run(spec: MemorySpec, root: Path | None = None) -> dict:
    """Write the splits, run one job per split in a fresh process; returns the results dict."""
    rows = []
    if root is not None:
        Path(root).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pose_study_bench_memory_", dir=root) as tmp:
        for encoding in spec.encodings:
            for size in spec.sizes:
                path = Path(tmp) / f"{encoding}_{size}.h5"
                t0 = time.perf_counter()
                make_split(path, size, spec.crop_size, encoding, spec.base, spec.seed)
                written = time.perf_counter() - t0
                row = {"encoding": encoding, "size": size, "file_mb": path.stat().st_size / 2**20,
                       "write_s": written, **_job_in_process(path, spec)}
                log.info("%s", row)
                rows.append(row)
                path.unlink()
    return {"config": dataclasses.asdict(spec), "rows": rows, "growth": _growth(rows, spec),
            "targets": TARGETS, "_provenance": provenance()}


def _job_in_process(path: Path, spec: MemorySpec) -> dict:
    cmd = [sys.executable, "-m", "pose_study.benchmarks.memory", "--job", str(path),
           "--spec", json.dumps(dataclasses.asdict(spec))]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _growth(rows: list[dict], spec: MemorySpec) -> dict:
    """Per encoding: peak RSS of the largest size over the smallest's, minus 1."""
    out = {}
    for encoding in spec.encodings:
        mine = sorted((r for r in rows if r["encoding"] == encoding), key=lambda r: r["size"])
        if len(mine) > 1:
            out[encoding] = mine[-1]["peak_rss_mb"] / mine[0]["peak_rss_mb"] - 1
    return out


def format_table(result: dict) -> str:
    """The results as a fixed-width text table (the command's output)."""
    c = result["config"]
    lines = [f"bench-memory: {c['model']}, {c['crop_size']} px, batch {c['batch_size']}, {c['steps']} training "
             f"steps, memory budget {c['memory_budget_mb']} MiB, {c['workers']} seed-style worker(s), "
             f"1 thread, {c.get('decode_threads') or 'default'} decoding thread(s)",
             f"{'encoding':<9}{'crops':>8}{'file MiB':>10}{'streamed':>10}{'peak RSS MiB':>14}"
             f"{'ours img/s':>12}{'seed img/s':>12}{'ratio':>8}{'load':>12}"]
    for r in result["rows"]:
        lines.append(f"{r['encoding']:<9}{r['size']:>8}{r['file_mb']:>10.0f}{str(r['streamed']):>10}"
                     f"{r['peak_rss_mb']:>14.0f}{r['ours_img_per_s']:>12.1f}{r['seed_img_per_s']:>12.1f}"
                     f"{r['data_ratio']:>7.2f}x{r['load_before']:>6.2f}/{r['load_after']:<5.2f}")
    for encoding, growth in result["growth"].items():
        lines.append(f"{encoding}: peak RSS of the largest split vs the smallest: {growth:+.1%} "
                     f"(target <= +{TARGETS['rss_growth']:.0%})")
    return "\n".join(lines)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's options to ``parser``."""
    d = MemorySpec()
    parser.add_argument("--sizes", type=int, nargs="+", default=list(d.sizes), help="split sizes in crops")
    parser.add_argument("--encodings", nargs="+", default=list(d.encodings), choices=["jpeg", "raw"])
    parser.add_argument("--crop-size", type=int, default=d.crop_size, help=f"default {d.crop_size}")
    parser.add_argument("--base", type=int, default=d.base, help="rendered crops, repeated to each size")
    parser.add_argument("--model", default=d.model, choices=sorted(models.MODELS))
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--steps", type=int, default=d.steps, help="training steps before the RSS is read")
    parser.add_argument("--data-steps", type=int, default=d.data_steps, help="timed data-path batches")
    parser.add_argument("--rounds", type=int, default=d.rounds,
                        help="interleaved ours/seed-style timing rounds; medians reported")
    parser.add_argument("--workers", type=int, default=d.workers, help="seed-style DataLoader workers")
    parser.add_argument("--memory-budget-mb", type=float, default=d.memory_budget_mb,
                        help="SplitTensors.load's budget (0: stream every split)")
    parser.add_argument("--decode-threads", type=int, default=d.decode_threads,
                        help="JPEG decoding threads of a streamed split (0: its default)")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--dir", type=Path, help="where the temporary splits go (default: the system's)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")


def main(args: argparse.Namespace) -> None:
    """Entry point of ``python -m pose_study bench-memory``."""
    spec = MemorySpec(sizes=tuple(args.sizes), encodings=tuple(args.encodings),
                      **{f.name: getattr(args, f.name) for f in dataclasses.fields(MemorySpec)
                         if f.name not in ("sizes", "encodings")})
    result = run(spec, args.dir)
    sys.stdout.write(format_table(result) + "\n")
    if args.json is not None:
        write_json(args.json, result)


if __name__ == "__main__":  # one job, in its own process (``_job_in_process``)
    _args = argparse.ArgumentParser()
    _args.add_argument("--job", type=Path, required=True)
    _args.add_argument("--spec", required=True)
    _parsed = _args.parse_args()
    _fields = json.loads(_parsed.spec)
    _fields.update(sizes=tuple(_fields["sizes"]), encodings=tuple(_fields["encodings"]))
    sys.stdout.write(json.dumps(job(_parsed.job, MemorySpec(**_fields))) + "\n")
