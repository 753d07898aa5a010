# Stage `evaluate`: every 3D model on every 3D test split, every model on the 2D test splits.
# A lifter arm's run is also scored through every lifter of the study (cross-lifter validation).
# One job per trained run loads the model once and writes one JSON per test split.


if TESTSETS_3D or TESTSETS_2D:

    rule evaluate_finetune_3d:
        input:
            weights=f"{R}/{FINETUNE_RUN}/model.pt",
            tests=all_test_splits(),
            train_3d=data_path("{dataset3d}", "train"),
            train_2d=data_path("{dataset2d}", "train"),
            lifters=lambda wc: list(evaluation_lifters(wc).values()),
        output:
            [f"{R}/evaluate/{FINETUNE_RUN}/{t}.json" for t in TESTSETS_3D + TESTSETS_2D],
        log:
            f"logs/{S}/evaluate/{FINETUNE_RUN}.log",
        benchmark:
            f"benchmarks/{S}/evaluate/{FINETUNE_RUN}.tsv"
        conda:
            "../../envs/train.yaml"
        threads: 1
        resources:
            mem_mb=job_memory_mb("evaluate_finetune_3d"),
            runtime=lambda wc, attempt: 60 * attempt,
            gpu=1,
        params:
            spec=lambda wc: spec_json(
                STUDY.evaluate_spec(wc.model, FINETUNE_RUN.format(**wc), wc.arm)
            ),
            tests=lambda wc, output: eval_args(TESTSETS_3D + TESTSETS_2D, output),
            lifters=lifter_args,
        shell:
            "python -m pose_study evaluate --spec {params.spec:q} --weights {input.weights:q} {params.tests} "
            "{params.lifters} --train-3d {input.train_3d:q} --train-2d {input.train_2d:q} > {log:q} 2>&1"


if TESTSETS_2D:

    rule evaluate_pretrain_2d:
        input:
            weights=f"{R}/{PRETRAIN_RUN}/model.pt",
            tests=[testset_path(t) for t in TESTSETS_2D],
            train_2d=data_path("{dataset2d}", "train"),
        output:
            [f"{R}/evaluate/{PRETRAIN_RUN}/{t}.json" for t in TESTSETS_2D],
        log:
            f"logs/{S}/evaluate/{PRETRAIN_RUN}.log",
        benchmark:
            f"benchmarks/{S}/evaluate/{PRETRAIN_RUN}.tsv"
        conda:
            "../../envs/train.yaml"
        threads: 1
        resources:
            mem_mb=job_memory_mb("evaluate_pretrain_2d"),
            runtime=lambda wc, attempt: 60 * attempt,
            gpu=1,
        params:
            spec=lambda wc: spec_json(
                STUDY.evaluate_spec(wc.model, PRETRAIN_RUN.format(**wc))
            ),
            tests=lambda wc, output: eval_args(TESTSETS_2D, output),
        shell:
            "python -m pose_study evaluate --spec {params.spec:q} --weights {input.weights:q} {params.tests} "
            "--train-2d {input.train_2d:q} > {log:q} 2>&1"
