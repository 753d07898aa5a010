# Stage `pretrain_2d`: heatmaps on a 2D dataset (stage 1 of the seed system).


rule pretrain_2d:
    input:
        train=data_path("{dataset2d}", "train"),
        val=data_path("{dataset2d}", "val"),
    output:
        model=f"{R}/{PRETRAIN_RUN}/model.pt",
        metrics=f"{R}/{PRETRAIN_RUN}/metrics.json",
        curve=f"{R}/{PRETRAIN_RUN}/curve.csv",
    log:
        f"logs/{S}/{PRETRAIN_RUN}.log",
    benchmark:
        f"benchmarks/{S}/{PRETRAIN_RUN}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=job_memory_mb("pretrain_2d"),
        runtime=lambda wc, attempt: 720 * attempt,
        gpu=1,
    params:
        launch=lambda wc, resources: launcher(resources.gpu),
        spec=lambda wc: spec_json(STUDY.pretrain_spec(wc.model, int(wc.seed))),
        checkpoints=f"checkpoints/{S}/{PRETRAIN_RUN}",
    shell:
        "{params.launch} -m pose_study pretrain-2d --spec {params.spec:q} --train {input.train:q} --val {input.val:q} "
        "--model-out {output.model:q} --metrics-out {output.metrics:q} --curve-out {output.curve:q} "
        "--checkpoint-dir {params.checkpoints:q} > {log:q} 2>&1"
