"""The detector's training task (``pretrain_2d``, ``finetune_3d``) for the one loop (``train.loop``).

A batch mixes the 3D and 2D training sets in a fixed proportion and is augmented on the device;
the forward runs under bf16 autocast (on CUDA, and on CPUs with native bf16), the loss (an ``Objective``) in fp32. Validation
scores 3D splits by MPJPE (the network's own depth, or a lifter fed with its heatmaps) and 2D
splits by the mean 2D error in crop pixels.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from pose_study import metrics
from pose_study.data.batches import SplitTensors, concat_batches, random_indices, sequential_batches
from pose_study.data.transforms import Batch, apply_affines, apply_colours, sample_affines, sample_colours
from pose_study.predict import predict
from pose_study.train.loop import LoopSpec
from pose_study.train.objective import DepthObjective, Objective, lift_heatmaps


@dataclass
class TrainData:
    """The splits a run reads. ``val`` decides the validation metric (MPJPE if it has 3D)."""

    val: SplitTensors
    train_2d: SplitTensors | None = None
    train_3d: SplitTensors | None = None


@dataclass
class DetectorTask:
    """Training a detector on image batches (the loop's ``Task``).

    Attributes:
        data: Training and validation splits.
        spec: Loop settings (batch size, augmentation, AMP, channels_last, heatmap σ, validation size).
        objective: What is optimised; ``DepthObjective()`` by default.
        fraction_3d: Share of each batch drawn from the 3D training set (0 = 2D only, 1 = 3D only).
    """

    data: TrainData
    spec: LoopSpec
    objective: Objective = field(default_factory=DepthObjective)
    fraction_3d: float = 0.0

    @property
    def batch_size(self) -> int:
        return self.spec.batch_size

    @property
    def unused_parameters(self) -> bool:
        return not self.objective.uses_depth

    def draw(self, generator: torch.Generator) -> Batch:
        return draw_batch(self.data, self.spec, self.fraction_3d, generator)

    def loss(self, net: torch.nn.Module, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        images = batch.images.contiguous(memory_format=torch.channels_last) if self.spec.channels_last else batch.images
        with _autocast(batch.images.device, self.spec.amp):
            outputs = net(images)
        return self.objective(outputs, batch, self.spec.heatmap_sigma, generator)

    def validate(self, model: torch.nn.Module) -> tuple[str, float]:
        return validate(model, self.data.val, self.spec.eval_samples, self.spec.batch_size,
                        self.objective.val_lifter, self.objective.beta, self.objective.val_windows)

    def state_dict(self) -> dict:
        return self.objective.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.objective.load_state_dict(state)


def draw_batch(data: TrainData, spec: LoopSpec, fraction_3d: float, generator: torch.Generator) -> Batch:
    """An augmented batch whose first part comes from the 3D set and the rest from the 2D set.

    Draws the indices, then the augmentations, from ``generator`` (in that order). The 3D flags
    and the affine maps are built on the host and sent non-blocking, so nothing here waits for
    the device.
    """
    b = spec.batch_size
    n3 = int(round(b * fraction_3d))
    parts, flags = [], []
    for source, count in ((data.train_3d, n3), (data.train_2d, b - n3)):
        if count == 0:
            continue
        if source is None:
            raise ValueError(f"a batch with {fraction_3d:.0%} 3D samples needs "
                             f"{'3D' if source is data.train_3d else '2D'} training data, but none was given")
        parts.append(source.gather(random_indices(len(source), count, generator)))
        flags.append(torch.full((count,), source.has_3d))
    batch = concat_batches(parts)
    affines = sample_affines(b, torch.cat(flags), spec.augment, generator)
    colours = sample_colours(b, spec.augment, generator)
    batch = apply_affines(batch, affines.to(batch.images.device, non_blocking=True))
    if colours is not None:
        batch = replace(batch, images=apply_colours(batch.images, colours))
    return batch


def validate(model: torch.nn.Module, val: SplitTensors, max_samples: int, batch_size: int,
             lifter: torch.nn.Module | None = None, beta: float = 100.0,
             windows: torch.Tensor | None = None) -> tuple[str, float]:
    """Validation metric on an evenly spaced subset of ``val``: (name, value), lower is better.

    3D splits: MPJPE in mm (root-relative; from the depth maps with the GT root depth, or, given
    a ``lifter``, from the lifter fed with the detector's last heatmaps — ``lift_heatmaps``; a
    sequence lifter with ``windows`` reads the detector's 2D of each sample's window,
    ``validate_sequence``). 2D splits: mean 2D error in crop pixels.
    """
    model.eval()
    if windows is not None and lifter is not None and val.has_3d:
        return validate_sequence(model, val, max_samples, batch_size, lifter, windows, beta)
    index = _spaced(len(val), max_samples)
    preds, gts, valids = [], [], []
    for chunk in sequential_batches(len(index), batch_size):
        batch = val.gather(index[chunk])
        if val.has_3d:
            joints_3d = predict(model, batch).joints_3d if lifter is None else _lifted_mm(model, lifter, batch, beta)
            preds.append(joints_3d.cpu().numpy()), gts.append(batch.joints_3d.cpu().numpy())
            valids.append(batch.valid_3d.cpu().numpy())
        else:
            preds.append(predict(model, batch).joints_2d.cpu().numpy()), gts.append(batch.joints_2d.cpu().numpy())
            valids.append(batch.valid_2d.cpu().numpy())
    pred, gt, valid = (np.concatenate(x) for x in (preds, gts, valids))
    if val.has_3d:
        return "mpjpe_mm", float(metrics.mpjpe(pred, gt, valid).value)
    err = np.linalg.norm(pred - gt, axis=-1)
    return "error_2d_px", float(err[valid].mean()) if valid.any() else float("nan")


def _spaced(n: int, count: int) -> torch.Tensor:
    """At most ``count`` evenly spaced indices of ``n`` rows."""
    return torch.from_numpy(np.unique(np.linspace(0, n - 1, min(count, n)).astype(np.int64)))


@torch.no_grad()
def validate_sequence(model: torch.nn.Module, val: SplitTensors, max_samples: int, batch_size: int,
                      lifter: torch.nn.Module, windows: torch.Tensor,
                      beta: float = 100.0) -> tuple[str, float]:
    """MPJPE (mm) of a T-frame sequence lifter fed with the detector's soft-argmax 2D of whole windows.

    ``max_samples // T`` evenly spaced samples (at least one) are scored at their window's centre,
    so the detector sees about ``max_samples`` images, as a single-frame validation does.

    Args:
        model: The detector (eval mode is the caller's).
        val: A 3D validation split.
        max_samples: Detector images to spend, about.
        batch_size: Images per forward pass.
        lifter: A sequence lifter taking coords.
        windows: [len(val), T] rows of each sample's window (``data.poses.sequence_windows``).
        beta: Soft-argmax sharpness.
    """
    from pose_study.data import codecs
    from pose_study.lifters.inputs import lift
    from pose_study.predict import heatmap_to_crop

    windows = torch.as_tensor(windows, dtype=torch.int64).cpu()
    if windows.shape[0] != len(val):
        raise ValueError(f"windows has {windows.shape[0]} rows for a validation split of {len(val)} samples")
    centres = _spaced(len(val), max(1, max_samples // windows.shape[1]))
    rows = torch.unique(windows[centres].flatten())  # the images the windows need, once each
    detected = []
    for chunk in sequential_batches(len(rows), batch_size):
        heatmaps = model(val.gather(rows[chunk]).images)["heatmaps"].float()
        detected.append(heatmap_to_crop(codecs.soft_argmax(heatmaps, beta)).cpu())
    joints_2d = torch.cat(detected)
    position = torch.full((len(val),), -1, dtype=torch.int64)
    position[rows] = torch.arange(len(rows))
    own = position[centres]
    # rows that are not scored get a window of themselves
    local = torch.arange(len(rows))[:, None].expand(-1, windows.shape[1]).clone()
    local[own] = position[windows[centres]]
    valid = torch.ones(joints_2d.shape[:2], dtype=torch.bool)
    pose = lift(lifter, joints_2d, valid, windows=local)[own].float() * 1000.0
    truth = val.gather(centres)
    return "mpjpe_mm", float(metrics.mpjpe(pose.cpu().numpy(), truth.joints_3d.cpu().numpy(),
                                           truth.valid_3d.cpu().numpy()).value)


@torch.no_grad()
def _lifted_mm(model: torch.nn.Module, lifter: torch.nn.Module, batch: Batch, beta: float) -> torch.Tensor:
    """[B, K, 3] root-relative mm: ``lifter`` on the detector's last heatmaps (eval mode is the caller's)."""
    return lift_heatmaps(lifter, model(batch.images)["heatmaps"].float(), beta).float() * 1000.0


def _autocast(device: torch.device, amp: bool):
    """bf16 autocast where the device computes bf16 natively: CUDA, or a CPU with AVX512-BF16/AMX
    (oneDNN's bf16 kernels; elsewhere bf16 would be emulated and slower than fp32)."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if amp and device.type == "cpu" and cpu_has_native_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 instructions that oneDNN uses (AVX512-BF16 or AMX)."""
    return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
