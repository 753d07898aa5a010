"""Loss pieces of 3D-guided detector training through lifters (Lee, Hwang, Lee: L2D-Pose).

A heatmap detector's 2D output (soft-argmax of its heatmaps) is lifted to 3D by one or several
frozen lifters; their 3D errors flow back into the detector. The pieces here are pure functions
of tensors (plus the small Dynamic Weight Average state), each with a known-answer test:

* ``hard_keypoints`` / ``ohklm_loss``: online hard keypoint mining — the heatmap loss of the
  ``top_k`` joints of each sample that the lifter gets most wrong in 3D.
* ``lifted_3d_losses``: MSE of the lifted 3D in x, y and in z (the paper weights depth double).
* ``DynamicWeightAverage``: per-lifter weights from the ratio of each lifter's last two losses.
* ``lifter_dropout``: model-wise dropout of lifters (at least one is always kept).
* ``multi_lifter_loss``: the weighted single-lifter losses plus local consistency (pairwise
  agreement between lifters) and global (mean prediction vs truth) terms.

All 3D quantities are root-relative metres, shape [B, K, 3] with a joint mask ``valid`` [B, K].

Loss scale, as in the authors' public code (github.com/knu-vis/L2D-Pose, ``run/train_hrnet.py``
and ``model_2d/hrnet/lib/core/loss.py``, commit 6780115), which fixes what the paper's λ ratios
multiply:

* heatmaps: ``JointsMSELoss`` is ½ · the per-pixel MSE, averaged over joints — so the heatmap
  and OHKLM terms here are ``heatmap_factor`` (½) · ``losses.heatmap_loss``;
* 3D: the SimpleBaseline guide works on z-scored poses (per joint and coordinate, mean and std
  of the training set's root-relative camera-frame 3D over all cameras,
  ``compute_normalization_stats_h36m.compute_mean_std``), but its output is un-normalised back to
  metres before the loss (the z-scored target line is commented out there) and every other guide
  outputs metres: ``nn.MSELoss`` of root-relative **metres**, mean over coordinates — the x,y and
  z terms here;
* local consistency: the sum over unordered pairs of lifters of their per-coordinate MSE, and
  global consistency: the per-coordinate MSE of the mean prediction (``loss_3d_cons``,
  ``loss_3d_avg``);
* DWA weights sum to 1 (``run/function.py`` ``calculate_dwa_weights``; the paper's eq. 5), and
  are 1/M before two past losses exist (the code's weights without DWA).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pose_study.train import losses


@dataclass(frozen=True)
class GuidanceSpec:
    """Weights of the guided, heatmap-only and end-to-end objectives (defaults: the L2D-Pose paper).

    Attributes:
        beta: Soft-argmax sharpness (softmax of beta · heatmap).
        top_k: Joints per sample in the online hard keypoint loss (OHKLM).
        lambda_heatmap: Weight of the heatmap loss (λ_H).
        lambda_ohklm: Weight of the OHKLM term (λ_O).
        lambda_xy: Weight of the lifted 3D x,y MSE (λ_xy).
        lambda_z: Weight of the lifted 3D z MSE (λ_z; the paper weights depth double).
        lambda_single: Weight of the whole single-lifter loss (2D and 3D terms) in the multi-lifter
            loss (eq. 8).
        lambda_local: Weight of the local (pairwise) consistency term in the multi-lifter loss.
        lambda_global: Weight of the global (mean prediction) term in the multi-lifter loss.
        heatmap_factor: Factor of the per-pixel heatmap MSE in the heatmap and OHKLM terms: ½ as
            in the public code's ``JointsMSELoss``; 1 gives the plain MSE (the pre-fix scale).
        dwa_temperature: Dynamic Weight Average temperature T.
        lifter_dropout: Probability that a lifter is left out of a step's multi-lifter loss.
        end_to_end_lambda_3d: Weight of the L1 3D loss of a trainable (end-to-end) lifter.
    """

    beta: float = 100.0
    top_k: int = 10
    lambda_heatmap: float = 0.5
    lambda_ohklm: float = 0.3
    lambda_xy: float = 0.02
    lambda_z: float = 0.04
    lambda_single: float = 0.8
    lambda_local: float = 0.03
    lambda_global: float = 0.01
    heatmap_factor: float = 0.5
    dwa_temperature: float = 2.0
    lifter_dropout: float = 0.25
    end_to_end_lambda_3d: float = 1.0

    def __post_init__(self) -> None:
        for name in ("beta", "dwa_temperature"):
            if getattr(self, name) <= 0:
                raise ValueError(f"guidance.{name} must be > 0, got {getattr(self, name)}")
        for name in ("lambda_heatmap", "lambda_ohklm", "lambda_xy", "lambda_z", "lambda_local", "lambda_global",
                     "end_to_end_lambda_3d"):
            if getattr(self, name) < 0:
                raise ValueError(f"guidance.{name} must be ≥ 0, got {getattr(self, name)}")
        if self.heatmap_factor <= 0:
            raise ValueError(f"guidance.heatmap_factor must be > 0, got {self.heatmap_factor}")
        if self.top_k < 1:
            raise ValueError(f"guidance.top_k must be ≥ 1, got {self.top_k}")
        if not 0.0 <= self.lambda_single <= 1.0:
            raise ValueError(f"guidance.lambda_single must be in [0, 1], got {self.lambda_single}")
        if not 0.0 <= self.lifter_dropout < 1.0:
            raise ValueError(f"guidance.lifter_dropout must be in [0, 1), got {self.lifter_dropout}")


def hard_keypoints(joint_errors: torch.Tensor, valid: torch.Tensor, top_k: int) -> torch.Tensor:
    """The ``top_k`` valid joints of each sample with the largest 3D error.

    Args:
        joint_errors: [B, K] per-joint 3D errors (any unit; only the order matters).
        valid: [B, K] bool; invalid joints are never picked.
        top_k: Joints per sample (fewer where fewer are valid).

    Returns:
        [B, K] bool, exactly ``min(top_k, valid joints)`` True per sample.
    """
    k = min(top_k, joint_errors.shape[1])
    ranked = torch.where(valid, joint_errors.detach().float(), torch.full_like(joint_errors, float("-inf"),
                                                                                dtype=torch.float32))
    index = ranked.topk(k, dim=1).indices
    picked = torch.zeros_like(valid).scatter(1, index, True)
    return picked & valid


def ohklm_loss(heatmaps: torch.Tensor, target_heatmaps: torch.Tensor, valid: torch.Tensor,
               joint_errors: torch.Tensor, top_k: int) -> torch.Tensor:
    """Online hard keypoint loss: the heatmap loss over each sample's ``top_k`` hardest joints.

    Args:
        heatmaps: [B, K, H, W] predicted heatmaps.
        target_heatmaps: [B, K, H, W] targets (``codecs.encode_heatmaps``).
        valid: [B, K] bool, joints with both a heatmap target and a 3D error.
        joint_errors: [B, K] 3D lifting errors (detached here: they only choose the joints).
        top_k: Joints per sample.

    Returns:
        Scalar: ``losses.heatmap_loss`` over the chosen joints; 0 if none.
    """
    return losses.heatmap_loss(heatmaps, target_heatmaps, hard_keypoints(joint_errors, valid, top_k))


def lifted_3d_losses(pred_m: torch.Tensor, target_m: torch.Tensor, valid: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Squared errors of lifted 3D joints in x, y and in z.

    Args:
        pred_m: [B, K, 3] lifted joints, metres, root-relative.
        target_m: [B, K, 3] ground truth, same units.
        valid: [B, K] bool.

    Returns:
        ``(xy_mse, z_mse, joint_errors)``: mean squared error per coordinate over the valid joints
        in x and y together, and in z (scalars, 0 if no joint is valid); and the [B, K] Euclidean
        error per joint (detached, 0 where invalid).
    """
    sq = (pred_m.float() - target_m.float()).pow(2)
    mask = valid.float()
    count = mask.sum().clamp(min=1.0)
    xy = (sq[..., :2].sum(-1) * mask).sum() / (2 * count)
    z = (sq[..., 2] * mask).sum() / count
    errors = sq.detach().sum(-1).sqrt() * mask
    return xy, z, errors


class DynamicWeightAverage:
    """Dynamic Weight Average (Liu et al. 2019) over M losses.

    w_m = exp(r_m / T) / Σ_j exp(r_j / T) with r_m = L_m(t−1) / L_m(t−2), so the weights sum to 1
    as in the paper (eq. 5) and the public code; all weights are 1/M until two previous losses
    exist. The history stays on the losses' device (no host sync).

    Args:
        num_tasks: M.
        temperature: T (larger → more uniform weights).
    """

    def __init__(self, num_tasks: int, temperature: float = 2.0) -> None:
        if num_tasks < 1:
            raise ValueError(f"num_tasks must be ≥ 1, got {num_tasks}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.num_tasks, self.temperature = num_tasks, temperature
        self.history: list[torch.Tensor] = []  # the last two loss vectors, oldest first

    def update(self, task_losses: torch.Tensor) -> None:
        """Record this step's M losses (detached)."""
        if task_losses.shape != (self.num_tasks,):
            raise ValueError(f"expected {self.num_tasks} losses, got shape {tuple(task_losses.shape)}")
        self.history = [*self.history, task_losses.detach().float()][-2:]

    def weights(self) -> torch.Tensor:
        """[M] weights summing to 1 (on the device of the recorded losses)."""
        if len(self.history) < 2:
            device = self.history[0].device if self.history else None
            return torch.full((self.num_tasks,), 1.0 / self.num_tasks, device=device)
        older, last = self.history
        ratio = last / older.clamp(min=1e-12)
        return torch.softmax(ratio / self.temperature, dim=0)

    def state_dict(self) -> dict:
        return {"history": [h.cpu() for h in self.history]}

    def load_state_dict(self, state: dict) -> None:
        self.history = [torch.as_tensor(h, dtype=torch.float32) for h in state["history"]]


def lifter_dropout(num: int, p: float, generator: torch.Generator) -> torch.Tensor:
    """Which of ``num`` lifters take part in this step: each is dropped with probability ``p``.

    Always draws ``num`` uniforms and one index from ``generator`` (a fixed number of draws, so a
    resumed run stays in step); if every lifter was dropped, the drawn index is kept.

    Returns:
        [num] bool keep mask (CPU) with at least one True.
    """
    keep = torch.rand(num, generator=generator) >= p
    rescue = torch.randint(num, (1,), generator=generator)
    if not keep.any():
        keep[rescue] = True
    return keep


def multi_lifter_loss(preds: list[torch.Tensor], target: torch.Tensor, valid: torch.Tensor, weights: torch.Tensor,
                      keep: torch.Tensor, lambda_xy: float, lambda_z: float, lambda_local: float,
                      lambda_global: float) -> dict[str, torch.Tensor]:
    """The 3D part of the multi-lifter loss of L2D-Pose.

    ``single`` = Σ_m w_m · keep_m · (λ_xy · xy_m + λ_z · z_m) is the 3D part of L_single (the caller
    adds the 2D terms and multiplies the sum by λ_single, eq. 8); ``consistency`` = λ_local · local
    + λ_global · global, where *local* is the sum over unordered pairs of kept lifters of their
    per-coordinate MSE (0 with one kept lifter) and *global* the per-coordinate MSE of the kept
    lifters' mean prediction against the truth; all over the valid joints.

    Args:
        preds: M tensors [B, K, 3], metres.
        target: [B, K, 3] ground truth, metres.
        valid: [B, K] bool.
        weights: [M] lifter weights (``DynamicWeightAverage.weights``, summing to 1).
        keep: [M] bool (``lifter_dropout``); at least one True.
        lambda_xy, lambda_z: Weights of the x,y and z MSE of each lifter.
        lambda_local, lambda_global: Weights of the consistency terms.

    Returns:
        ``single``, ``consistency``, ``local``, ``global``, ``xy`` and ``z`` (means over kept
        lifters), ``per_lifter`` ([M] λ_xy·xy + λ_z·z of every lifter, for DWA) and
        ``joint_errors`` ([B, K] mean Euclidean error of the kept lifters, detached).
    """
    keep_f = keep.to(target.device, torch.float32)
    weights = weights.to(target.device, torch.float32)
    kept = keep_f.sum().clamp(min=1.0)
    parts = [lifted_3d_losses(p, target, valid) for p in preds]
    xy, z = torch.stack([p[0] for p in parts]), torch.stack([p[1] for p in parts])
    per_lifter = lambda_xy * xy + lambda_z * z
    stacked = torch.stack([p.float() for p in preds])  # [M, B, K, 3]
    mask = valid.float()
    count = mask.sum().clamp(min=1.0)
    mean_pred = (stacked * keep_f[:, None, None, None]).sum(0) / kept
    global_ = ((mean_pred - target.float()).pow(2).sum(-1) * mask).sum() / (3 * count)
    pair_dist = (stacked[:, None] - stacked[None]).pow(2).sum(-1)  # [M, M, B, K]
    pair_mse = (pair_dist * mask).sum(dim=(2, 3)) / (3 * count)
    pair_keep = (keep_f[:, None] * keep_f[None]).triu(diagonal=1)
    local = (pair_mse * pair_keep).sum()
    single = (weights * keep_f * per_lifter).sum()
    errors = (torch.stack([p[2] for p in parts]) * keep_f[:, None, None]).sum(0) / kept
    return {"single": single, "consistency": lambda_local * local + lambda_global * global_,
            "local": local, "global": global_, "xy": (xy * keep_f).sum() / kept, "z": (z * keep_f).sum() / kept,
            "per_lifter": per_lifter.detach(), "joint_errors": errors}
