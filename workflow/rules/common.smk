# Validation, derived axes, input/param functions and wildcard constraints. No rules here.
import json
import os
from pathlib import Path
import shlex

from pose_study._spec import spec_to_dict
from pose_study.config import Study, validate_config
from pose_study.arms import ARMS
from pose_study.data.batches import MEMORY_ENV
from pose_study.resources import launcher, need_mb
from pose_study.lifters import LIFTERS

validate_config(
    config, where="study config"
)  # fills defaults in place; fails before any job
STUDY = Study(config)
# Jobs hold a split's decoded images whole up to this size and stream larger splits (data/batches.py).
os.environ[MEMORY_ENV] = str(config["data_memory_mb"])
S = STUDY.name
R = f"results/{S}"
NEVER = "(?!x)x"  # a constraint that matches nothing (an empty axis)


def alternatives(values):
    return "|".join(map(str, values)) or NEVER


SYNTHETIC = [d for d, v in STUDY.datasets.items() if v["source"] == "synthetic"]
REAL = [d for d, v in STUDY.datasets.items() if v["source"] == "real"]
TESTSETS_3D = [f"{d}_test" for d in STUDY.test_3d]
TESTSETS_2D = [f"{d}_val" for d in STUDY.test_2d]

PRETRAIN_RUN = "pretrain_2d/{model}/{dataset2d}/seed{seed}"
FINETUNE_RUN = "finetune_3d/{arm}/{model}/{dataset2d}/{dataset3d}/seed{seed}"
LIFTER_RUN = "train_lifter/{lifter}/{init}/{dataset3d}/seed{seed}"
POSE_RUN = "pretrain_pose/{lifter}/{dataset3d}/seed{seed}"
RUN_PATTERNS = {"train_lifter": LIFTER_RUN, "pretrain_pose": POSE_RUN}


wildcard_constraints:
    model=alternatives(STUDY.models),
    arm=alternatives(STUDY.arms),
    dataset2d=alternatives(STUDY.train_2d),
    dataset3d=alternatives(STUDY.train_3d),
    seed=alternatives(STUDY.seeds),
    split="train|val|test",
    lifter=alternatives(sorted(LIFTERS)),
    init="scratch|pretrain_pose",


def job_memory_mb(rule):
    """mem_mb of a training/evaluation rule: attempt x its need (pose_study/resources.py)."""
    return lambda wc, attempt: attempt * need_mb(rule, config["data_memory_mb"])


def data_path(dataset, split):
    return f"{R}/data/{dataset}/{split}.h5"


def testset_path(testset):
    dataset, split = testset.rsplit("_", 1)
    return data_path(dataset, split)


def spec_json(spec):
    """A stage spec as compact JSON for `params:` (a change reruns exactly the affected jobs)."""
    data = spec if isinstance(spec, dict) else spec_to_dict(spec)
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def eval_args(testsets, outputs):
    """`--test A --out a.json ...` for one evaluate job, every path shell-quoted."""
    pairs = zip((testset_path(t) for t in testsets), outputs)
    return " ".join(f"--test {shlex.quote(t)} --out {shlex.quote(o)}" for t, o in pairs)


def pretrain_runs():
    if not STUDY.needs_pretrain_2d:
        return []
    return expand(
        PRETRAIN_RUN, model=STUDY.models, dataset2d=STUDY.train_2d, seed=STUDY.seeds
    )


def lifter_run(stage, lifter, init, dataset3d, seed):
    """A train_lifter or pretrain_pose run's path below results/{study}/."""
    return RUN_PATTERNS[stage].format(
        lifter=lifter, init=init, dataset3d=dataset3d, seed=seed
    )


def lifter_runs():
    runs = [
        lifter_run("train_lifter", lifter, init, d3, seed)
        for lifter, init in STUDY.lifter_runs()
        for d3 in STUDY.train_3d
        for seed in STUDY.seeds
    ]
    return runs + [
        lifter_run("pretrain_pose", lifter, "", d3, seed)
        for lifter in STUDY.pose_pretrain_lifters()
        for d3 in STUDY.train_3d
        for seed in STUDY.seeds
    ]


def finetune_runs():
    return expand(
        FINETUNE_RUN,
        arm=STUDY.arms,
        model=STUDY.models,
        dataset2d=STUDY.train_2d,
        dataset3d=STUDY.train_3d,
        seed=STUDY.seeds,
    )


def evaluation_files():
    files = expand(
        f"{R}/evaluate/{{run}}/{{t}}.json",
        run=finetune_runs(),
        t=TESTSETS_3D + TESTSETS_2D,
    )
    files += expand(
        f"{R}/evaluate/{{run}}/{{t}}.json", run=pretrain_runs(), t=TESTSETS_2D
    )
    return files


def training_files(name):
    runs = pretrain_runs() + finetune_runs() + lifter_runs()
    return expand(f"{R}/{{run}}/{name}", run=runs)


def all_test_splits():
    return sorted({testset_path(t) for t in TESTSETS_3D + TESTSETS_2D})


def finetune_inputs(wc):
    """Data, and the upstream runs pose_study/arms.py names for the arm (Study.arm_inputs)."""
    need = STUDY.arm_inputs(wc.arm)
    inputs = {
        "train_3d": data_path(wc.dataset3d, "train"),
        "val_3d": data_path(wc.dataset3d, "val"),
        "train_2d": data_path(wc.dataset2d, "train"),
    }
    if need.pretrain_2d:
        run = PRETRAIN_RUN.format(model=wc.model, dataset2d=wc.dataset2d, seed=wc.seed)
        inputs["init_weights"] = f"{R}/{run}/model.pt"
        inputs["prior_pretrain_2d"] = f"{R}/{run}/metrics.json"
    for i, (lifter, init) in enumerate(need.guide_lifters):
        run = lifter_run("train_lifter", lifter, init, wc.dataset3d, wc.seed)
        inputs[f"guide_{i}"] = f"{R}/{run}/model.pt"
    if need.lifter_init:
        run = lifter_run("pretrain_pose", need.lifter_init, "", wc.dataset3d, wc.seed)
        inputs["lifter_init"] = f"{R}/{run}/model.pt"
    for i, prior in enumerate(need.priors):
        inputs[f"prior_{i}"] = (
            f"{R}/{lifter_run(*prior, wc.dataset3d, wc.seed)}/metrics.json"
        )
    return inputs


def upstream_args(wc, input):
    """--init-weights, --guide-lifter, --lifter-init and --prior-metrics of a finetune_3d job."""
    flags = {
        "init_weights": "--init-weights",
        "guide_": "--guide-lifter",
        "lifter_init": "--lifter-init",
        "prior_": "--prior-metrics",
    }
    args = []
    for name in input.keys():
        flag = next((f for key, f in flags.items() if name.startswith(key)), None)
        if flag:
            args.append(f"{flag} {shlex.quote(input[name])}")
    return " ".join(args)


def lifter_inputs(wc):
    """A train_lifter job's data, and its pose pre-training run when it starts from one."""
    inputs = {
        "train_3d": data_path(wc.dataset3d, "train"),
        "val_3d": data_path(wc.dataset3d, "val"),
    }
    if wc.init == "pretrain_pose":
        run = f"{R}/{lifter_run('pretrain_pose', wc.lifter, '', wc.dataset3d, wc.seed)}"
        inputs["init_weights"] = f"{run}/model.pt"
        inputs["init_metrics"] = f"{run}/metrics.json"
    return inputs


def init_args(wc, input):
    if "init_weights" not in input.keys():
        return ""
    return f"--init-weights {shlex.quote(input.init_weights)} --init-metrics {shlex.quote(input.init_metrics)}"


def evaluation_lifters(wc):
    """{variant name: model.pt} of every lifter a lifter arm's run is scored through."""
    if not ARMS[wc.arm].uses_lifters:
        return {}
    return {
        name: f"{R}/{lifter_run(*run, wc.dataset3d, wc.seed)}/model.pt"
        for name, run in STUDY.evaluation_lifters()
    }


def lifter_args(wc, input):
    """--lifter NAME=PATH per evaluation lifter, in the order of the evaluate spec's ``lifters``."""
    lifters = evaluation_lifters(wc).items()
    return " ".join(
        f"--lifter {shlex.quote(f'{name}={path}')}" for name, path in lifters
    )


def table_dir(wildcards, output):
    return str(Path(output[0]).parent)


def results_dir(wildcards, input):
    """results/{study}: the parent of the tables folder."""
    return str(Path(input.tables[0]).parents[1])


TABLES = expand(
    f"{R}/tables/{{table}}.csv", table=["metrics", "curves", "runs", "jobs", "examples"]
)
REFERENCES = str(
    Path(workflow.basedir) / "reports" / "reference_results.yaml"
)  # ships with the code
REPORT = f"reports/{S}/index.html"
