# Stage `train_lifter`: a 2D→3D lifter on the ground-truth 2D of the 3D training set, from scratch or
# from its pose pre-training.


rule train_lifter:
    input:
        unpack(inputs_of(training_job("train_lifter"))),
    output:
        **run_outputs("train_lifter"),
    log:
        f"logs/{S}/{RUN_PATTERNS['train_lifter']}.log",
    benchmark:
        f"benchmarks/{S}/{RUN_PATTERNS['train_lifter']}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 120 * attempt,
        gpu=1,
    params:
        spec=spec_of(training_job("train_lifter")),
        inputs=args_of(training_job("train_lifter")),
        checkpoints=checkpoint_dir("train_lifter"),
    shell:
        "python -m pose_study train-lifter --spec {params.spec:q} {params.inputs} "
        "--model-out {output.model:q} --metrics-out {output.metrics:q} --curve-out {output.curve:q} "
        "--checkpoint-dir {params.checkpoints:q} > {log:q} 2>&1"
