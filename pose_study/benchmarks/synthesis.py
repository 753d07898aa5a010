"""Benchmark ``bench-synth``: synthetic-world rendering throughput, images/s per CPU core.

Renders ``--num-images`` crops per (world, crop size) in one process after a warm-up chunk and
reports wall-clock images/s and images per CPU-second of this process (``time.process_time``:
the per-core figure, whatever the thread count; the renderer itself is single-threaded numpy).
The target for the default study is >= 300 images/s per core at 64 px.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from pose_study._io import write_json
from pose_study._spec import provenance
from pose_study.data.synthetic.generate import synthesize_chunk
from pose_study.data.synthetic.worlds import WORLDS, SynthesizeSpec

log = logging.getLogger(__name__)
TARGET_PER_CORE_64 = 300.0


def measure(world: str, crop_size: int, num_images: int, chunk_size: int = 256) -> dict[str, float]:
    """Render ``num_images`` images of ``world`` at ``crop_size`` px and time it.

    Returns:
        {world, crop_size, images, wall_s, cpu_s, img_per_s, img_per_cpu_s}.
    """
    spec = SynthesizeSpec(world=world, split="train", num_samples=num_images + chunk_size,
                          crop_size=crop_size, chunk_size=chunk_size)
    synthesize_chunk(spec, num_images, num_images + min(chunk_size, 32))  # warm-up (imports, caches)
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, num_images, chunk_size):
        synthesize_chunk(spec, start, min(start + chunk_size, num_images))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"world": world, "crop_size": crop_size, "images": num_images, "wall_s": wall, "cpu_s": cpu,
            "img_per_s": num_images / wall, "img_per_cpu_s": num_images / max(cpu, 1e-9)}


def format_table(rows: list[dict[str, float]]) -> str:
    """The results as a fixed-width text table."""
    lines = [f"{'world':<10} {'crop px':>7} {'images':>7} {'img/s (wall)':>13} {'img/s per core':>15}"]
    for r in rows:
        lines.append(f"{r['world']:<10} {r['crop_size']:>7} {r['images']:>7} {r['img_per_s']:>13.0f} "
                     f"{r['img_per_cpu_s']:>15.0f}")
    return "\n".join(lines)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's options to ``parser``."""
    parser.add_argument("--worlds", nargs="+", choices=WORLDS, default=["wild", "lab"],
                        help="worlds to time (default: wild lab)")
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 128],
                        help="crop sizes in px, 64-256 (default: 64 128)")
    parser.add_argument("--num-images", type=int, default=1024, help="images per measurement (default 1024)")
    parser.add_argument("--chunk-size", type=int, default=256, help="images per rendered batch (default 256)")
    parser.add_argument("--json", type=Path, help="also write the results (and provenance) to this JSON file")


def main(args: argparse.Namespace) -> None:
    """Entry point of ``python -m pose_study bench-synth``."""
    if args.num_images < 1:
        raise ValueError(f"--num-images must be >= 1, got {args.num_images}")
    rows = []
    for size in args.sizes:
        for world in args.worlds:
            rows.append(measure(world, size, args.num_images, args.chunk_size))
            log.info("%s @ %d px: %.0f img/s per core", world, size, rows[-1]["img_per_cpu_s"])
    sys.stdout.write(format_table(rows) + "\n")  # the table is the command's output
    if args.json is not None:
        write_json(args.json, {"results": rows, "target_img_per_core_64px": TARGET_PER_CORE_64,
                               "_provenance": provenance()})
