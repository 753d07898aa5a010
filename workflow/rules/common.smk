# Validation, derived axes, input/param functions and wildcard constraints. No rules here.
import json
from pathlib import Path
import shlex

from pose_study._spec import spec_to_dict
from pose_study.config import Study, validate_config

validate_config(
    config, where="study config"
)  # fills defaults in place; fails before any job
STUDY = Study(config)
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


wildcard_constraints:
    model=alternatives(STUDY.models),
    arm=alternatives(STUDY.arms),
    dataset2d=alternatives(STUDY.train_2d),
    dataset3d=alternatives(STUDY.train_3d),
    seed=alternatives(STUDY.seeds),
    split="train|val|test",


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
    return expand(
        PRETRAIN_RUN, model=STUDY.models, dataset2d=STUDY.train_2d, seed=STUDY.seeds
    )


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
    return expand(f"{R}/{{run}}/{name}", run=pretrain_runs() + finetune_runs())


def all_test_splits():
    return sorted({testset_path(t) for t in TESTSETS_3D + TESTSETS_2D})


def finetune_inputs(wc):
    inputs = {
        "train_3d": data_path(wc.dataset3d, "train"),
        "val_3d": data_path(wc.dataset3d, "val"),
        "train_2d": data_path(wc.dataset2d, "train"),
    }
    if wc.arm == "pretrained_2d":
        run = PRETRAIN_RUN.format(model=wc.model, dataset2d=wc.dataset2d, seed=wc.seed)
        inputs["init_weights"] = f"{R}/{run}/model.pt"
        inputs["init_metrics"] = f"{R}/{run}/metrics.json"
    return inputs


def init_args(wc, input):
    if "init_weights" not in input.keys():
        return ""
    return f"--init-weights {shlex.quote(input.init_weights)} --init-metrics {shlex.quote(input.init_metrics)}"


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
