# Stage `pretrain_2d`: heatmaps on a 2D dataset (stage 1 of the seed system).


rule pretrain_2d:
    input:
        unpack(inputs_of(training_job("pretrain_2d"))),
    output:
        **run_outputs("pretrain_2d"),
    log:
        f"logs/{S}/{RUN_PATTERNS['pretrain_2d']}.log",
    benchmark:
        f"benchmarks/{S}/{RUN_PATTERNS['pretrain_2d']}.tsv"
    priority: lambda wc: PLAN.priority(wc.model)
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=job_memory_mb("pretrain_2d"),
        runtime=lambda wc, attempt: 720 * attempt,
        gpu=1,
    params:
        launch=lambda wc, resources: launcher(resources.gpu),
        spec=spec_of(training_job("pretrain_2d")),
        inputs=args_of(training_job("pretrain_2d")),
        checkpoints=checkpoint_dir("pretrain_2d"),
    shell:
        "{params.launch} -m pose_study pretrain-2d --spec {params.spec:q} {params.inputs} "
        "--model-out {output.model:q} --metrics-out {output.metrics:q} --curve-out {output.curve:q} "
        "--checkpoint-dir {params.checkpoints:q} > {log:q} 2>&1"
