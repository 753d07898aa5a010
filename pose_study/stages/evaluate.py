"""Stage ``evaluate``: score one trained model on test splits, one JSON per test split.

Every metric that applies to the split's protocol is computed with the pure functions in
``pose_study.metrics``: 3D splits get MPJPE (H36M protocol 1), P-MPJPE, the seed's
bone-normalised MPJPE, 3DPCK@150 mm and AUC (MPI-INF-3DHP); 2D splits get PCKh@0.5 (MPII, when
head boxes exist) or torso PCK@0.2 (LSP joints, or FLIC elbows/wrists). 3D predictions use the
ground-truth root depth for back-projection (see ``pose_study.predict``).

Beside the model, each JSON holds baselines scored with the same functions: the mean training
pose, and (3D) the model's own depth lifted from the *true* 2D joints, which separates 2D error
from depth error. It also lists per-joint and per-action results and the best and worst samples
(indices + joints) for the report's example figures.

Inputs: ``model.pt``, test splits (canonical HDF5 v1), optional training splits for the mean-pose
baseline. Outputs: ``{testset}.json`` per test split.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pose_study import metrics, models
from pose_study._io import write_json
from pose_study._spec import load_spec_arg, provenance, spec_to_dict
from pose_study.data.batches import SplitTensors, sequential_batches
from pose_study.data.formats import read_split
from pose_study.predict import lift_ground_truth_2d, predict
from pose_study.skeletons import CANONICAL, ROOT
from pose_study.train.checkpoint import load_weights
from pose_study.train.loop import resolve_device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluateSpec:
    """Resolved evaluation settings.

    Attributes:
        model: Preset id of the weights.
        run: Identity of the evaluated run (its results path, e.g. ``finetune_3d/scratch/hg2/lab/seed0``).
        batch_size: Evaluation batch size.
        flip_test: Average with the horizontally flipped image's prediction.
        device: ``auto``, ``cpu`` or ``cuda[:i]``.
        examples: Best and worst samples kept for the report (each).
    """

    model: str
    run: str
    batch_size: int = 64
    flip_test: bool = False
    device: str = "auto"
    examples: int = 3


@dataclass
class Outputs:
    """Predictions and ground truth for one test split, as numpy arrays (N samples, K joints)."""

    pred_2d: np.ndarray
    gt_2d: np.ndarray
    valid_2d: np.ndarray
    pred_3d: np.ndarray | None = None
    lifted_3d: np.ndarray | None = None
    gt_3d: np.ndarray | None = None
    valid_3d: np.ndarray | None = None


def run(spec: EvaluateSpec, weights: Path, tests: list[Path], outs: list[Path],
        train_2d: Path | None = None, train_3d: Path | None = None) -> None:
    """Evaluate ``weights`` on each of ``tests``, writing the matching file of ``outs``."""
    if len(tests) != len(outs):
        raise ValueError(f"{len(tests)} --test splits but {len(outs)} --out files; give one --out per --test")
    device = resolve_device(spec.device)
    model = models.build_model(spec.model).to(device)
    load_weights(weights, model, spec.model)
    model.eval()
    mean_2d = _mean_pose(train_2d, "2d")
    mean_3d = _mean_pose(train_3d, "3d")
    for test, out in zip(tests, outs):
        write_json(out, evaluate_split(model, spec, test, mean_2d, mean_3d, testset=out.stem))
        log.info("wrote %s", out)


def evaluate_split(model: torch.nn.Module, spec: EvaluateSpec, test: Path,
                   mean_2d: np.ndarray | None, mean_3d: np.ndarray | None, testset: str) -> dict:
    """The result document for one test split; ``testset`` is its name in the study (``{dataset}_{split}``)."""
    split = read_split(test)  # one read: the tensors below and the metadata (head boxes, actions)
    data = SplitTensors(split, next(model.parameters()).device)
    outputs = _predict_all(model, data, spec)
    scores = score_outputs(outputs, split.head_box, split.info.skeleton)
    primary = "mpjpe" if outputs.pred_3d is not None else next(iter(scores))
    return {
        "model": spec.model, "run": spec.run, "testset": testset, "dataset": split.info.dataset,
        "split": split.info.split, "source": split.info.source, "skeleton": split.info.skeleton,
        "samples": len(split), "flip_test": spec.flip_test, "kind": "3d" if split.has_3d else "2d",
        "primary_metric": primary,
        "metrics": {name: score_json(s) for name, s in scores.items()},
        "per_action": per_action(scores[primary], split.action),
        "baselines": _baselines(outputs, split, mean_2d, mean_3d),
        "examples": examples(scores[primary], outputs, spec.examples, higher_is_better=primary.startswith("pck")),
        "spec": spec_to_dict(spec), "provenance": provenance(),
    }


def score_outputs(o: Outputs, head_box: np.ndarray | None, skeleton: str) -> dict[str, metrics.Score]:
    """Every metric that applies to the split, primary metric first."""
    if o.pred_3d is not None:
        return {
            "mpjpe": metrics.mpjpe(o.pred_3d, o.gt_3d, o.valid_3d),
            "p_mpjpe": metrics.p_mpjpe(o.pred_3d, o.gt_3d, o.valid_3d),
            "n_mpjpe": metrics.n_mpjpe(o.pred_3d, o.gt_3d, o.valid_3d),
            "pck3d": metrics.pck3d(o.pred_3d, o.gt_3d, o.valid_3d),
            "auc": metrics.auc(o.pred_3d, o.gt_3d, o.valid_3d),
            "error_2d_px": _error_2d(o),
        }
    if skeleton == "mpii16" and head_box is not None:
        return {"pckh": metrics.pckh(o.pred_2d, o.gt_2d, o.valid_2d, head_box), "error_2d_px": _error_2d(o)}
    joints = metrics.FLIC_PCK_JOINTS if skeleton == "flic11" else metrics.LSP_PCK_JOINTS
    return {"pck": metrics.pck(o.pred_2d, o.gt_2d, o.valid_2d, joints=joints), "error_2d_px": _error_2d(o)}


def score_json(score: metrics.Score) -> dict:
    """A Score as JSON: value, per-joint values by joint name, counts."""
    per_joint = {CANONICAL.joints[j]: _num(score.per_joint[j]) for j in score.joints}
    return {"value": _num(score.value), "per_joint": per_joint, "count": int(score.count),
            "empty_samples": int(score.empty_samples)}


def per_action(score: metrics.Score, actions: np.ndarray) -> dict[str, float]:
    """Mean of the per-sample values within each action (samples without an action are skipped)."""
    out = {}
    for action in sorted({a for a in actions if a}):
        values = score.per_sample[actions == action]
        out[action] = _num(np.nanmean(values)) if np.isfinite(values).any() else None
    return out


def examples(score: metrics.Score, o: Outputs, count: int, higher_is_better: bool) -> dict[str, list]:
    """The ``count`` best and worst scorable samples with their 2D joints (crop pixels)."""
    order = [i for i in np.argsort(score.per_sample) if np.isfinite(score.per_sample[i])]
    if higher_is_better:
        order = order[::-1]

    def item(i: int) -> dict:
        return {"index": int(i), "value": _num(score.per_sample[i]), "pred_2d": o.pred_2d[i].round(2).tolist(),
                "gt_2d": o.gt_2d[i].round(2).tolist(), "valid": o.valid_2d[i].tolist()}

    return {"best": [item(i) for i in order[:count]], "worst": [item(i) for i in order[::-1][:count]]}


# --- prediction and baselines ---------------------------------------------------------------------


@torch.no_grad()
def _predict_all(model: torch.nn.Module, data: SplitTensors, spec: EvaluateSpec) -> Outputs:
    parts: dict[str, list[np.ndarray]] = {}
    batches = list(sequential_batches(len(data), spec.batch_size))
    for index in tqdm(batches, desc=f"evaluate {data.info.dataset}/{data.info.split}", unit="batch",
                      disable=None):
        batch = data.gather(index)
        pred = predict(model, batch, spec.flip_test)
        got = {"pred_2d": pred.joints_2d, "gt_2d": batch.joints_2d, "valid_2d": batch.valid_2d}
        if data.has_3d:
            got.update(pred_3d=pred.joints_3d, lifted_3d=lift_ground_truth_2d(model, batch),
                       gt_3d=batch.joints_3d, valid_3d=batch.valid_3d)
        for name, value in got.items():
            parts.setdefault(name, []).append(value.float().cpu().numpy() if value.is_floating_point()
                                              else value.cpu().numpy())
    return Outputs(**{name: np.concatenate(v) for name, v in parts.items()})


def _baselines(o: Outputs, split, mean_2d: np.ndarray | None, mean_3d: np.ndarray | None) -> dict:
    out = {}
    if o.pred_3d is not None:
        if mean_3d is not None:
            pose = np.broadcast_to(mean_3d, o.gt_3d.shape) + o.gt_3d[:, ROOT:ROOT + 1]
            out["mean_pose"] = _summary(Outputs(o.gt_2d, o.gt_2d, o.valid_2d, pose, None, o.gt_3d, o.valid_3d), split)
        out["gt_2d_lifting"] = _summary(
            Outputs(o.gt_2d, o.gt_2d, o.valid_2d, o.lifted_3d, None, o.gt_3d, o.valid_3d), split)
    elif mean_2d is not None:
        pose = np.broadcast_to(mean_2d, o.gt_2d.shape)
        out["mean_pose"] = _summary(Outputs(pose, o.gt_2d, o.valid_2d), split)
    return out


def _summary(o: Outputs, split) -> dict[str, float]:
    scores = score_outputs(o, split.head_box, split.info.skeleton)
    return {name: _num(s.value) for name, s in scores.items() if name != "error_2d_px" or o.pred_3d is None}


def _mean_pose(path: Path | None, kind: str) -> np.ndarray | None:
    """[K, D] mean training pose: root-relative mm (3D) or crop pixels (2D), over valid joints."""
    if path is None:
        return None
    split = read_split(path, images=False)
    if kind == "3d":
        if not split.has_3d:
            raise ValueError(f"{path}: the mean-pose baseline for 3D needs a split with joints_3d")
        joints, valid = split.joints_3d - split.joints_3d[:, ROOT:ROOT + 1], split.joints_3d_valid
    else:
        joints, valid = split.joints_2d, split.joints_2d_valid
    weight = valid[..., None].astype(np.float64)
    return (joints * weight).sum(0) / np.maximum(weight.sum(0), 1)


def _error_2d(o: Outputs) -> metrics.Score:
    """Mean 2D joint error in crop pixels (the 2D points padded with z = 0 so MPJPE's code applies)."""
    def pad(x: np.ndarray) -> np.ndarray:
        return np.concatenate([x, np.zeros_like(x[..., :1])], axis=-1)

    return metrics.mpjpe(pad(o.pred_2d), pad(o.gt_2d), o.valid_2d, root=None)


def _num(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 5)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", required=True, help="EvaluateSpec as inline JSON or a spec.json path")
    parser.add_argument("--weights", type=Path, required=True, help="model.pt of the run to evaluate")
    parser.add_argument("--test", type=Path, action="append", required=True, help="test split (.h5); repeatable")
    parser.add_argument("--out", type=Path, action="append", required=True,
                        help="result JSON for the matching --test; repeatable")
    parser.add_argument("--train-2d", type=Path, help="2D training split for the mean-pose baseline")
    parser.add_argument("--train-3d", type=Path, help="3D training split for the mean-pose baseline")


def main(args: argparse.Namespace) -> None:
    run(load_spec_arg(EvaluateSpec, args.spec), args.weights, args.test, args.out, args.train_2d, args.train_3d)
