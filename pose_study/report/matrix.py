"""The study matrix a config expects: every training run and every evaluation, with its path.

The workflow lays results out as (relative to ``results/{study}/``)::

    pretrain_2d/{model}/{dataset2d}/seed{seed}/                         training run
    finetune_3d/{arm}/{model}/{dataset2d}/{dataset3d}/seed{seed}/       training run
    evaluate/<training run path>/{testset}.json                         one evaluation

A run's path below ``results/{study}/`` is its identity (``RunKey.path``). Test sets are named
``{dataset}_{split}``: 3D test datasets are scored on their ``test`` split, 2D test datasets on
their ``val`` split. Fine-tuned models are scored on every 3D and 2D test set; pre-trained (2D)
models on the 2D test sets. Pre-training runs exist when some arm starts from them.
"""

from __future__ import annotations

from dataclasses import dataclass

PRETRAIN_STAGE = "pretrain_2d"
FINETUNE_STAGE = "finetune_3d"
BASELINE_ARM = "scratch"  # the 3D-only arm every other arm is compared against
ARMS_NEEDING_PRETRAIN = ("pretrained_2d",)
SPLIT_3D_TEST = "test"
SPLIT_2D_TEST = "val"


@dataclass(frozen=True, order=True)
class RunKey:
    """One training run.

    Attributes:
        stage: ``pretrain_2d`` or ``finetune_3d``.
        arm: Pre-training strategy of a fine-tuning run; ``""`` for a pre-training run.
        model: Preset id.
        dataset_2d: 2D training dataset id.
        dataset_3d: 3D training dataset id; ``""`` for a pre-training run.
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


def expected_runs(config: dict) -> list[RunKey]:
    """Every training run the config asks for: pre-training runs first, then fine-tuning runs."""
    runs = []
    if any(arm in ARMS_NEEDING_PRETRAIN for arm in config["arms"]):
        runs += [RunKey(PRETRAIN_STAGE, "", model, d2, "", seed)
                 for model in config["models"] for d2 in config["train_2d"] for seed in config["seeds"]]
    runs += [RunKey(FINETUNE_STAGE, arm, model, d2, d3, seed)
             for arm in config["arms"] for model in config["models"]
             for d2 in config["train_2d"] for d3 in config["train_3d"] for seed in config["seeds"]]
    return runs


def expected_test_sets(config: dict, run: RunKey) -> list[EvalSplit]:
    """The test splits ``run`` is evaluated on."""
    tests = study_test_sets(config)
    if run.stage == PRETRAIN_STAGE:
        return [t for t in tests if t.kind == "2d"]
    return tests
