"""The plan of a study: every job, its files, its upstream runs and its spec, from the validated config.

One object answers "which runs, where, from what". The Snakefile's rules ask it for their inputs
and specs, ``collect`` for the runs and evaluations it expects, the report for each run's upstream
runs. Path patterns are written here and nowhere else. Torch-free: Snakemake imports this module
to parse the workflow (once per local run, twice per SLURM job).

Results tree, relative to ``results/{study}/`` (a run's path is its identity, ``RunKey.path``)::

    data/{dataset}/{split}.h5                                      synthesize | download + convert
    pretrain_2d/{model}/{dataset2d}/seed{seed}/                    model.pt metrics.json curve.csv spec.json
    pretrain_pose/{lifter}/{dataset2d}/{dataset3d}/seed{seed}/     the same files
    train_lifter/{lifter}/{init}/{dataset2d}/{dataset3d}/seed{seed}/  the same files
    finetune_3d/{arm}/{model}/{dataset2d}/{dataset3d}/seed{seed}/  the same files
    evaluate/<training run path>/{testset}.json                    one evaluation (testset = {dataset}_{split})
    tables/{table}.csv                                             collect

Test sets: 3D test datasets are scored on their ``test`` split, 2D test datasets on their ``val``
split. Fine-tuned models are scored on every test set, 2D pre-trained models on the 2D ones, and
lifter runs through the lifter arms' evaluations. A pre-training or lifter run exists when some arm
needs it (``pose_study.arms``).

A run's path names the data it and its upstream runs read, so that a fine-tuning run's upstream
runs saw the run's own 2D and 3D sets and no other: a lifter run's ``{dataset2d}`` is the 2D set
whose images the sequence lifter's pose pre-training mixes in (``none``, ``NO_2D``, for every other
lifter run). Pose-only sets (``train_pose``) are pooled, the same for every run of a study: with
them, pose pre-training reads its 3D poses from them instead of the 3D set's train split.
"""

from __future__ import annotations

import shlex
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from pose_study.arms import ARMS, BASELINE, Arm, upstream_lifter_runs
from pose_study.config import NATIVE_SPLITS, NO_DATASET
from pose_study.data.catalog import get_dataset
from pose_study.presets import MODELS, applicable_options, relative_cost

TRAINING_STAGES = ("pretrain_2d", "pretrain_pose", "train_lifter", "finetune_3d")  # upstream first
RUN_PATTERNS = {
    "pretrain_2d": "pretrain_2d/{model}/{dataset2d}/seed{seed}",
    "pretrain_pose": "pretrain_pose/{lifter}/{dataset2d}/{dataset3d}/seed{seed}",
    "train_lifter": "train_lifter/{lifter}/{init}/{dataset2d}/{dataset3d}/seed{seed}",
    "finetune_3d": "finetune_3d/{arm}/{model}/{dataset2d}/{dataset3d}/seed{seed}",
}
DATA_PATTERN = "data/{dataset}/{split}.h5"
DOWNLOAD_PATTERN = "data/{dataset}/download.json"
EVALUATION_PATTERN = "evaluate/{run}/{testset}.json"
TABLE_PATTERN = "tables/{table}.csv"
TRAINING_OUTPUTS = ("model.pt", "metrics.json", "curve.csv")
TABLES = ("metrics", "curves", "runs", "jobs", "examples")
REFERENCES = "reports/reference_results.yaml"  # published numbers; ships with the code (repository-relative)
SPLITS = ("train", "val", "test")
SPLIT_3D_TEST = "test"
SPLIT_2D_TEST = "val"
# How a train_lifter run starts: from scratch, from pose pre-training, or from scratch for the pre-trained
# run's total steps (pretrain_pose.steps + train_lifter.steps; the sequence lifter only, for the APT
# comparison at equal total steps).
LIFTER_INITS = ("scratch", "pretrain_pose", "scratch_total")
SCRATCH_TOTAL = "scratch_total"
NO_2D = NO_DATASET  # ``dataset2d`` of a lifter run that reads no 2D set
ZERO_SHOT = "zero_shot"  # evaluation name of the heatmap lifter straight from pose pre-training
END_TO_END = "end_to_end"  # primary of the mpt arm: the lifter inside its own model.pt
BASELINE_ARM = BASELINE  # the 3D-only arm every other arm is compared against
IMAGENET = "imagenet"  # ``pretrained_backbone``: the preset's torchvision ImageNet weights from the catalog

# A job's input name -> the command-line flag that passes it (a list of paths repeats the flag).
FLAGS = {
    "train": "--train", "val": "--val", "train_2d": "--train-2d", "train_3d": "--train-3d", "val_3d": "--val-3d",
    "weights": "--weights", "init_weights": "--init-weights", "init_metrics": "--init-metrics",
    "prior_metrics": "--prior-metrics", "guide_lifters": "--guide-lifter", "lifter_init": "--lifter-init",
    "budget_metrics": "--budget-metrics",
    "train_pose": "--train-pose",
}


@dataclass(frozen=True, order=True, kw_only=True)
class RunKey:
    """One training run; a field that does not apply to its stage is ``""``.

    Attributes:
        stage: One of ``TRAINING_STAGES``.
        arm: Pre-training strategy (``finetune_3d``).
        model: Detector preset (``pretrain_2d``, ``finetune_3d``).
        lifter: Lifter preset (``pretrain_pose``, ``train_lifter``).
        init: How a ``train_lifter`` run starts: ``scratch`` or ``pretrain_pose``.
        dataset_2d: 2D training dataset (``pretrain_2d``, ``finetune_3d``; for lifter runs the 2D set
            their data come from, or ``NO_2D``).
        dataset_3d: 3D training dataset (every stage but ``pretrain_2d``).
        seed: Training seed.
    """

    stage: str
    arm: str = ""
    model: str = ""
    lifter: str = ""
    init: str = ""
    dataset_2d: str = ""
    dataset_3d: str = ""
    seed: int = 0

    @classmethod
    def from_wildcards(cls, stage: str, wildcards: Mapping[str, object]) -> RunKey:
        """The run a rule's wildcards name (Snakemake's ``dataset2d``/``dataset3d`` spelling)."""
        w = dict(wildcards)
        return cls(stage=stage, arm=w.get("arm", ""), model=w.get("model", ""), lifter=w.get("lifter", ""),
                   init=w.get("init", ""), dataset_2d=w.get("dataset2d", ""), dataset_3d=w.get("dataset3d", ""),
                   seed=int(w["seed"]))

    @property
    def wildcards(self) -> dict[str, object]:
        return {"arm": self.arm, "model": self.model, "lifter": self.lifter, "init": self.init,
                "dataset2d": self.dataset_2d, "dataset3d": self.dataset_3d, "seed": self.seed}

    @property
    def path(self) -> str:
        """The run's folder relative to ``results/{study}/`` (its identity)."""
        return RUN_PATTERNS[self.stage].format(**self.wildcards)

    def fields(self) -> dict[str, object]:
        """Identity columns shared by every table row about this run."""
        return {"run": self.path, "stage": self.stage, "arm": self.arm, "model": self.model, "lifter": self.lifter,
                "init": self.init, "dataset_2d": self.dataset_2d, "dataset_3d": self.dataset_3d, "seed": self.seed}


@dataclass(frozen=True)
class EvalSplit:
    """One test split: ``name`` is ``{dataset}_{split}``; ``kind`` is ``3d`` or ``2d``."""

    dataset: str
    split: str
    kind: str

    @property
    def name(self) -> str:
        return f"{self.dataset}_{self.split}"


@dataclass(frozen=True)
class Job:
    """One job of the DAG, as plain data.

    Attributes:
        rule: The Snakemake rule that runs it.
        outputs: Declared output files (relative to the working directory).
        inputs: Named input files; a name maps to one path or a list of paths.
        spec: The stage's spec (``--spec`` JSON), or None for jobs configured otherwise.
        args: Command-line arguments passing the inputs (``FLAGS``), paths shell-quoted.
        key: The training run the job trains or evaluates, if any.
    """

    rule: str
    outputs: tuple[str, ...]
    inputs: dict[str, str | list[str]] = field(default_factory=dict)
    spec: dict | None = None
    args: str = ""
    key: RunKey | None = None


def input_args(inputs: Mapping[str, str | list[str]]) -> str:
    """``--flag path`` for every input ``FLAGS`` names (in ``inputs`` order), paths shell-quoted."""
    out = []
    for name, paths in inputs.items():
        if name in FLAGS:
            out += [f"{FLAGS[name]} {shlex.quote(p)}" for p in ([paths] if isinstance(paths, str) else paths)]
    return " ".join(out)


class Plan:
    """The runs, jobs and specs of one validated study config (``config.validate_config``)."""

    def __init__(self, config: dict) -> None:
        self.config = config
        self.name: str = config["study"]
        self.results = f"results/{self.name}"
        self.seeds: list[int] = config["seeds"]
        self.models: list[str] = config["models"]
        self.arms: list[str] = config["arms"]
        self.datasets: dict[str, dict] = config["datasets"]
        self.train_2d: list[str] = config["train_2d"]
        self.train_3d: list[str] = config["train_3d"]
        self.lifters: dict = config["lifters"]
        self.train_pose: list[str] = config.get("train_pose", [])

    # --- paths ------------------------------------------------------------------------------------

    def path(self, relative: str) -> str:
        """``relative`` below ``results/{study}/``."""
        return f"{self.results}/{relative}"

    def data_path(self, dataset: str, split: str) -> str:
        return self.path(DATA_PATTERN.format(dataset=dataset, split=split))

    def test_path(self, test: EvalSplit) -> str:
        return self.data_path(test.dataset, test.split)

    def run_file(self, key: RunKey, name: str) -> str:
        return self.path(f"{key.path}/{name}")

    def evaluation_path(self, key: RunKey, test: EvalSplit) -> str:
        return self.path(EVALUATION_PATTERN.format(run=key.path, testset=test.name))

    def table_paths(self) -> list[str]:
        return [self.path(TABLE_PATTERN.format(table=t)) for t in TABLES]

    @property
    def report_path(self) -> str:
        return f"reports/{self.name}/index.html"

    def checkpoint_dir(self, key: RunKey) -> str:
        """Resume state of a training run: outside its outputs, which Snakemake deletes on failure."""
        return f"checkpoints/{self.name}/{key.path}"

    # --- data -------------------------------------------------------------------------------------

    def splits(self, dataset: str) -> list[str]:
        """Splits the study needs of ``dataset`` (derived from where it is used)."""
        explicit = self.datasets[dataset].get("splits")
        if explicit:
            return list(explicit)
        need = set()
        if dataset in self.train_2d or dataset in self.train_3d:
            need |= {"train", "val"}
        if dataset in self.train_pose and self.pose_pretrained_lifters():  # read by pose pre-training only
            need.add("train")
        if dataset in self.config["test_2d"]:
            need.add("val")
        if dataset in self.config["test_3d"]:
            need.add("test")
        return [s for s in SPLITS if s in need]

    def data_jobs(self) -> list[Job]:
        """``synthesize`` per synthetic split; ``download`` per real dataset, then ``convert`` per split."""
        jobs = [self.download_job(entry) for entry in self.weight_entries()]
        for dataset, d in self.datasets.items():
            if d["source"] == "real":
                jobs.append(self.download_job(dataset))
            jobs += [self.data_job(dataset, split) for split in self.splits(dataset)]
        return jobs

    def data_job(self, dataset: str, split: str) -> Job:
        d = self.datasets[dataset]
        out = (self.data_path(dataset, split),)
        if d["source"] == "synthetic":
            spec = {"world": d["world"], "split": split, "num_samples": d["samples"][split],
                    "crop_size": self.config["crop_size"], "seed": self._data_seed(dataset, split),
                    "joint_set": d["joint_set"] if d["world"] == "wild" else "h36m17", "dataset": dataset}
            return Job("synthesize", out, spec=spec)
        native = NATIVE_SPLITS[d["name"]]
        if split not in native:
            raise ValueError(f"dataset {dataset!r} ({d['name']}) has no {split!r} split; it provides {sorted(native)}")
        spec = {"dataset": d["name"], "root": d["root"], "split": native[split],
                "crop_size": self.config["crop_size"], **d["options"]}
        return Job("convert", out, {"download": self.path(DOWNLOAD_PATTERN.format(dataset=dataset))}, spec)

    def download_job(self, dataset: str) -> Job:
        """Fetch and verify a public dataset or a weight file, or check a licensed dataset in place."""
        if dataset in self.weight_entries():
            spec = {"dataset": dataset, "root": self.weights_dir(dataset)}
        else:
            d = self.datasets[dataset]
            spec = {"dataset": d["name"], "root": d["root"], **d["download"]}
        return Job("download", (self.path(DOWNLOAD_PATTERN.format(dataset=dataset)),), spec=spec)

    def priority(self, model: str) -> int:
        """Scheduling priority of ``model``'s training jobs: its rank by ``presets.relative_cost`` among the
        study's models, 1 for the cheapest. The costliest chains (pre-training, fine-tuning, then the
        compute-matched baseline) start first, so the study does not end on one long chain with idle cores."""
        order = sorted(self.models, key=lambda m: (relative_cost(MODELS[m]), m))
        return order.index(model) + 1

    # --- ImageNet weights ---------------------------------------------------------------------------

    def weight_entries(self) -> list[str]:
        """Catalog entries of the ImageNet weights the study downloads (``pretrained_backbone: imagenet``)."""
        return [f"imagenet_{m}" for m in self.models if self._settings(m).get("pretrained_backbone") == IMAGENET]

    def weights_dir(self, entry: str) -> str:
        return f"{self.config['weights_root']}/{entry}"

    def backbone(self, model: str) -> str | None:
        """The ImageNet weight file of ``model``'s backbone: the catalog's file with ``imagenet``, else the
        configured path (None: random init)."""
        setting = self._settings(model).get("pretrained_backbone")
        if setting != IMAGENET:
            return setting
        entry = f"imagenet_{model}"
        return f"{self.weights_dir(entry)}/{get_dataset(entry).artefacts[0].file}"

    def _backbone_inputs(self, key: RunKey) -> dict:
        """A downloaded backbone's manifest: the job waits for its download (the file is in the spec)."""
        entry = f"imagenet_{key.model}"
        if entry not in self.weight_entries():
            return {}
        return {"backbone": self.path(DOWNLOAD_PATTERN.format(dataset=entry))}

    def _data_seed(self, dataset: str, split: str) -> int:
        return (self.config["data_seed"] * 1_000_003 + zlib.crc32(f"{dataset}/{split}".encode())) % 2**31

    # --- which runs -------------------------------------------------------------------------------

    @property
    def arm_table(self) -> list[Arm]:
        return [ARMS[a] for a in self.arms]

    def _lifted_by(self) -> set:
        return {a.lifted_by for a in self.arm_table}

    def trained_lifters(self) -> list[tuple[str, str]]:
        """(lifter, init) of every ``train_lifter`` run per (3D set, seed): guide and held-out lifters from
        scratch when any arm lifts; the sequence lifter from scratch and from pose pre-training with ``apt_pose``."""
        lifted_by, s = self._lifted_by(), self.lifters
        out = []
        if lifted_by - {None}:
            out += [(name, "scratch") for name in [*s["guide"], *s["held_out"]]]
        if "sequence" in lifted_by:
            out += [(s["sequence"], init) for init in LIFTER_INITS if (s["sequence"], init) not in out]
        return out

    def reads_2d(self, stage: str, lifter: str, init: str = "") -> bool:
        """True for a lifter run whose data include a 2D set's images: the sequence lifter's pose
        pre-training (APTPose mixes 2D-only sequences in) and the lifter trained from it."""
        from_pose = stage == "pretrain_pose" or init == "pretrain_pose"
        return from_pose and lifter == self.lifters["sequence"]

    def lifter_2d_sets(self, stage: str, lifter: str, init: str = "") -> list[str]:
        """The ``dataset2d`` values of a lifter's runs: the 2D training sets, or ``NO_2D``."""
        return list(self.train_2d) if self.reads_2d(stage, lifter, init) else [NO_2D]

    def pose_pretrained_lifters(self) -> list[str]:
        """Lifters with a ``pretrain_pose`` run per (3D set, seed): the sequence (``apt_pose``) and heatmap
        (``mpt``) lifters of the arms present."""
        lifted_by = self._lifted_by()
        return [self.lifters[kind] for kind in ("sequence", "heatmap") if kind in lifted_by]

    def runs(self) -> list[RunKey]:
        """Every training run, upstream first: 2D pre-training, pose pre-training, lifters, fine-tuning."""
        seeds, runs = self.seeds, []
        if any(a.detector_init == "pretrain_2d" for a in self.arm_table):
            runs += [RunKey(stage="pretrain_2d", model=m, dataset_2d=d2, seed=s)
                     for m in self.models for d2 in self.train_2d for s in seeds]
        runs += [RunKey(stage="pretrain_pose", lifter=lifter, dataset_2d=d2, dataset_3d=d3, seed=s)
                 for lifter in self.pose_pretrained_lifters()
                 for d2 in self.lifter_2d_sets("pretrain_pose", lifter) for d3 in self.train_3d for s in seeds]
        runs += [RunKey(stage="train_lifter", lifter=lifter, init=init, dataset_2d=d2, dataset_3d=d3, seed=s)
                 for lifter, init in self.trained_lifters()
                 for d2 in self.lifter_2d_sets("train_lifter", lifter, init) for d3 in self.train_3d for s in seeds]
        runs += [RunKey(stage="finetune_3d", arm=arm, model=m, dataset_2d=d2, dataset_3d=d3, seed=s)
                 for arm in self.arms for m in self.models for d2 in self.train_2d for d3 in self.train_3d
                 for s in seeds]
        return runs

    def upstream(self, key: RunKey) -> list[RunKey]:
        """The runs ``key``'s prediction depends on (same seed and training sets), upstream first.

        A fine-tuning run: the 2D pre-training run its detector starts from, the frozen guide lifters
        in its loss (or the lifter that lifts it), the sequence lifter and its pose pre-training, or
        the heatmap lifter's pose pre-training. A lifter run from pose pre-training: that run. Their
        training compute is the run's cost beside its own.
        """
        if key.stage == "train_lifter" and key.init == "pretrain_pose":
            return [RunKey(stage="pretrain_pose", lifter=key.lifter, dataset_2d=key.dataset_2d,
                           dataset_3d=key.dataset_3d, seed=key.seed)]
        if key.stage != "finetune_3d":
            return []
        arm, out = ARMS[key.arm], []
        if arm.detector_init == "pretrain_2d":
            out.append(RunKey(stage="pretrain_2d", model=key.model, dataset_2d=key.dataset_2d, seed=key.seed))
        return out + [self._lifter_key(stage, lifter, init, key)
                      for stage, lifter, init in upstream_lifter_runs(arm, self.lifters)]

    def _lifter_key(self, stage: str, lifter: str, init: str, of: RunKey) -> RunKey:
        """The lifter run of fine-tuning run ``of``: its 3D set and seed, and its 2D set if the lifter
        reads one."""
        d2 = of.dataset_2d if self.reads_2d(stage, lifter, init) else NO_2D
        return RunKey(stage=stage, lifter=lifter, init=init, dataset_2d=d2, dataset_3d=of.dataset_3d,
                      seed=of.seed)

    # --- fairness -------------------------------------------------------------------------------

    def known_samples(self, dataset: str, split: str = "train") -> int | None:
        """Samples of a split when the config fixes them (synthetic worlds); None for real datasets
        (known once converted)."""
        d = self.datasets[dataset]
        return d["samples"][split] if d["source"] == "synthetic" else None

    def data_read(self, key: RunKey) -> dict[str, list[str]]:
        """The training sets ``key`` itself reads, by role: ``2d`` (images with 2D labels), ``3d``
        (images, or their ground-truth 2D, with 3D labels) and ``pose`` (pose-only sets).

        Validation splits are not counted: they are no training data.
        """
        d2 = [key.dataset_2d] if key.dataset_2d not in ("", NO_2D) else []
        if key.stage == "pretrain_2d":
            return {"2d": d2, "3d": [], "pose": []}
        if key.stage == "pretrain_pose":
            poses = [] if self.train_pose else [key.dataset_3d]
            return {"2d": d2, "3d": poses, "pose": list(self.train_pose)}
        reads_2d = key.stage == "finetune_3d" and ARMS[key.arm].uses_2d  # 3d_only: its 2D set only pairs it
        return {"2d": d2 if reads_2d else [], "3d": [key.dataset_3d], "pose": []}

    def fairness(self, key: RunKey) -> dict:
        """What a fairness table needs of fine-tuning run ``key``, as planned.

        Returns:
            ``steps`` (the run's own), ``upstream_steps`` (every upstream run's, each once),
            ``total_steps`` (their sum), ``data`` (``{"2d"|"3d"|"pose": {dataset: train samples or
            None}}``: every training set the run and its upstream runs read) and ``upstream``
            (the upstream runs' paths, upstream first).
        """
        upstream = self.upstream(key)
        data: dict[str, dict[str, int | None]] = {"2d": {}, "3d": {}, "pose": {}}
        for run in [key, *upstream]:
            for role, sets in self.data_read(run).items():
                data[role] |= {d: self.known_samples(d) for d in sets}
        steps = self.spec(key)["steps"]
        before = sum(self.spec(run)["steps"] for run in upstream)
        return {"steps": steps, "upstream_steps": before, "total_steps": steps + before, "data": data,
                "upstream": [run.path for run in upstream]}

    def compared_runs(self, key: RunKey) -> list[RunKey]:
        """The fine-tuning runs the baseline run ``key`` is compared with: every other arm's, same model,
        training sets and seed (none for a run of another arm)."""
        if key.stage != "finetune_3d" or key.arm != BASELINE_ARM:
            return []
        return [RunKey(stage="finetune_3d", arm=arm, model=key.model, dataset_2d=key.dataset_2d,
                       dataset_3d=key.dataset_3d, seed=key.seed) for arm in self.arms if arm != BASELINE_ARM]

    def budget(self, key: RunKey) -> str:
        """How long ``key`` trains: ``compute_matched`` for the baseline under that rule
        (``finetune_3d.baseline_budget``) when it has runs to match, else ``steps``."""
        matched = self.config["finetune_3d"]["baseline_budget"] == "compute_matched"
        return "compute_matched" if matched and self.compared_runs(key) else "steps"

    # --- evaluation -------------------------------------------------------------------------------

    def test_sets(self, kind: str | None = None) -> list[EvalSplit]:
        """The study's test splits: 3D test sets first (config order), then 2D ones."""
        tests = [EvalSplit(d, SPLIT_3D_TEST, "3d") for d in self.config["test_3d"]]
        tests += [EvalSplit(d, SPLIT_2D_TEST, "2d") for d in self.config["test_2d"]]
        return [t for t in tests if kind in (None, t.kind)]

    def test_sets_of(self, key: RunKey) -> list[EvalSplit]:
        """The test splits ``key`` is evaluated on (none for lifter and pose pre-training runs)."""
        return {"pretrain_2d": self.test_sets("2d"), "finetune_3d": self.test_sets()}.get(key.stage, [])

    def evaluation_lifters(self) -> list[tuple[str, RunKey]]:
        """(name, run) of every lifter a lifter arm's evaluation scores, per (3D set, seed) — the run
        has ``dataset_3d`` and ``seed`` unset: ``<lifter>/<init>`` of each ``train_lifter`` run, then
        ``<heatmap lifter>/zero_shot`` (its pose pre-training) with ``mpt``."""
        out = [(f"{lifter}/{init}", RunKey(stage="train_lifter", lifter=lifter, init=init))
               for lifter, init in self.trained_lifters()]
        if "heatmap" in self._lifted_by():
            heatmap = self.lifters["heatmap"]
            out.append((f"{heatmap}/{ZERO_SHOT}", RunKey(stage="pretrain_pose", lifter=heatmap)))
        return out

    def primary_lifter(self, arm: str) -> str | None:
        """The lifter variant that is ``arm``'s own 3D prediction (None: the network's depth maps)."""
        s = self.lifters
        return {None: None, "guide": f"{s['guide'][0]}/scratch", "sequence": f"{s['sequence']}/pretrain_pose",
                "heatmap": END_TO_END}[ARMS[arm].lifted_by]

    # --- jobs -------------------------------------------------------------------------------------

    def jobs(self) -> list[Job]:
        """Every job of the DAG: data, training, evaluation, then ``collect`` and ``report``."""
        runs = self.runs()
        evaluations = [self.evaluation_job(k) for k in runs if self.test_sets_of(k)]
        return [*self.data_jobs(), *(self.training_job(k) for k in runs), *evaluations,
                self.collect_job(), self.report_job()]

    def training_job(self, key: RunKey) -> Job:
        """The job that trains ``key``: its data, upstream runs and spec."""
        inputs = getattr(self, f"_{key.stage}_inputs")(key)
        outputs = tuple(self.run_file(key, name) for name in TRAINING_OUTPUTS)
        return Job(key.stage, outputs, inputs, self.spec(key), input_args(inputs), key)

    def _pretrain_2d_inputs(self, key: RunKey) -> dict:
        return {"train": self.data_path(key.dataset_2d, "train"), "val": self.data_path(key.dataset_2d, "val"),
                **self._backbone_inputs(key)}

    def _pretrain_pose_inputs(self, key: RunKey) -> dict:
        """The poses (the pose-only sets when configured, else the 3D set's), the 3D set's validation split,
        and the run's own 2D set when it reads one."""
        if self.train_pose:
            inputs = {"train_pose": [self.data_path(d, "train") for d in self.train_pose]}
        else:
            inputs = {"train_3d": self.data_path(key.dataset_3d, "train")}
        inputs["val_3d"] = self.data_path(key.dataset_3d, "val")
        if key.dataset_2d != NO_2D:
            inputs["train_2d"] = [self.data_path(key.dataset_2d, "train")]
        return inputs

    def _train_lifter_inputs(self, key: RunKey) -> dict:
        inputs = {"train_3d": self.data_path(key.dataset_3d, "train"),
                  "val_3d": self.data_path(key.dataset_3d, "val")}
        for run in self.upstream(key):
            inputs |= {"init_weights": self.run_file(run, "model.pt"),
                       "init_metrics": self.run_file(run, "metrics.json")}
        return inputs

    def _finetune_3d_inputs(self, key: RunKey) -> dict:
        """Data, the detector's 2D pre-training, frozen guide lifters, the trainable lifter's pose
        pre-training, and the metrics of every upstream run whose compute the run carries."""
        arm, lifters = ARMS[key.arm], self.lifters
        inputs = {"train_3d": self.data_path(key.dataset_3d, "train"), "val_3d": self.data_path(key.dataset_3d, "val")}
        if arm.uses_2d:  # 3d_only: ``dataset_2d`` in its path only names the arms it is compared with
            inputs["train_2d"] = self.data_path(key.dataset_2d, "train")
        upstream = self.upstream(key)
        if arm.detector_init == "pretrain_2d":
            inputs["init_weights"] = self.run_file(upstream[0], "model.pt")
        else:  # the same backbone initialisation as the 2D pre-training of the arms it is compared with
            inputs |= self._backbone_inputs(key)
        # ft_2d and apt_pose have no lifter in their loss: the lifter that lifts them only validates them
        # (ft_2d: the first guide lifter; apt_pose: its own sequence lifter, from pose pre-training)
        validation = [(g, "scratch") for g in lifters["guide"][:1]] if arm.lifted_by == "guide" else []
        if arm.lifted_by == "sequence":
            validation = [(lifters["sequence"], "pretrain_pose")]
        guides = [(g, "scratch") for g in arm.guide_lifters(lifters["guide"])] or validation
        if guides:
            inputs["guide_lifters"] = [
                self.run_file(self._lifter_key("train_lifter", g, init, key), "model.pt") for g, init in guides]
        if arm.lifted_by == "heatmap":
            heatmap = self._lifter_key("pretrain_pose", lifters["heatmap"], "", key)
            inputs["lifter_init"] = self.run_file(heatmap, "model.pt")
        # a lifter trained from pose pre-training already carries that pre-training's compute
        carried = {run.lifter for run in upstream if run.init == "pretrain_pose"}
        priors = [run for run in upstream if not (run.stage == "pretrain_pose" and run.lifter in carried)]
        if priors:
            inputs["prior_metrics"] = [self.run_file(run, "metrics.json") for run in priors]
        if self.budget(key) == "compute_matched":
            inputs["budget_metrics"] = [self.run_file(run, "metrics.json") for run in self.compared_runs(key)]
        return inputs

    def evaluation_job(self, key: RunKey) -> Job:
        """Scores ``key`` on its test sets: one JSON per set; lifter arms through every study lifter."""
        tests = self.test_sets_of(key)
        outputs = tuple(self.evaluation_path(key, t) for t in tests)
        inputs = {"weights": self.run_file(key, "model.pt"), "tests": sorted({self.test_path(t) for t in self.test_sets()
                                                                               if key.stage == "finetune_3d" or t.kind == "2d"})}
        if key.dataset_3d:
            inputs["train_3d"] = self.data_path(key.dataset_3d, "train")
        inputs["train_2d"] = self.data_path(key.dataset_2d, "train")
        lifters = self._evaluation_lifter_files(key)
        if lifters:
            inputs["lifters"] = list(lifters.values())
        pairs = [f"--test {shlex.quote(self.test_path(t))} --out {shlex.quote(o)}" for t, o in zip(tests, outputs)]
        named = [f"--lifter {shlex.quote(f'{name}={path}')}" for name, path in lifters.items()]
        args = " ".join([input_args(inputs), *pairs, *named])
        return Job(f"evaluate_{key.stage}", outputs, inputs, self.evaluate_spec(key), args, key)

    def _evaluation_lifter_files(self, key: RunKey) -> dict[str, str]:
        if key.stage != "finetune_3d" or not ARMS[key.arm].uses_lifters:
            return {}
        return {name: self.run_file(self._lifter_key(run.stage, run.lifter, run.init, key), "model.pt")
                for name, run in self.evaluation_lifters()}

    def training_files(self, name: str) -> list[str]:
        return [self.run_file(k, name) for k in self.runs()]

    def evaluation_files(self) -> list[str]:
        return [self.evaluation_path(k, t) for k in self.runs() for t in self.test_sets_of(k)]

    def collect_job(self) -> Job:
        inputs = {"metrics": self.training_files("metrics.json"), "curves": self.training_files("curve.csv"),
                  "evaluations": self.evaluation_files()}
        return Job("collect", tuple(self.table_paths()), inputs, self.config)

    def report_job(self) -> Job:
        inputs = {"tables": self.table_paths(), "tests": sorted({self.test_path(t) for t in self.test_sets()}),
                  "references": REFERENCES}
        return Job("report", (self.report_path,), inputs, self.config)

    # --- specs ------------------------------------------------------------------------------------

    def spec(self, key: RunKey) -> dict:
        """The spec of ``key``'s training job, as plain data (the stage builds its dataclass from it)."""
        return getattr(self, f"_{key.stage}_spec")(key)

    def _settings(self, model: str) -> dict:
        return self.config["model_settings"].get(model, {})

    @property
    def detector_heatmap_sigma(self) -> float:
        """The heatmap σ (heatmap px) the arms' detectors are trained at: ``finetune_3d.loop``'s.

        MPT's synthetic heatmaps (``pretrain_pose``) and the ground-truth heatmaps evaluate gives heatmap
        lifters use it too, so a heatmap lifter sees detector-like maps everywhere.
        """
        return self.config["finetune_3d"]["loop"]["heatmap_sigma"]

    def loop(self, stage: str, key: RunKey) -> dict:
        """The loop settings of one run: the stage's ``loop`` section, the seed and the device (pose
        stages: the detector's heatmap σ; a model's ``batch_size`` setting for its detector runs)."""
        loop = {**self.config[stage]["loop"], "seed": key.seed, "device": self.config["device"]}
        if stage in ("pretrain_pose", "train_lifter"):
            loop["heatmap_sigma"] = self.detector_heatmap_sigma
        batch = self._settings(key.model).get("batch_size") if key.model else None
        return {**loop, "batch_size": batch} if batch else loop

    def _pretrain_2d_spec(self, key: RunKey) -> dict:
        s, over = self.config["pretrain_2d"], self._settings(key.model)
        return {**_without_loop(s), "model": key.model, "steps": over.get("pretrain_steps", s["steps"]),
                "pretrained_backbone": self.backbone(key.model), "loop": self.loop("pretrain_2d", key)}

    def _finetune_3d_spec(self, key: RunKey) -> dict:
        s, over = self.config["finetune_3d"], self._settings(key.model)
        fusion, geometric = (over.get(k, s[k]) for k in ("fusion_steps", "geometric_steps"))
        # every arm runs the seed's fusion + geometric steps; only depth arms have the geometric phase
        depth = ARMS[key.arm].objective == "depth"
        spec = {k: v for k, v in _without_loop(s).items()
                if k not in ("fusion_steps", "geometric_steps", "baseline_budget")}
        return {**spec, "model": key.model, "arm": key.arm, "steps": fusion + geometric, "budget": self.budget(key),
                "geometric_steps": geometric if depth else 0,
                "pretrained_backbone": self.backbone(key.model) if ARMS[key.arm].detector_init == "scratch" else None,
                "loop": self.loop("finetune_3d", key),
                "guidance": dict(self.config["guidance"])}

    def _train_lifter_spec(self, key: RunKey) -> dict:
        """A ``scratch_total`` run is a scratch run for the pose pre-trained run's steps plus its own."""
        spec = {**_without_loop(self.config["train_lifter"]), "lifter": key.lifter, "init": key.init,
                "options": applicable_options(key.lifter, self.lifters["options"]),
                "loop": self.loop("train_lifter", key)}
        if key.init == SCRATCH_TOTAL:
            spec |= {"init": "scratch", "steps": spec["steps"] + self.config["pretrain_pose"]["steps"]}
        return spec

    def _pretrain_pose_spec(self, key: RunKey) -> dict:
        return {**_without_loop(self.config["pretrain_pose"]), "lifter": key.lifter,
                "options": applicable_options(key.lifter, self.lifters["options"]),
                "loop": self.loop("pretrain_pose", key)}

    def evaluate_spec(self, key: RunKey) -> dict:
        """Evaluation of ``key``; a lifter arm's run is scored through every study lifter."""
        lifters = list(self._evaluation_lifter_files(key))
        return {**self.config["evaluate"], "model": key.model, "run": key.path, "device": self.config["device"],
                "lifters": lifters, "primary": self.primary_lifter(key.arm) if lifters else None,
                "beta": self.config["guidance"]["beta"],
                "heatmap_sigma": self.detector_heatmap_sigma}

    @property
    def primary_3d_test(self) -> str | None:
        return self.config["report"]["primary_3d_test"] or (self.config["test_3d"] or [None])[0]


def _without_loop(section: dict) -> dict:
    return {k: v for k, v in section.items() if k != "loop"}
