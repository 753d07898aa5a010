# Stage `finetune_3d`: one job per arm (pose_study/arms.py): Zhou's fusion + geometric phases, or the
# detector fine-tuned through frozen lifters (L2D), with the heatmap loss only, or end to end (MPT).


rule finetune_3d:
    input:
        unpack(finetune_inputs),
    output:
        model=f"{R}/{FINETUNE_RUN}/model.pt",
        metrics=f"{R}/{FINETUNE_RUN}/metrics.json",
        curve=f"{R}/{FINETUNE_RUN}/curve.csv",
    log:
        f"logs/{S}/{FINETUNE_RUN}.log",
    benchmark:
        f"benchmarks/{S}/{FINETUNE_RUN}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=job_memory_mb("finetune_3d"),
        runtime=lambda wc, attempt: 720 * attempt,
        gpu=1,
    params:
        launch=lambda wc, resources: launcher(resources.gpu),
        spec=lambda wc: spec_json(STUDY.finetune_spec(wc.arm, wc.model, int(wc.seed))),
        upstream=upstream_args,
        checkpoints=f"checkpoints/{S}/{FINETUNE_RUN}",
    shell:
        "{params.launch} -m pose_study finetune-3d --spec {params.spec:q} --train-3d {input.train_3d:q} "
        "--val-3d {input.val_3d:q} --train-2d {input.train_2d:q} {params.upstream} "
        "--model-out {output.model:q} --metrics-out {output.metrics:q} --curve-out {output.curve:q} "
        "--checkpoint-dir {params.checkpoints:q} > {log:q} 2>&1"
