# Stage `finetune_3d`: one job per arm (pose_study/arms.py): Zhou's fusion + geometric phases, or the
# detector fine-tuned through frozen lifters (L2D), with the heatmap loss only, or end to end (MPT).
# Its upstream runs (2D pre-training, lifters, pose pre-training) come from the plan.


rule finetune_3d:
    input:
        unpack(inputs_of(training_job("finetune_3d"))),
    output:
        **run_outputs("finetune_3d"),
    log:
        f"logs/{S}/{RUN_PATTERNS['finetune_3d']}.log",
    benchmark:
        f"benchmarks/{S}/{RUN_PATTERNS['finetune_3d']}.tsv"
    priority: lambda wc: PLAN.priority(wc.model)
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=job_memory_mb("finetune_3d"),
        runtime=lambda wc, attempt: 720 * attempt,
        gpu=1,
    params:
        launch=lambda wc, resources: launcher(resources.gpu),
        spec=spec_of(training_job("finetune_3d")),
        inputs=args_of(training_job("finetune_3d")),
        checkpoints=checkpoint_dir("finetune_3d"),
    shell:
        "{params.launch} -m pose_study finetune-3d --spec {params.spec:q} {params.inputs} "
        "--model-out {output.model:q} --metrics-out {output.metrics:q} --curve-out {output.curve:q} "
        "--checkpoint-dir {params.checkpoints:q} > {log:q} 2>&1"
