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

Lifters (``--lifter NAME=PATH``, names in ``spec.lifters``): on 3D splits every lifter is scored
twice, on the detector's 2D (soft-argmax, β = ``spec.beta``, of its last heatmaps, in crop pixels;
heatmap lifters get the heatmaps themselves) and on the ground-truth 2D (heatmap lifters: Gaussian
maps of σ = ``spec.heatmap_sigma`` heatmap pixels at the true joints). Sequence lifters read windows
of neighbouring frames of the sample's clip. Lifted joints are placed at the ground-truth root, so
scores stay root-relative. With ``spec.primary`` the run's own 3D prediction is that lifter's (or,
for ``end_to_end``, the lifter inside ``--weights``), and the GT-2D-lifting baseline is the ground
truth 2D through it.

2D decoders: depth-map arms' own 2D is the arg-max of the heatmaps with sub-pixel refinement
(``codecs.decode_heatmaps``), while lifter arms feed lifters the soft-argmax (β = ``spec.beta``).
So that no arm is scored with a decoder the others do not get, every JSON names the decoder of
its ``metrics`` 2D (``decoder``: ``argmax_refined``, for every arm) and holds the 2D scores of
*both* decoders (``decoders``: ``{name: {metric: value}}``, ``DECODERS``; 2D splits: PCKh or PCK and
the 2D error, 3D splits: the 2D error); lifters are also scored on the arg-max 2D
(``lifters.NAME.detected_argmax_refined``), beside the soft-argmax ``detected`` input they train on.

Inputs: ``model.pt``, test splits (canonical HDF5 v1), optional training splits for the mean-pose
baseline, optional lifter weight files. Outputs: ``{testset}.json`` per test split.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pose_study import lifters as lifter_presets
from pose_study import metrics, models
from pose_study._io import write_json
from pose_study._spec import load_spec_arg, provenance, spec_to_dict
from pose_study.data import codecs
from pose_study.data.batches import SplitTensors, StreamedSplit, sequential_batches
from pose_study.data.formats import PoseSplit, check_split, read_split
from pose_study.data.poses import sequence_windows
from pose_study.lifters.inputs import MM_PER_M, lift
from pose_study.predict import back_project, crop_to_heatmap, heatmap_to_crop, network_maps
from pose_study.skeletons import CANONICAL, ROOT
from pose_study.train.checkpoint import load_weights
from pose_study.train.loop import resolve_device

log = logging.getLogger(__name__)

END_TO_END = "end_to_end"  # spec.primary naming the lifter stored inside the evaluated model.pt
MAIN_DECODER = "argmax_refined"  # the decoder of ``metrics``' 2D and of depth-map 3D, for every arm
DECODERS = {  # 2D decoder name → the Outputs field holding its crop-pixel joints
    "argmax_refined": "pred_2d",  # codecs.decode_heatmaps: arg-max + sub-pixel refinement (depth-map arms)
    "soft_argmax": "soft_2d",  # codecs.soft_argmax(β = spec.beta): what lifter arms lift
}
LIFT_BATCH = 1024  # samples per lifter forward pass (at least; lifters are small)


@dataclass(frozen=True)
class EvaluateSpec:
    """Resolved evaluation settings.

    Attributes:
        model: Preset id of the weights.
        run: Identity of the evaluated run (its results path, e.g. ``finetune_3d/3d_only/hg2/mpii/h36m/seed0``).
        batch_size: Evaluation batch size.
        flip_test: Average with the horizontally flipped image's prediction.
        device: ``auto``, ``cpu`` or ``cuda[:i]``.
        examples: Best and worst samples kept for the report (each).
        lifters: Names of the lifters given with ``--lifter NAME=PATH``, in that order
            (e.g. ``mlp_tiny/scratch``); each is scored on every 3D test split.
        primary: The lifter whose 3D becomes the run's own prediction: one of ``lifters`` or
            ``end_to_end`` (the lifter inside ``--weights``); None keeps the network's depth maps.
        beta: Soft-argmax sharpness turning the detector's heatmaps into lifter input.
        heatmap_sigma: σ in heatmap pixels of the ground-truth Gaussian heatmaps given to heatmap lifters.
    """

    model: str
    run: str
    batch_size: int = 64
    flip_test: bool = False
    device: str = "auto"
    examples: int = 3
    lifters: tuple[str, ...] = ()
    primary: str | None = None
    beta: float = 100.0
    heatmap_sigma: float = 2.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "lifters", tuple(self.lifters))
        if len(set(self.lifters)) != len(self.lifters):
            raise ValueError(f"spec.lifters names a lifter twice: {list(self.lifters)}")
        if self.primary is not None and self.primary not in (*self.lifters, END_TO_END):
            raise ValueError(f"spec.primary {self.primary!r} must be one of spec.lifters "
                             f"{list(self.lifters)} or {END_TO_END!r}")
        if self.beta <= 0 or self.heatmap_sigma <= 0:
            raise ValueError(f"spec.beta and spec.heatmap_sigma must be > 0, got {self.beta}, {self.heatmap_sigma}")


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
    soft_2d: np.ndarray | None = None
    heatmaps: np.ndarray | None = None


def run(spec: EvaluateSpec, weights: Path, tests: list[Path], outs: list[Path],
        train_2d: Path | None = None, train_3d: Path | None = None,
        lifter_weights: list[tuple[str, Path]] | None = None) -> None:
    """Evaluate ``weights`` on each of ``tests``, writing the matching file of ``outs``.

    ``lifter_weights`` are the ``--lifter NAME=PATH`` pairs; their names must be ``spec.lifters``.
    """
    if len(tests) != len(outs):
        raise ValueError(f"{len(tests)} --test splits but {len(outs)} --out files; give one --out per --test")
    for test in tests:
        check_split(test, "--test")
    for path, role, needs_3d in ((train_2d, "--train-2d", False), (train_3d, "--train-3d", True)):
        if path is not None:
            check_split(path, role, needs_3d)
    device = resolve_device(spec.device)
    model = models.build_model(spec.model).to(device)
    load_weights(weights, model, spec.model)
    model.eval()
    lifters = load_lifters(spec, weights, lifter_weights or [], device)
    mean_2d = _mean_pose(train_2d, "2d")
    mean_3d = _mean_pose(train_3d, "3d")
    for test, out in zip(tests, outs):
        write_json(out, evaluate_split(model, spec, test, mean_2d, mean_3d, testset=out.stem, lifters=lifters))
        log.info("wrote %s", out)


def load_lifters(spec: EvaluateSpec, weights: Path, given: list[tuple[str, Path]],
                 device: torch.device) -> dict[str, torch.nn.Module]:
    """The ``--lifter`` weight files by name (checked against ``spec.lifters``), plus ``end_to_end``
    (the lifter inside ``weights``) when it is the primary; each in eval mode on ``device``."""
    names = [name for name, _ in given]
    if names != list(spec.lifters):
        raise ValueError(f"--lifter names {names} must be spec.lifters {list(spec.lifters)}, in that order")
    paths = dict(given)
    if spec.primary == END_TO_END:
        paths[END_TO_END] = weights
    return {name: lifter_presets.load_lifter(path).to(device).eval() for name, path in paths.items()}


def evaluate_split(model: torch.nn.Module, spec: EvaluateSpec, test: Path,
                   mean_2d: np.ndarray | None, mean_3d: np.ndarray | None, testset: str,
                   lifters: dict[str, torch.nn.Module] | None = None) -> dict:
    """The result document for one test split; ``testset`` is its name in the study (``{dataset}_{split}``).

    ``lifters`` maps each name of ``spec.lifters`` (and ``end_to_end`` when primary) to its module.
    """
    split = read_split(test, images=False)  # labels and metadata (head boxes, actions); crops come per batch
    data = SplitTensors.load(test, next(model.parameters()).device)  # held or streamed (data_memory_mb)
    lifters = lifters or {}
    keep_maps = any(lifter.input_kind == "heatmaps" for lifter in lifters.values())
    outputs = _predict_all(model, data, spec, keep_maps)
    lifted = lift_all(lifters, outputs, split, spec) if outputs.pred_3d is not None else {}
    if spec.primary is not None and lifted:
        outputs = replace(outputs, pred_3d=lifted[spec.primary]["detected"], lifted_3d=lifted[spec.primary]["gt_2d"])
    scores = score_outputs(outputs, split.head_box, split.info.skeleton)
    primary = "mpjpe" if outputs.pred_3d is not None else next(iter(scores))
    doc = {
        "model": spec.model, "run": spec.run, "testset": testset, "dataset": split.info.dataset,
        "split": split.info.split, "source": split.info.source, "skeleton": split.info.skeleton,
        "samples": len(split), "flip_test": spec.flip_test, "kind": "3d" if split.has_3d else "2d",
        "primary_metric": primary, "decoder": MAIN_DECODER,
        "metrics": {name: score_json(s) for name, s in scores.items()},
        "decoders": decoder_scores(outputs, split),
        "per_action": per_action(scores[primary], split.action),
        "baselines": _baselines(outputs, split, mean_2d, mean_3d),
        "examples": examples(scores[primary], outputs, spec.examples, higher_is_better=primary.startswith("pck")),
        "spec": spec_to_dict(spec), "provenance": provenance(),
    }
    if spec.lifters and lifted:
        doc["lifters"] = {name: {source: _summary(_with_3d(outputs, pose), split)
                                 for source, pose in lifted[name].items()} for name in spec.lifters}
    return doc


def lift_all(lifters: dict[str, torch.nn.Module], o: Outputs, split: PoseSplit,
             spec: EvaluateSpec) -> dict[str, dict[str, np.ndarray]]:
    """Every lifter's 3D (camera mm at the true root) from the detector's 2D and from the true 2D.

    Returns:
        ``{name: {"detected": [N, K, 3], "gt_2d": [N, K, 3], "detected_argmax_refined": [N, K, 3]}}``:
        from the soft-argmax 2D, the true 2D and the arg-max 2D (heatmap lifters read the
        detector's heatmaps for both detected sources).
    """
    valid = torch.as_tensor(o.valid_2d)
    truth_maps = None
    if o.heatmaps is not None:
        truth_maps = gt_heatmaps(o.gt_2d, o.valid_2d, o.heatmaps.shape[-2:], spec.heatmap_sigma)
    inputs = {"detected": (torch.as_tensor(o.soft_2d), o.heatmaps), "gt_2d": (torch.as_tensor(o.gt_2d), truth_maps),
              "detected_argmax_refined": (torch.as_tensor(o.pred_2d), o.heatmaps)}
    root = o.gt_3d[:, ROOT:ROOT + 1]
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, lifter in tqdm(lifters.items(), desc=f"lift {split.info.dataset}/{split.info.split}", unit="lifter",
                             disable=None):
        windows = sequence_windows(split.clip, split.frame, lifter.frames) if lifter.frames > 1 else None
        out[name] = {}
        for source, (joints, maps) in inputs.items():
            maps = torch.as_tensor(maps) if lifter.input_kind == "heatmaps" else None
            pose = lift(lifter, joints.float(), valid, heatmaps=maps, windows=windows,
                        batch_size=max(spec.batch_size, LIFT_BATCH))
            out[name][source] = pose.numpy().astype(np.float64) * MM_PER_M + root
    return out


def gt_heatmaps(joints_2d: np.ndarray, valid: np.ndarray, size: tuple[int, int], sigma: float) -> np.ndarray:
    """[N, K, H, W] Gaussian heatmaps (peak 1) at crop-pixel joints, in the detector's map geometry."""
    coords = crop_to_heatmap(torch.as_tensor(joints_2d, dtype=torch.float32))
    return codecs.encode_heatmaps(coords, torch.as_tensor(valid), tuple(size), sigma).numpy()


def decoder_scores(o: Outputs, split: PoseSplit) -> dict[str, dict[str, float]]:
    """2D scores of the detector's 2D under every decoder of ``DECODERS`` (the 2D error only on 3D splits)."""
    out = {}
    for name, field in DECODERS.items():
        decoded = Outputs(getattr(o, field), o.gt_2d, o.valid_2d)
        out[name] = {"error_2d_px": _num(_error_2d(decoded).value)} if o.pred_3d is not None else _summary(decoded, split)
    return out


def _with_3d(o: Outputs, pose: np.ndarray) -> Outputs:
    return Outputs(o.pred_2d, o.gt_2d, o.valid_2d, pose, None, o.gt_3d, o.valid_3d)


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
def _predict_all(model: torch.nn.Module, data: SplitTensors | StreamedSplit, spec: EvaluateSpec,
                 keep_maps: bool = False) -> Outputs:
    """One forward pass per batch: both 2D decodes (arg-max refined, soft-argmax), and on 3D splits
    the depth-map 3D, the depth at the true 2D (and with ``keep_maps`` the last heatmaps)."""
    parts: dict[str, list[np.ndarray]] = {}
    batches = list(sequential_batches(len(data), spec.batch_size))
    for index in tqdm(batches, desc=f"evaluate {data.info.dataset}/{data.info.split}", unit="batch",
                      disable=None):
        batch = data.gather(index)
        heatmaps, depth_maps = network_maps(model, batch.images, spec.flip_test)
        coords, _ = codecs.decode_heatmaps(heatmaps)
        pred_2d = heatmap_to_crop(coords)
        got = {"pred_2d": pred_2d, "gt_2d": batch.joints_2d, "valid_2d": batch.valid_2d,
               "soft_2d": heatmap_to_crop(codecs.soft_argmax(heatmaps, spec.beta))}
        if data.has_3d:
            pred_3d = back_project(pred_2d, codecs.sample_maps(depth_maps, coords), batch)
            at_truth = codecs.sample_maps(depth_maps, crop_to_heatmap(batch.joints_2d))
            got.update(pred_3d=pred_3d, lifted_3d=back_project(batch.joints_2d, at_truth, batch),
                       gt_3d=batch.joints_3d, valid_3d=batch.valid_3d)
            if keep_maps:
                got["heatmaps"] = heatmaps
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
    parser.add_argument("--lifter", action="append", default=[], metavar="NAME=PATH", type=_lifter_arg,
                        help="a lifter weight file scored on every 3D test split; repeatable, names in "
                             "spec.lifters order (e.g. mlp_tiny/scratch=results/.../model.pt)")


def _lifter_arg(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"--lifter {text!r}: expected NAME=PATH")
    return name, Path(path)


def main(args: argparse.Namespace) -> None:
    run(load_spec_arg(EvaluateSpec, args.spec), args.weights, args.test, args.out, args.train_2d, args.train_3d,
        args.lifter)
