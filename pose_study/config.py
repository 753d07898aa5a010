"""The study config: load and validate it against the JSON schema, with defaults filled.

The schema (``pose_study/schemas/study.schema.yaml``) rejects unknown keys and fills defaults; the
checks here add what a schema cannot say (e.g. a 3D test set needs a 3D training set). The
Snakefile validates with these same functions, so the workflow and a standalone run resolve
identical configs. ``pose_study.plan`` turns the validated config into the study's jobs and specs.
"""

from __future__ import annotations

import copy
import functools
import os
from importlib import resources
from typing import Any

import jsonschema
import yaml

from pose_study.arms import ARMS
from pose_study.presets import LIFTERS, MODELS

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
    "cmu_mocap": {"train": "train"},  # pose-only (train_pose)
    "amass": {"train": "train"},
}
# Pose-only datasets (motion capture, no images): the only ones ``train_pose`` takes, and only it.
POSE_ONLY_WORLDS = ("mocap",)
POSE_ONLY_REAL = ("cmu_mocap", "amass")
NO_DATASET = "none"  # the 2D-set segment of a lifter run that reads no 2D set (``plan.RUN_PATTERNS``)


def schema() -> dict:
    """The study schema (a fresh copy; read once per process, with libyaml when it is there)."""
    return copy.deepcopy(_schema())


@functools.cache
def _schema() -> dict:
    text = resources.files("pose_study").joinpath("schemas/study.schema.yaml").read_text()
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - a safe loader


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
    validator = _DefaultFilling(_schema())
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
                    instance[name] = copy.deepcopy(sub["default"])
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
    if NO_DATASET in datasets:
        raise ValueError(f"{where}: datasets.{NO_DATASET}: the id {NO_DATASET!r} is reserved (result paths use "
                         "it for 'no 2D set'); rename the dataset")
    for key in ("train_2d", "train_3d", "test_3d", "test_2d", "train_pose"):
        for name in data[key]:
            if name not in datasets:
                raise ValueError(f"{where}: {key} names dataset {name!r}, which is not under datasets "
                                 f"(defined: {sorted(datasets)})")
    _check_pose_only(data, where)
    for key in ("train_3d", "test_3d"):
        for name in data[key]:
            if not _is_3d(datasets[name]):
                raise ValueError(f"{where}: {key} names {name!r}, which has no 3D labels "
                                 "(a synthetic lab/occluded/outdoor world or h36m/mpi_inf_3dhp/occlusion_person/3dpw)")
    _check_real_splits(data, where)
    for model, settings in data["model_settings"].items():
        if settings.get("pretrained_backbone") == "imagenet" and MODELS[model].arch != "resnet":
            raise ValueError(f"{where}: model_settings.{model}.pretrained_backbone is 'imagenet', but ImageNet "
                             f"weights exist only for ResNet presets ({model} is a {MODELS[model].arch})")
    primary = data["report"]["primary_3d_test"]
    if primary is not None and primary not in data["test_3d"]:
        raise ValueError(f"{where}: report.primary_3d_test {primary!r} is not in test_3d {data['test_3d']}")


def _check_pose_only(data: dict, where: str) -> None:
    """``train_pose`` holds pose-only datasets, which play no other role (unused, and not made, when no
    arm pre-trains from poses, e.g. ``--config 'arms=[scratch]'``).

    A pose-only set must hold no test subject's poses. The synthetic pool's subjects (``MC01``…)
    are none of the other worlds', and the real sources (CMU mocap, AMASS) share no capture with
    the image test sets; what is detectable here is a pose-only set that is also a test (or any
    other) set, or the same real source on the same root as one.
    """
    datasets = data["datasets"]
    for key in ("train_2d", "train_3d", "test_3d", "test_2d"):
        for name in data[key]:
            if is_pose_only(datasets[name]):
                raise ValueError(f"{where}: {key} names {name!r}, a pose-only dataset (motion capture, no "
                                 "images); list it under train_pose instead")
    for name in data["train_pose"]:
        if not is_pose_only(datasets[name]):
            raise ValueError(f"{where}: train_pose names {name!r}, which is not pose-only; train_pose takes "
                             f"synthetic world {'/'.join(POSE_ONLY_WORLDS)} or real "
                             f"{'/'.join(POSE_ONLY_REAL)} datasets")
        root = datasets[name].get("root")
        for test in (*data["test_3d"], *data["test_2d"]):
            if root is not None and datasets[test].get("root") == root:
                raise ValueError(f"{where}: train_pose set {name!r} and test set {test!r} share the root "
                                 f"{root!r}; a pose-only set must hold no test subject's poses")


def is_pose_only(dataset: dict) -> bool:
    """True for a dataset definition of motion capture without images (the ``train_pose`` role)."""
    if dataset["source"] == "synthetic":
        return dataset["world"] in POSE_ONLY_WORLDS
    return dataset["name"] in POSE_ONLY_REAL


def _check_real_splits(data: dict, where: str) -> None:
    """Every role a real dataset plays needs a split of its own for that role."""
    roles = {"train_2d": ("train", "val"), "train_3d": ("train", "val"), "test_2d": ("val",),
             "test_3d": ("test",), "train_pose": ("train",)}
    for key, splits in roles.items():
        for name in data[key]:
            d = data["datasets"][name]
            missing = [s for s in splits if d["source"] == "real" and s not in NATIVE_SPLITS[d["name"]]]
            if missing:
                raise ValueError(f"{where}: {key} uses {name!r} ({d['name']}), which has no {missing} split; "
                                 f"it provides {sorted(NATIVE_SPLITS[d['name']])}")


def _is_3d(dataset: dict) -> bool:
    if dataset["source"] == "synthetic":
        return dataset["world"] not in ("wild", *POSE_ONLY_WORLDS)
    return dataset["name"] in REAL_3D


def check_presets_match_schema() -> list[str]:
    """Model, lifter and arm ids in the schema's enums that differ from the tables (empty when in sync)."""
    s = schema()
    pairs = ((s["$defs"]["model_id"]["enum"], MODELS), (s["$defs"]["lifter_id"]["enum"], LIFTERS),
             (s["properties"]["arms"]["items"]["enum"], ARMS))
    return sorted(set().union(*(set(ids) ^ set(table) for ids, table in pairs)))
