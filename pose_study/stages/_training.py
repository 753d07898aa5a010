"""Plumbing shared by the training stages: build, train, write ``model.pt``/``metrics.json``/``curve.csv``.

``run_training`` serves the detector stages; ``train_and_write`` (validate, train through the one
loop, write) serves every training stage, the pose-only ones via ``_pose_training``.

Resources: ``build`` sets the CPU threads by the rule in ``pose_study.train.distributed`` (the
rule's ``threads`` via ``OMP_NUM_THREADS`` under Snakemake) and joins a torchrun job when there is
one (one process per GPU); only rank 0 writes outputs, and the compute totals count every device.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pose_study import lifters, models
from pose_study._io import write_json
from pose_study._spec import spec_record
from pose_study.data.batches import SplitTensors
from pose_study.train import accounting, distributed
from pose_study.train.checkpoint import save_weights
from pose_study.train.detection import TrainData
from pose_study.train.loop import LoopSpec, Phase, fingerprint, resolve_device, train
from pose_study.train.objective import DetectorWithLifter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOutputs:
    """Where a training stage writes: declared outputs plus the checkpoint folder (not an output)."""

    model: Path
    metrics: Path
    curve: Path
    checkpoint_dir: Path

    @property
    def spec_json(self) -> Path:
        return self.model.parent / "spec.json"


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-out", type=Path, required=True, help="trained weights (model.pt)")
    parser.add_argument("--metrics-out", type=Path, required=True, help="metrics.json: final metrics + compute")
    parser.add_argument("--curve-out", type=Path, required=True, help="curve.csv: the learning curve")
    parser.add_argument("--checkpoint-dir", type=Path, required=True,
                        help="resume state; keep it outside the stage's outputs (Snakemake deletes those)")


def outputs_from_args(args: argparse.Namespace) -> TrainOutputs:
    return TrainOutputs(args.model_out, args.metrics_out, args.curve_out, args.checkpoint_dir)


def load_data(val: Path, device: torch.device, train_2d: Path | None = None,
              train_3d: Path | None = None) -> TrainData:
    def load(path: Path | None) -> SplitTensors | None:
        return SplitTensors.load(path, device) if path else None

    return TrainData(val=load(val), train_2d=load(train_2d), train_3d=load(train_3d))


def build(preset: str, loop: LoopSpec, pretrained: str | None = None) -> tuple[torch.nn.Module, torch.device]:
    """The model on its device (channels_last when asked), seeded for reproducible init.

    Also sets the CPU threads and, under torchrun, joins the process group (``cuda:LOCAL_RANK``).
    """
    distributed.configure_threads()
    info = distributed.init(loop.device)
    torch.manual_seed(loop.seed)
    device = distributed.device_for(resolve_device(loop.device), info)
    model = models.build_model(preset, pretrained=pretrained).to(device)
    if loop.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, device


def run_training(stage: str, spec: Any, model: torch.nn.Module, preset: str, phases: list[Phase],
                 data: TrainData, out: TrainOutputs, prior: dict | list[dict] | None = None,
                 extra: dict | None = None, extra_flops: int = 0) -> dict:
    """Train a detector and write every output of a training stage; returns the metrics written.

    Under torchrun only rank 0 validates and writes; the other ranks return ``{}``.

    Args:
        stage: Stage name (``metrics.json`` "stage").
        spec: The stage's spec (written to ``spec.json``; its fingerprint keys the checkpoint; its
            ``loop`` holds the loop settings).
        model: The network on its device: a detector, or a ``DetectorWithLifter`` (``model.pt``
            then holds the detector plus a ``lifter`` entry).
        preset: The detector's preset name.
        phases: Run in order.
        data: Training and validation splits.
        out: Where to write.
        prior: ``compute_total`` of the upstream run(s) whose compute this run carries.
        extra: More ``metrics.json`` entries.
        extra_flops: Forward FLOPs per training image outside ``model`` (frozen lifters in the loss).
    """
    try:
        info = distributed.current()
        flops = models.forward_flops(model, data.val.crop_size) + extra_flops
        identity = {"inputs": input_identity(data.val, data.train_2d, data.train_3d)}
        if info.enabled:  # a checkpoint of another world size is another run (the global batch differs)
            identity["world_size"] = info.world_size
        return train_and_write(stage, spec, model, preset, phases, out, data.val, flops, fingerprint(spec, identity),
                               prior, extra or {}, lambda path, m: _save_model(path, m, preset))
    finally:
        distributed.cleanup()


def train_and_write(stage: str, spec: Any, model: torch.nn.Module, preset: str, phases: list[Phase],
                    out: TrainOutputs, val: Any, flops: int, run_id: str, prior: dict | list[dict] | None,
                    extra: dict, save_model: Callable[[Path, torch.nn.Module], None]) -> dict:
    """Validate, train through the loop (``spec.loop``), write model.pt, curve.csv, metrics.json, spec.json.

    Args:
        stage, spec, model, preset, phases, out, prior, extra: As ``run_training``.
        val: The validation split (``crop_size``, ``info.source``, ``device`` for ``metrics.json``).
        flops: Forward FLOPs per training sample.
        run_id: The run's fingerprint (``loop.fingerprint``).
        save_model: Writes ``model.pt``: ``(path, model)``.
    """
    info = distributed.current()
    if info.is_main:
        write_json(out.spec_json, spec_record(spec))
    first_metric = phases[0].task.validate(model) if info.is_main else None
    progress = train(model, phases, spec.loop, out.checkpoint_dir, flops, accounting.prior_flops(prior), run_id)
    if not info.is_main:
        return {}
    result = {**accounting.run_metrics(stage, preset, val, models.count_parameters(model), flops, progress,
                                       first_metric[1], prior, info.world_size), **extra}
    save_model(out.model, model)
    accounting.write_curve(out.curve, progress.curve)
    write_json(out.metrics, result)
    final, own = result["final"], result["compute"]
    log.info("%s %s done: %s = %.3f (from %.3f) in %.0f s, %.3g training FLOPs", stage, preset, final["metric"],
             final["value"], final["initial_value"], own["wall_seconds"], own["train_flops"])
    return result


def _save_model(path: Path, model: torch.nn.Module, preset: str) -> None:
    """``model.pt``: the detector, plus the ``lifter`` record of an end-to-end run."""
    if isinstance(model, DetectorWithLifter):
        save_weights(path, model.detector, preset, {"lifter": lifters.lifter_record(model.lifter)})
    else:
        save_weights(path, model, preset)


def read_prior(metrics_path: Path | None) -> dict | None:
    """``compute_total`` of an upstream run's metrics.json (the pre-training cost), or None."""
    if metrics_path is None:
        return None
    with open(metrics_path, encoding="utf-8") as f:
        return json.load(f)["compute_total"]


def read_priors(metrics_paths: list[Path]) -> list[dict]:
    """``compute_total`` of every upstream run's metrics.json, in order."""
    return [read_prior(path) for path in metrics_paths]


def input_identity(*splits: Any) -> list:
    """What identifies a run's inputs in its fingerprint: (dataset, split, size) per split, or None."""
    return [(s.info.dataset, s.info.split, len(s)) if s is not None else None for s in splits]
