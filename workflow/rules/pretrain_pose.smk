# Stage `pretrain_pose`: a lifter pre-trained from poses alone (APTPose masked pose-sequence modeling,
# or MPT heatmaps synthesised from 3D poses), from the pose-only sets (train_pose) when configured, else
# from the 3D training set's poses. Keyed by the 2D set it reads (apt: its run's own; none otherwise).


rule pretrain_pose:
    input:
        unpack(inputs_of(training_job("pretrain_pose"))),
    output:
        **run_outputs("pretrain_pose"),
    log:
        f"logs/{S}/{RUN_PATTERNS['pretrain_pose']}.log",
    benchmark:
        f"benchmarks/{S}/{RUN_PATTERNS['pretrain_pose']}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 240 * attempt,
        gpu=1,
    params:
        spec=spec_of(training_job("pretrain_pose")),
        inputs=args_of(training_job("pretrain_pose")),
        checkpoints=checkpoint_dir("pretrain_pose"),
    shell:
        "python -m pose_study pretrain-pose --spec {params.spec:q} {params.inputs} "
        "--model-out {output.model:q} --metrics-out {output.metrics:q} --curve-out {output.curve:q} "
        "--checkpoint-dir {params.checkpoints:q} > {log:q} 2>&1"
