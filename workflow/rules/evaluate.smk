# Stage `evaluate`: every 3D model on every 3D test split, every model on the 2D test splits.
# A lifter arm's run is also scored through every lifter of the study (cross-lifter validation).
# One job per trained run loads the model once and writes one JSON per test split.


if PLAN.test_sets():

    rule evaluate_finetune_3d:
        input:
            unpack(inputs_of(evaluation_job("finetune_3d"))),
        output:
            evaluation_outputs("finetune_3d"),
        log:
            f"logs/{S}/evaluate/{RUN_PATTERNS['finetune_3d']}.log",
        benchmark:
            f"benchmarks/{S}/evaluate/{RUN_PATTERNS['finetune_3d']}.tsv"
        conda:
            "../../envs/train.yaml"
        threads: 1
        resources:
            mem_mb=job_memory_mb("evaluate_finetune_3d"),
            runtime=lambda wc, attempt: 60 * attempt,
            gpu=1,
        params:
            spec=spec_of(evaluation_job("finetune_3d")),
            inputs=args_of(evaluation_job("finetune_3d")),
        shell:
            "python -m pose_study evaluate --spec {params.spec:q} {params.inputs} > {log:q} 2>&1"


if PLAN.test_sets("2d"):

    rule evaluate_pretrain_2d:
        input:
            unpack(inputs_of(evaluation_job("pretrain_2d"))),
        output:
            evaluation_outputs("pretrain_2d"),
        log:
            f"logs/{S}/evaluate/{RUN_PATTERNS['pretrain_2d']}.log",
        benchmark:
            f"benchmarks/{S}/evaluate/{RUN_PATTERNS['pretrain_2d']}.tsv"
        conda:
            "../../envs/train.yaml"
        threads: 1
        resources:
            mem_mb=job_memory_mb("evaluate_pretrain_2d"),
            runtime=lambda wc, attempt: 60 * attempt,
            gpu=1,
        params:
            spec=spec_of(evaluation_job("pretrain_2d")),
            inputs=args_of(evaluation_job("pretrain_2d")),
        shell:
            "python -m pose_study evaluate --spec {params.spec:q} {params.inputs} > {log:q} 2>&1"
