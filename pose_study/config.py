"""The study config: load, validate against the JSON schema (defaults filled), derive stage specs.

The schema (``pose_study/schemas/study.schema.yaml``) rejects unknown keys and fills defaults; the
checks here add what a schema cannot say (e.g. a 3D test set needs a 3D training set). The
Snakefile validates with these same functions, so the workflow and a standalone run resolve
identical configs. ``Study`` turns the validated dict into the frozen spec of every job.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

import jsonschema
import yaml

from pose_study._spec import spec_from_dict
from pose_study.arms import ARMS, Arm, upstream_lifter_runs
from pose_study.lifters import LIFTERS, applicable_options
from pose_study.models import MODELS
from pose_study.report import matrix
from pose_study.stages.evaluate import EvaluateSpec
from pose_study.stages.finetune_3d import Finetune3DSpec, GuidanceSpec
from pose_study.stages.pretrain_2d import Pretrain2DSpec
from pose_study.stages.pretrain_pose import PretrainPoseSpec
from pose_study.stages.train_lifter import TrainLifterSpec
from pose_study.train.loop import LoopSpec

SPLITS = ("train", "val", "test")
REAL_3D = ("h36m", "mpi_inf_3dhp", "occlusion_person", "3dpw")
# The study's train/val/test roles -> each real dataset's own split (catalog names). "val" is what
# training validates on and 2D test sets are scored on; datasets without a public validation
# split use their evaluation split (MPII's test labels are withheld, so its "valid" set serves).
NATIVE_SPLITS: dict[str, dict[str, str]] = {
    "mpii": {"train": "train", "val": "valid"},
    "lsp": {"train": "train", "val": "test", "test": "test"},
    "lspet": {"train": "train"},
    "flic_full": {"train": "train", "val": "test", "test": "test"},
    "h36m": {"train": "train", "val": "test", "test": "test"},  # S1,5,6,7,8 / S9,11
    "mpi_inf_3dhp": {"train": "train", "val": "test", "test": "test"},
    "occlusion_person": {"train": "train", "val": "validation", "test": "validation"},
    "3dpw": {"train": "train", "val": "validation", "test": "test"},
}


def schema() -> dict:
    text = resources.files("pose_study").joinpath("schemas/study.schema.yaml").read_text()
    return yaml.safe_load(text)


def load_config(path: str | os.PathLike) -> dict:
    """Read a study YAML and return it validated with defaults filled; errors name the key."""
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML{_yaml_place(err)}: {_yaml_problem(err)}; "
                             "fix the syntax there (indent with spaces, close every bracket and quote)") from err
    return validate_config(data, where=str(path))


def _yaml_place(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    return f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _yaml_problem(err: yaml.YAMLError) -> str:
    context, mark = getattr(err, "context", None), getattr(err, "context_mark", None)
    if context and mark is not None:
        context = f"{context} (opened at line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(part) for part in (context, getattr(err, "problem", None)) if part) or str(err)


def validate_config(data: Any, where: str = "config") -> dict:
    """Validate ``data`` in place (defaults filled) and check cross-field rules."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: the study config must be a mapping, got {type(data).__name__}")
    validator = _DefaultFilling(schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        raise ValueError(f"{where}: " + "; ".join(_describe(e) for e in errors[:5]))
    _check_references(data, where)
    return data


def _extend_with_default(cls):
    """The jsonschema FAQ recipe (also Snakemake's): fill ``default`` of absent properties.

    Also coerces strings where the schema wants a number or a boolean: Snakemake's ``--config
    'seeds=[1]'`` parses list and mapping entries as strings (``['1']``).
    """
    validate_properties, validate_items = cls.VALIDATORS["properties"], cls.VALIDATORS["items"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                sub = _deref(validator, sub)
                if "default" in sub and name not in instance:
                    instance[name] = _copy(sub["default"])
                elif name in instance:
                    instance[name] = _coerced(sub, instance[name])
        yield from validate_properties(validator, properties, instance, schema)

    def coerce_items(validator, items, instance, schema):
        if isinstance(instance, list) and isinstance(items, dict):
            sub = _deref(validator, items)
            instance[:] = [_coerced(sub, value) for value in instance]
        yield from validate_items(validator, items, instance, schema)

    return jsonschema.validators.extend(cls, {"properties": set_defaults, "items": coerce_items})


def _coerced(sub: dict, value: Any) -> Any:
    """``value`` as the number or boolean ``sub`` asks for when it is a string that spells one."""
    kinds = sub.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if not isinstance(value, str) or "string" in kinds:
        return value
    for kind in kinds:
        try:
            if kind == "integer":
                return int(value)
            if kind == "number":
                return float(value)
        except ValueError:
            continue
        if kind == "boolean" and value.lower() in ("true", "false"):
            return value.lower() == "true"
    return value


def _deref(validator, sub: dict) -> dict:
    """``sub`` with its ``$ref`` resolved; keys beside the ``$ref`` (e.g. a ``default``) win."""
    if "$ref" in sub:
        extra = {k: v for k, v in sub.items() if k != "$ref"}
        return {**validator._resolver.lookup(sub["$ref"]).contents, **extra}
    return sub


def _copy(value: Any) -> Any:
    return yaml.safe_load(yaml.safe_dump(value))


_DefaultFilling = _extend_with_default(jsonschema.Draft202012Validator)


def _describe(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        return f"{path}: {error.message}; allowed keys: {allowed}"
    if error.validator == "enum" and "propertyNames" in [str(p) for p in error.absolute_schema_path]:
        return f"{path}: key {error.instance!r} is not one of {error.validator_value}"
    return f"{path}: {error.message}"


def _check_references(data: dict, where: str) -> None:
    datasets = data["datasets"]
    for key in ("train_2d", "train_3d", "test_3d", "test_2d"):
        for name in data[key]:
            if name not in datasets:
                raise ValueError(f"{where}: {key} names dataset {name!r}, which is not under datasets "
                                 f"(defined: {sorted(datasets)})")
    for key in ("train_3d", "test_3d"):
        for name in data[key]:
            if not _is_3d(datasets[name]):
                raise ValueError(f"{where}: {key} names {name!r}, which has no 3D labels "
                                 "(a synthetic lab/occluded/outdoor world or h36m/mpi_inf_3dhp/occlusion_person/3dpw)")
    _check_real_splits(data, where)
    primary = data["report"]["primary_3d_test"]
    if primary is not None and primary not in data["test_3d"]:
        raise ValueError(f"{where}: report.primary_3d_test {primary!r} is not in test_3d {data['test_3d']}")


def _check_real_splits(data: dict, where: str) -> None:
    """Every role a real dataset plays needs a split of its own for that role."""
    roles = {"train_2d": ("train", "val"), "train_3d": ("train", "val"), "test_2d": ("val",), "test_3d": ("test",)}
    for key, splits in roles.items():
        for name in data[key]:
            d = data["datasets"][name]
            missing = [s for s in splits if d["source"] == "real" and s not in NATIVE_SPLITS[d["name"]]]
            if missing:
                raise ValueError(f"{where}: {key} uses {name!r} ({d['name']}), which has no {missing} split; "
                                 f"it provides {sorted(NATIVE_SPLITS[d['name']])}")


def _is_3d(dataset: dict) -> bool:
    if dataset["source"] == "synthetic":
        return dataset["world"] != "wild"
    return dataset["name"] in REAL_3D


@dataclass(frozen=True)
class ArmInputs:
    """What one arm's ``finetune_3d`` run reads besides its data, as run identities.

    Attributes:
        pretrain_2d: Starts from the ``pretrain_2d`` run's weights (and counts its compute).
        guide_lifters: ``train_lifter`` runs (lifter, init) given as frozen ``--guide-lifter``s.
        lifter_init: The ``pretrain_pose`` lifter that initialises a trainable lifter, or None.
        priors: Upstream runs whose compute the run carries: (stage, lifter, init) with init "" for
            ``pretrain_pose`` (the ``pretrain_2d`` run is implied by ``pretrain_2d``).
    """

    pretrain_2d: bool
    guide_lifters: tuple[tuple[str, str], ...] = ()
    lifter_init: str | None = None
    priors: tuple[tuple[str, str, str], ...] = ()


class Study:
    """A validated study config and the specs of its jobs. Paths belong to the workflow."""

    def __init__(self, config: dict) -> None:
        self.config = config
        self.name: str = config["study"]
        self.seeds: list[int] = config["seeds"]
        self.models: list[str] = config["models"]
        self.arms: list[str] = config["arms"]
        self.datasets: dict[str, dict] = config["datasets"]
        self.train_2d: list[str] = config["train_2d"]
        self.train_3d: list[str] = config["train_3d"]
        self.test_3d: list[str] = config["test_3d"]
        self.test_2d: list[str] = config["test_2d"]

    # --- data ---

    def splits(self, dataset: str) -> list[str]:
        """Splits the study needs of ``dataset`` (derived from where it is used)."""
        explicit = self.datasets[dataset].get("splits")
        if explicit:
            return list(explicit)
        need = set()
        if dataset in self.train_2d or dataset in self.train_3d:
            need |= {"train", "val"}
        if dataset in self.test_2d:
            need.add("val")
        if dataset in self.test_3d:
            need.add("test")
        return [s for s in SPLITS if s in need]

    def synthesize_spec(self, dataset: str, split: str) -> dict:
        d = self.datasets[dataset]
        return {"world": d["world"], "split": split, "num_samples": d["samples"][split],
                "crop_size": self.config["crop_size"], "seed": self._data_seed(dataset, split),
                "joint_set": d["joint_set"] if d["world"] == "wild" else "h36m17", "dataset": dataset}

    def download_spec(self, dataset: str) -> dict:
        d = self.datasets[dataset]
        return {"dataset": d["name"], "root": d["root"], **d["download"]}

    def convert_spec(self, dataset: str, split: str) -> dict:
        d = self.datasets[dataset]
        native = NATIVE_SPLITS[d["name"]]
        if split not in native:
            raise ValueError(f"dataset {dataset!r} ({d['name']}) has no {split!r} split; it provides {sorted(native)}")
        return {"dataset": d["name"], "root": d["root"], "split": native[split],
                "crop_size": self.config["crop_size"], **d["options"]}

    def _data_seed(self, dataset: str, split: str) -> int:
        return (self.config["data_seed"] * 1_000_003 + zlib.crc32(f"{dataset}/{split}".encode())) % 2**31

    # --- training ---

    def loop_spec(self, stage: str, model: str, seed: int) -> LoopSpec:
        loop = dict(self.config[stage]["loop"])
        batch = self._settings(model).get("batch_size")
        if batch:
            loop["batch_size"] = batch
        spec = spec_from_dict(LoopSpec, loop, where=f"{stage}.loop")
        return replace(spec, seed=seed, device=self.config["device"])

    def pretrain_spec(self, model: str, seed: int) -> Pretrain2DSpec:
        stage, over = self.config["pretrain_2d"], self._settings(model)
        return Pretrain2DSpec(model=model, steps=over.get("pretrain_steps", stage["steps"]), lr=stage["lr"],
                              lr_steps=tuple(stage["lr_steps"]), pretrained_backbone=over.get("pretrained_backbone"),
                              loop=self.loop_spec("pretrain_2d", model, seed))

    def finetune_spec(self, arm: str, model: str, seed: int) -> Finetune3DSpec:
        s, over = self.config["finetune_3d"], self._settings(model)
        return Finetune3DSpec(
            model=model, arm=arm, fusion_steps=over.get("fusion_steps", s["fusion_steps"]),
            geometric_steps=over.get("geometric_steps", s["geometric_steps"]), lr=s["lr"],
            lr_steps=tuple(s["lr_steps"]), geometric_lr=s["geometric_lr"], ratio_3d=s["ratio_3d"],
            weight_3d=s["weight_3d"], weight_var=s["weight_var"],
            pretrained_backbone=over.get("pretrained_backbone"), loop=self.loop_spec("finetune_3d", model, seed),
            guidance=spec_from_dict(GuidanceSpec, self.config["guidance"], where="guidance"))

    def _settings(self, model: str) -> dict:
        return self.config["model_settings"].get(model, {})

    def evaluate_spec(self, model: str, run: str, arm: str | None = None) -> EvaluateSpec:
        """Evaluation of a run; a lifter arm's run is scored through every study lifter."""
        e = self.config["evaluate"]
        lifters = tuple(name for name, _ in self.evaluation_lifters()) if arm and ARMS[arm].uses_lifters else ()
        return EvaluateSpec(model=model, run=run, batch_size=e["batch_size"], flip_test=e["flip_test"],
                            device=self.config["device"], examples=e["examples"], lifters=lifters,
                            primary=self.primary_lifter(arm) if lifters else None,
                            beta=self.config["guidance"]["beta"],
                            heatmap_sigma=self.config["pretrain_pose"]["heatmap_sigma"])

    # --- arms and lifters ---

    @property
    def arm_table(self) -> list[Arm]:
        return [ARMS[a] for a in self.arms]

    @property
    def needs_pretrain_2d(self) -> bool:
        return any(a.detector_init == "pretrain_2d" for a in self.arm_table)

    def lifter_runs(self) -> list[tuple[str, str]]:
        """(lifter, init) of every ``train_lifter`` run the arms need, per 3D dataset and seed."""
        return matrix.trained_lifters(self.config)

    def pose_pretrain_lifters(self) -> list[str]:
        """Lifters pre-trained from poses alone (``pretrain_pose`` runs), per 3D dataset and seed."""
        return matrix.pose_pretrained_lifters(self.config)

    def arm_inputs(self, arm: str) -> ArmInputs:
        """The upstream runs of ``arm``'s fine-tuning (pose_study/arms.py decides which)."""
        a, lifters = ARMS[arm], self.config["lifters"]
        runs = upstream_lifter_runs(a, lifters)
        # ft_2d and apt_pose have no lifter in their loss; the first guide lifter only validates them
        validation = lifters["guide"][:1] if a.lifted_by in ("guide", "sequence") else []
        guides = a.guide_lifters(lifters["guide"]) or validation
        # a lifter trained from pose pre-training already carries that pre-training's compute
        carried = {lifter for _, lifter, init in runs if init == "pretrain_pose"}
        priors = tuple(run for run in runs if not (run[0] == "pretrain_pose" and run[1] in carried))
        lifter_init = lifters["heatmap"] if a.lifted_by == "heatmap" else None
        return ArmInputs(a.detector_init == "pretrain_2d", tuple((g, "scratch") for g in guides), lifter_init, priors)

    def evaluation_lifters(self) -> list[tuple[str, tuple[str, str, str]]]:
        """(variant name, (stage, lifter, init)) of every lifter a lifter arm is scored through."""
        out = []
        for name in matrix.evaluation_lifters(self.config):
            lifter, init = name.split("/")
            out.append((name, ("pretrain_pose", lifter, "") if init == matrix.ZERO_SHOT
                        else ("train_lifter", lifter, init)))
        return out

    def primary_lifter(self, arm: str) -> str | None:
        """The variant that is ``arm``'s own 3D prediction (``end_to_end``: the lifter in its weights)."""
        return matrix.primary_lifter(self.config, arm)

    def train_lifter_spec(self, lifter: str, init: str, seed: int) -> TrainLifterSpec:
        data = {**self.config["train_lifter"], "lifter": lifter, "init": init,
                "options": applicable_options(lifter, self.config["lifters"]["options"])}
        data["loop"] = {**data["loop"], "seed": seed, "device": self.config["device"]}
        return spec_from_dict(TrainLifterSpec, data, where="train_lifter")

    def pretrain_pose_spec(self, lifter: str, seed: int) -> PretrainPoseSpec:
        data = {**self.config["pretrain_pose"], "lifter": lifter,
                "options": applicable_options(lifter, self.config["lifters"]["options"])}
        data["loop"] = {**data["loop"], "seed": seed, "device": self.config["device"]}
        return spec_from_dict(PretrainPoseSpec, data, where="pretrain_pose")

    @property
    def primary_3d_test(self) -> str | None:
        return self.config["report"]["primary_3d_test"] or (self.test_3d[0] if self.test_3d else None)


def check_presets_match_schema() -> list[str]:
    """Model, lifter and arm ids in the schema's enums that differ from the tables (empty when in sync)."""
    s = schema()
    pairs = ((s["$defs"]["model_id"]["enum"], MODELS), (s["$defs"]["lifter_id"]["enum"], LIFTERS),
             (s["properties"]["arms"]["items"]["enum"], ARMS))
    return sorted(set().union(*(set(ids) ^ set(table) for ids, table in pairs)))
