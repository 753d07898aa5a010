"""Training lifters on poses alone (``train_lifter``, ``pretrain_pose``): the loop's ``PoseTask``.

A lifter learns 2D→3D from joints, without images. Per step the loop draws a batch
(``sample(batch_size, generator)``), flips half of it left/right and adds Gaussian noise to its 2D
joints (``augment``), and the task's loss (``loss(model, batch, generator)``, a dict with
``"total"``) is minimised. Every random draw comes from the loop's CPU generator, so the draws do
not depend on the device. Validation: MPJPE (mm, root-relative) from ground-truth 2D
(``validate_lifter``). Schedule, NaN guard, checkpoints, resume and SIGTERM are the loop's
(``pose_study.train.loop``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pose_study import metrics
from pose_study.data.codecs import encode_heatmaps
from pose_study.data.poses import PoseData
from pose_study.data.poses import PoseBatch
from pose_study.lifters.inputs import normalise_2d, relative_3d
from pose_study.predict import STRIDE, crop_to_heatmap
from pose_study.skeletons import CANONICAL
from pose_study.train.loop import LoopSpec

LossFn = Callable[[nn.Module, PoseBatch, torch.Generator], dict[str, torch.Tensor]]
Sampler = Callable[[int, torch.Generator], PoseBatch]
EVAL_BATCH = 1024


# --- augmentation ---------------------------------------------------------------------------------


def flip_batch(batch: PoseBatch, flip: torch.Tensor) -> PoseBatch:
    """Mirror the samples where ``flip`` ([B] bool) is True: 2D about the crop centre, 3D x → −x.

    Left and right joints swap (``CANONICAL.flip_permutation``) and the intrinsics of 3D samples
    change so that the flipped 2D joints stay the projection of the flipped 3D joints.
    """
    perm = torch.as_tensor(CANONICAL.flip_permutation(), device=batch.joints_2d.device)
    last = batch.crop_size - 1.0  # pixel centres at integers: x ↦ (S − 1) − x
    mirror = torch.tensor([[-1.0, 0.0, last], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], device=batch.intrinsics.device)
    negate_x = torch.tensor([-1.0, 1.0, 1.0], device=batch.intrinsics.device)
    j2 = batch.joints_2d[:, :, perm] * torch.tensor([-1.0, 1.0], device=batch.joints_2d.device)
    j2 = j2 + torch.tensor([last, 0.0], device=j2.device)
    j3 = batch.joints_3d[:, :, perm] * negate_x
    k = mirror @ batch.intrinsics * negate_x  # K' = F K diag(-1, 1, 1)
    f2, f3 = flip[:, None, None, None], flip[:, None, None]
    camera = (flip & batch.is_3d)[:, None, None, None]  # 2D-only samples keep their identity intrinsics
    return PoseBatch(torch.where(f2, j2, batch.joints_2d), torch.where(f3, batch.valid_2d[:, :, perm], batch.valid_2d),
                     torch.where(f2, j3, batch.joints_3d), torch.where(f3, batch.valid_3d[:, :, perm], batch.valid_3d),
                     torch.where(camera, k, batch.intrinsics), batch.is_3d, batch.crop_size)


def augment(batch: PoseBatch, noise_px: float, flip: bool, generator: torch.Generator) -> PoseBatch:
    """Random left/right flips (p = 0.5 per sample), then Gaussian noise on the 2D joints.

    Draws the flips, then the noise, from ``generator`` (on the host), so the draws do not depend
    on the device.
    """
    device = batch.joints_2d.device
    if flip:
        flags = torch.rand(len(batch.is_3d), generator=generator) < 0.5
        batch = flip_batch(batch, flags.to(device, non_blocking=True))
    if noise_px > 0:
        noise = torch.randn(batch.joints_2d.shape, generator=generator) * noise_px
        batch = PoseBatch(batch.joints_2d + noise.to(device, non_blocking=True), batch.valid_2d, batch.joints_3d,
                          batch.valid_3d, batch.intrinsics, batch.is_3d, batch.crop_size)
    return batch


# --- lifter inputs and targets --------------------------------------------------------------------


def lifter_inputs(model: nn.Module, batch: PoseBatch, heatmap_sigma: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The lifter's input for ``batch``: normalised coords [B, T, K, 2] (T = ``model.frames``), or
    Gaussian heatmaps of the centre frame's 2D joints [B, K, S/4, S/4] for heatmap lifters."""
    if model.input_kind == "heatmaps":
        centre = batch.centre()
        size = batch.crop_size // STRIDE
        joints = crop_to_heatmap(centre.joints_2d[:, 0])
        return encode_heatmaps(joints, centre.valid_2d[:, 0], size, heatmap_sigma), centre.valid_2d[:, 0]
    if batch.frames != model.frames:
        t0 = (batch.frames - model.frames) // 2
        batch = PoseBatch(*(getattr(batch, n)[:, t0:t0 + model.frames] for n in
                            ("joints_2d", "valid_2d", "joints_3d", "valid_3d", "intrinsics")),
                          batch.is_3d, batch.crop_size)
    return normalise_2d(batch.joints_2d, batch.valid_2d), batch.valid_2d


def centre_targets(batch: PoseBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Root-relative 3D joints of the centre frame in metres [B, K, 3] and their validity [B, K]."""
    centre = batch.centre()
    return relative_3d(centre.joints_3d[:, 0], centre.valid_3d[:, 0]), centre.valid_3d[:, 0]


def masked_mse(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the coordinates of valid joints (0 when none is valid)."""
    weight = valid.unsqueeze(-1).to(pred.dtype).expand_as(pred)
    return ((pred - target) ** 2 * weight).sum() / weight.sum().clamp(min=1.0)


def centre_mse_loss(model: nn.Module, batch: PoseBatch, generator: torch.Generator,  # noqa: ARG001
                    heatmap_sigma: float = 2.0) -> dict[str, torch.Tensor]:
    """The single-frame lifter loss: MSE (metres) of the centre frame's root-relative 3D joints
    (heatmap lifters read Gaussian heatmaps of σ = ``heatmap_sigma`` heatmap px)."""
    x, valid = lifter_inputs(model, batch, heatmap_sigma)
    target, target_valid = centre_targets(batch)
    pose = masked_mse(model(x, valid), target, target_valid)
    return {"total": pose, "pose": pose}


# --- validation -----------------------------------------------------------------------------------


def validate_lifter(model: nn.Module, val: PoseData, max_samples: int, heatmap_sigma: float = 2.0,
                    batch_size: int = EVAL_BATCH) -> tuple[str, float]:
    """MPJPE (mm, root-relative) from ground-truth 2D on an evenly spaced subset of ``val``."""
    index = torch.from_numpy(np.unique(np.linspace(0, len(val) - 1, min(max_samples, len(val))).astype(np.int64)))
    was_training = model.training
    model.eval()
    preds, gts, valids = [], [], []
    with torch.no_grad():
        for start in range(0, len(index), batch_size):
            batch = val.gather(index[start:start + batch_size])
            x, valid = lifter_inputs(model, batch, heatmap_sigma)
            centre = batch.centre()
            preds.append((model(x, valid) * 1000.0).float().cpu().numpy())
            gts.append(centre.joints_3d[:, 0].cpu().numpy())
            valids.append(centre.valid_3d[:, 0].cpu().numpy())
    model.train(was_training)
    pred, gt, valid = (np.concatenate(a) for a in (preds, gts, valids))
    return "mpjpe_mm", float(metrics.mpjpe(pred, gt, valid).value)


# --- the task -------------------------------------------------------------------------------------


@dataclass
class PoseTask:
    """Training a lifter on poses (the loop's ``Task``).

    Attributes:
        loss_fn: ``(model, batch, generator) -> {"total": ..., ...}``.
        sample: ``(batch_size, generator) -> PoseBatch`` (un-augmented).
        val: The validation split (MPJPE from ground-truth 2D).
        spec: Loop settings (batch size, heatmap σ of heatmap lifters, validation size).
        noise_px: Standard deviation of the Gaussian noise added to the 2D joints (crop px).
        flip: Mirror a random half of every batch left/right.
    """

    loss_fn: LossFn
    sample: Sampler
    val: PoseData
    spec: LoopSpec
    noise_px: float = 0.0
    flip: bool = True
    unused_parameters: bool = False

    @property
    def batch_size(self) -> int:
        return self.spec.batch_size

    def draw(self, generator: torch.Generator) -> PoseBatch:
        return augment(self.sample(self.spec.batch_size, generator), self.noise_px, self.flip, generator)

    def loss(self, net: nn.Module, batch: PoseBatch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return self.loss_fn(net, batch, generator)

    def validate(self, model: nn.Module) -> tuple[str, float]:
        return validate_lifter(model, self.val, self.spec.eval_samples, self.spec.heatmap_sigma)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:  # noqa: ARG002 - stateless
        return None
