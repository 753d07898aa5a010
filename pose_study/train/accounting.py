"""Compute accounting for a training run: the learning curve and the totals in ``metrics.json``.

FLOPs convention (reference/anchors.md §3b): one training image costs 3 × its forward FLOPs
(forward + backward ≈ 2 × forward), i.e. 6 × MACs. Forward FLOPs come from torch's own FLOP
counter (``models.forward_flops``). Validation passes are not counted as training compute.
A run that starts from pre-trained weights carries its pre-training totals (``prior``), so
``flops_total`` and ``compute_total`` allow equal-compute comparisons between arms.
"""

from __future__ import annotations

import csv
import io
import os
import platform
import resource
from dataclasses import dataclass, field
from typing import Any

import torch

from pose_study._io import write_text
from pose_study.records import CURVE_COLUMNS, TOTAL_KEYS



@dataclass
class Progress:
    """Where a run stands; saved in every checkpoint so a resumed run continues its accounting."""

    step: int = 0
    samples: int = 0
    seconds: float = 0.0
    curve: list[dict[str, Any]] = field(default_factory=list)

    def state(self) -> dict[str, Any]:
        return {"step": self.step, "samples": self.samples, "seconds": self.seconds, "curve": self.curve}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Progress:
        return cls(state["step"], state["samples"], state["seconds"], list(state["curve"]))


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def peak_memory_mb(device: torch.device) -> float:
    """Peak device memory (CUDA) or peak resident set size of this process (CPU), in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def totals(progress: Progress, flops_per_image: int, device_count: int = 1) -> dict[str, float]:
    """This run's own compute totals."""
    return {
        "wall_seconds": progress.seconds,
        "train_samples": progress.samples,
        "train_flops": 3 * flops_per_image * progress.samples,
        "device_hours": progress.seconds * device_count / 3600.0,
    }


def prior_flops(prior: dict[str, float] | list[dict[str, float]] | None) -> float:
    """Training FLOPs of the upstream run(s) (``prior`` as in ``add_prior``)."""
    priors = prior if isinstance(prior, list) else [prior or {}]
    return sum(p.get("train_flops", 0.0) for p in priors)


def run_metrics(stage: str, model: str, val: Any, params: int, flops_per_image: int, progress: Progress,
                initial_value: float, prior: dict | list[dict] | None = None, device_count: int = 1) -> dict[str, Any]:
    """The ``metrics.json`` document of a finished training run (before stage-specific entries).

    Args:
        stage: Stage name. model: Preset name (detector or lifter).
        val: The validation split (``crop_size``, ``info.source``, ``device``).
        params: Parameters. flops_per_image: Forward FLOPs per training sample.
        progress: The final progress (its last curve row is the final validation).
        initial_value: Validation value before training.
        prior: ``compute_total`` of the upstream run(s) this run carries.
        device_count: Devices that trained (ranks).
    """
    final = progress.curve[-1]
    own = totals(progress, flops_per_image, device_count=device_count)
    return {
        "stage": stage, "model": model, "input_size": val.crop_size, "source": val.info.source,
        "params": params, "forward_flops_per_image": flops_per_image,
        "final": {"metric": final["val_metric"], "value": final["val_value"], "initial_value": initial_value},
        "compute": {**own, "steps": progress.step, "device": device_name(val.device), "device_count": device_count,
                    "img_per_s": progress.samples / max(progress.seconds, 1e-9),
                    "peak_memory_mb": peak_memory_mb(val.device)},
        "compute_total": add_prior(own, prior),
    }


def add_prior(own: dict[str, float], prior: dict[str, float] | list[dict[str, float]] | None) -> dict[str, float]:
    """Totals including upstream runs' totals (``prior``: one ``compute_total`` or a list of them,
    from their metrics.json files: 2D pre-training, lifters, pose pre-training)."""
    priors = prior if isinstance(prior, list) else [prior or {}]
    return {key: own[key] + sum(p.get(key, 0) for p in priors) for key in TOTAL_KEYS}


def curve_row(phase: str, progress: Progress, flops_per_image: int, prior_flops: float,
              loss: float, val_metric: str, val_value: float) -> dict[str, Any]:
    flops = 3 * flops_per_image * progress.samples
    return {"phase": phase, "step": progress.step, "samples": progress.samples,
            "seconds": round(progress.seconds, 3), "flops": flops, "flops_total": flops + prior_flops,
            "loss": loss, "val_metric": val_metric, "val_value": val_value}


def write_curve(path: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    """Write the learning curve as CSV (atomically)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CURVE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())
