"""The study matrix a config expects: every training run and every evaluation, with its path.

The workflow lays results out as (relative to ``results/{study}/``)::

    pretrain_2d/{model}/{dataset2d}/seed{seed}/                         training run
    pretrain_pose/{lifter}/{dataset3d}/seed{seed}/                      pose-only pre-training run
    train_lifter/{lifter}/{init}/{dataset3d}/seed{seed}/                lifter training run
    finetune_3d/{arm}/{model}/{dataset2d}/{dataset3d}/seed{seed}/       training run
    evaluate/<training run path>/{testset}.json                         one evaluation

A run's path below ``results/{study}/`` is its identity (``RunKey.path``). Test sets are named
``{dataset}_{split}``: 3D test datasets are scored on their ``test`` split, 2D test datasets on
their ``val`` split. Fine-tuned models are scored on every 3D and 2D test set; pre-trained (2D)
models on the 2D test sets; lifter runs have no evaluation of their own (the lifter arms'
evaluations score every lifter). Pre-training and lifter runs exist when some arm needs them
(``pose_study.arms.ARMS``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pose_study.arms import ARMS, BASELINE, upstream_lifter_runs

PRETRAIN_STAGE = "pretrain_2d"
FINETUNE_STAGE = "finetune_3d"
LIFTER_STAGE = "train_lifter"
POSE_PRETRAIN_STAGE = "pretrain_pose"
LIFTER_INITS = ("scratch", "pretrain_pose")
ZERO_SHOT = "zero_shot"  # evaluation name of the heatmap lifter straight from pose pre-training
END_TO_END = "end_to_end"  # primary of the mpt arm: the lifter inside its own model.pt
BASELINE_ARM = BASELINE  # the 3D-only arm every other arm is compared against
SPLIT_3D_TEST = "test"
SPLIT_2D_TEST = "val"


@dataclass(frozen=True, order=True)
class RunKey:
    """One training run.

    Attributes:
        stage: ``pretrain_2d``, ``pretrain_pose``, ``train_lifter`` or ``finetune_3d``.
        arm: Pre-training strategy of a fine-tuning run; the init (``scratch`` | ``pretrain_pose``) of
            a lifter run; ``""`` for a pre-training run.
        model: Detector preset id, or the lifter preset id of a lifter/pose pre-training run.
        dataset_2d: 2D training dataset id; ``""`` for lifter and pose pre-training runs.
        dataset_3d: 3D training dataset id; ``""`` for a 2D pre-training run.
        seed: Training seed.
    """

    stage: str
    arm: str
    model: str
    dataset_2d: str
    dataset_3d: str
    seed: int

    @property
    def path(self) -> str:
        """The run's results path relative to ``results/{study}/`` (its identity)."""
        if self.stage == PRETRAIN_STAGE:
            return f"{self.stage}/{self.model}/{self.dataset_2d}/seed{self.seed}"
        if self.stage == POSE_PRETRAIN_STAGE:
            return f"{self.stage}/{self.model}/{self.dataset_3d}/seed{self.seed}"
        if self.stage == LIFTER_STAGE:
            return f"{self.stage}/{self.model}/{self.arm}/{self.dataset_3d}/seed{self.seed}"
        return f"{self.stage}/{self.arm}/{self.model}/{self.dataset_2d}/{self.dataset_3d}/seed{self.seed}"

    def fields(self) -> dict[str, object]:
        """Identity columns shared by every table row about this run."""
        return {"run": self.path, "stage": self.stage, "arm": self.arm, "model": self.model,
                "dataset_2d": self.dataset_2d, "dataset_3d": self.dataset_3d, "seed": self.seed}


@dataclass(frozen=True)
class EvalSplit:
    """One test split: ``name`` is ``{dataset}_{split}``; ``kind`` is ``3d`` or ``2d``."""

    dataset: str
    split: str
    kind: str

    @property
    def name(self) -> str:
        return f"{self.dataset}_{self.split}"


def study_test_sets(config: dict) -> list[EvalSplit]:
    """The study's test splits: 3D test sets first (config order), then 2D ones."""
    tests = [EvalSplit(d, SPLIT_3D_TEST, "3d") for d in config["test_3d"]]
    return tests + [EvalSplit(d, SPLIT_2D_TEST, "2d") for d in config["test_2d"]]


def _lifted_by(config: dict) -> set:
    return {ARMS[a].lifted_by for a in config["arms"] if a in ARMS}


def trained_lifters(config: dict) -> list[tuple[str, str]]:
    """(lifter, init) of every ``train_lifter`` run per (3D set, seed): guide and held-out lifters from
    scratch when any arm lifts; the sequence lifter from scratch and from pose pre-training with ``apt_pose``."""
    lifted_by, s = _lifted_by(config), config["lifters"]
    out = []
    if lifted_by - {None}:
        out += [(name, "scratch") for name in [*s["guide"], *s["held_out"]]]
    if "sequence" in lifted_by:
        out += [(s["sequence"], init) for init in LIFTER_INITS if (s["sequence"], init) not in out]
    return out


def pose_pretrained_lifters(config: dict) -> list[str]:
    """Lifters with a ``pretrain_pose`` run per (3D set, seed): the sequence (``apt_pose``) and heatmap
    (``mpt``) lifters of the arms present."""
    lifted_by, s = _lifted_by(config), config["lifters"]
    return [s[kind] for kind in ("sequence", "heatmap") if kind in lifted_by]


def evaluation_lifters(config: dict) -> list[str]:
    """Names of every lifter a lifter arm's evaluation scores (``--lifter NAME=PATH``, config order):
    ``<lifter>/<init>`` of each ``train_lifter`` run, then ``<heatmap lifter>/zero_shot`` with ``mpt``."""
    names = [f"{lifter}/{init}" for lifter, init in trained_lifters(config)]
    if "heatmap" in _lifted_by(config):
        names.append(f"{config['lifters']['heatmap']}/{ZERO_SHOT}")
    return names


def primary_lifter(config: dict, arm: str) -> str | None:
    """The lifter variant that is ``arm``'s own 3D prediction (None: the network's depth maps)."""
    lifted_by, s = ARMS[arm].lifted_by, config["lifters"]
    return {None: None, "guide": f"{s['guide'][0]}/scratch", "sequence": f"{s['sequence']}/pretrain_pose",
            "heatmap": END_TO_END}[lifted_by]


def upstream_runs(config: dict, key: RunKey) -> list[RunKey]:
    """The runs a ``finetune_3d`` run's 3D prediction depends on (same seed and training sets): the
    2D pre-training run its detector starts from, the frozen guide lifters in its loss, the lifter
    that lifts it, and the pose pre-training behind that lifter. Their training compute is the
    arm's cost beside the run's own."""
    arm = ARMS[key.arm]
    out = []
    if arm.detector_init == PRETRAIN_STAGE:
        out.append(RunKey(PRETRAIN_STAGE, "", key.model, key.dataset_2d, "", key.seed))
    return out + [RunKey(stage, init, lifter, "", key.dataset_3d, key.seed)
                  for stage, lifter, init in upstream_lifter_runs(arm, config["lifters"])]


def expected_runs(config: dict) -> list[RunKey]:
    """Every training run the config asks for, upstream first: 2D pre-training, pose pre-training,
    lifter training, then fine-tuning runs."""
    runs = []
    arms = [ARMS[a] for a in config["arms"] if a in ARMS]
    if any(arm.detector_init == PRETRAIN_STAGE for arm in arms):
        runs += [RunKey(PRETRAIN_STAGE, "", model, d2, "", seed)
                 for model in config["models"] for d2 in config["train_2d"] for seed in config["seeds"]]
    runs += [RunKey(POSE_PRETRAIN_STAGE, "", lifter, "", d3, seed)
             for lifter in pose_pretrained_lifters(config) for d3 in config["train_3d"] for seed in config["seeds"]]
    runs += [RunKey(LIFTER_STAGE, init, lifter, "", d3, seed)
             for lifter, init in trained_lifters(config) for d3 in config["train_3d"] for seed in config["seeds"]]
    runs += [RunKey(FINETUNE_STAGE, arm, model, d2, d3, seed)
             for arm in config["arms"] for model in config["models"]
             for d2 in config["train_2d"] for d3 in config["train_3d"] for seed in config["seeds"]]
    return runs


def expected_test_sets(config: dict, run: RunKey) -> list[EvalSplit]:
    """The test splits ``run`` is evaluated on (none for lifter and pose pre-training runs)."""
    tests = study_test_sets(config)
    if run.stage == PRETRAIN_STAGE:
        return [t for t in tests if t.kind == "2d"]
    if run.stage in (LIFTER_STAGE, POSE_PRETRAIN_STAGE):
        return []
    return tests
