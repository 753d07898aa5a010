# Wiring only: validate the config, build the study's plan (pose_study/plan.py), constrain the wildcards,
# and ask the plan for each job's inputs, spec and arguments. No rules, no paths or run lists of its own.
import json
import os
from pathlib import Path

from pose_study.config import validate_config
from pose_study.plan import (
    DATA_PATTERN,
    DOWNLOAD_PATTERN,
    EVALUATION_PATTERN,
    REFERENCES,
    LIFTER_INITS,
    NO_2D,
    RUN_PATTERNS,
    TRAINING_OUTPUTS,
    Plan,
    RunKey,
)
from pose_study.presets import LIFTERS
from pose_study.resources import MEMORY_ENV, launcher, need_mb

validate_config(
    config, where="study config"
)  # fills defaults in place; fails before any job
PLAN = Plan(config)
# Jobs hold a split's decoded images whole up to this size and stream larger splits (data/batches.py).
os.environ[MEMORY_ENV] = str(config["data_memory_mb"])
S = PLAN.name
R = PLAN.results
NEVER = "(?!x)x"  # a constraint that matches nothing (an empty axis)
SYNTHETIC = [d for d, v in PLAN.datasets.items() if v["source"] == "synthetic"]
REAL = [d for d, v in PLAN.datasets.items() if v["source"] == "real"]
DOWNLOADS = REAL + PLAN.weight_entries()  # real datasets and ImageNet weight files


def alternatives(values):
    return "|".join(map(str, values)) or NEVER


wildcard_constraints:
    model=alternatives(PLAN.models),
    arm=alternatives(PLAN.arms),
    dataset2d=alternatives([*PLAN.train_2d, NO_2D]),  # NO_2D: a lifter run that reads no 2D set
    dataset3d=alternatives(PLAN.train_3d),
    seed=alternatives(PLAN.seeds),
    split="train|val|test",
    lifter=alternatives(sorted(LIFTERS)),
    init=alternatives(LIFTER_INITS),


def job_memory_mb(rule):
    """mem_mb of a training/evaluation rule: attempt x its need (pose_study/resources.py)."""
    return lambda wc, attempt: attempt * need_mb(rule, config["data_memory_mb"])


def run_file(stage, name):
    """A training stage's file as a wildcard pattern: results/{study}/<run pattern>/<name>."""
    return f"{R}/{RUN_PATTERNS[stage]}/{name}"


def run_outputs(stage):
    """model.pt, metrics.json and curve.csv of a training stage's runs, named model/metrics/curve."""
    return {Path(n).stem: run_file(stage, n) for n in TRAINING_OUTPUTS}


def evaluation_outputs(stage):
    """The evaluation JSONs of one run of ``stage`` (one per test set it is scored on)."""
    key = RunKey(stage=stage)  # the stage alone decides which test sets
    run = RUN_PATTERNS[stage]
    return [
        f"{R}/{EVALUATION_PATTERN.format(run=run, testset=t.name)}"
        for t in PLAN.test_sets_of(key)
    ]


def spec_json(spec):
    """A job's spec as compact JSON for `params:` (a change reruns exactly the affected jobs)."""
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


def training_job(stage):
    return lambda wc: PLAN.training_job(RunKey.from_wildcards(stage, wc))


def evaluation_job(stage):
    return lambda wc: PLAN.evaluation_job(RunKey.from_wildcards(stage, wc))


def inputs_of(job):
    """For `input: unpack(...)`: the named inputs of the job the wildcards name."""
    return lambda wc: job(wc).inputs


def spec_of(job):
    return lambda wc: spec_json(job(wc).spec)


def args_of(job):
    """For `params:`: the command-line arguments that pass the job's inputs (plan.FLAGS)."""
    return lambda wc: job(wc).args


def checkpoint_dir(stage):
    return lambda wc: PLAN.checkpoint_dir(RunKey.from_wildcards(stage, wc))


def table_dir(wildcards, output):
    """results/{study}/tables, from the collect job's own outputs (no hard-coded prefix)."""
    return str(Path(output[0]).parent)


def results_dir(wildcards, input):
    """results/{study}: the parent of the tables folder."""
    return str(Path(input.tables[0]).parents[1])
