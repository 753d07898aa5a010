# Stages `pretrain_pose` and `train_lifter`: 2D→3D lifters, trained on poses without images.
# pretrain_pose: APTPose masked pose-sequence modeling, or MPT heatmaps from 3D poses.
# train_lifter: a lifter on the ground-truth 2D of the 3D training set, from scratch or pre-trained.


rule pretrain_pose:
    input:
        train_3d=data_path("{dataset3d}", "train"),
        val_3d=data_path("{dataset3d}", "val"),
        train_2d=[data_path(d, "train") for d in STUDY.train_2d],
    output:
        model=f"{R}/{POSE_RUN}/model.pt",
        metrics=f"{R}/{POSE_RUN}/metrics.json",
        curve=f"{R}/{POSE_RUN}/curve.csv",
    log:
        f"logs/{S}/{POSE_RUN}.log",
    benchmark:
        f"benchmarks/{S}/{POSE_RUN}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 240 * attempt,
        gpu=1,
    params:
        spec=lambda wc: spec_json(STUDY.pretrain_pose_spec(wc.lifter, int(wc.seed))),
        train_2d=lambda wc, input: " ".join(
            f"--train-2d {shlex.quote(p)}" for p in input.train_2d
        ),
        checkpoints=f"checkpoints/{S}/{POSE_RUN}",
    shell:
        "python -m pose_study pretrain-pose --spec {params.spec:q} --train-3d {input.train_3d:q} "
        "--val-3d {input.val_3d:q} {params.train_2d} --model-out {output.model:q} "
        "--metrics-out {output.metrics:q} --curve-out {output.curve:q} "
        "--checkpoint-dir {params.checkpoints:q} > {log:q} 2>&1"


rule train_lifter:
    input:
        unpack(lifter_inputs),
    output:
        model=f"{R}/{LIFTER_RUN}/model.pt",
        metrics=f"{R}/{LIFTER_RUN}/metrics.json",
        curve=f"{R}/{LIFTER_RUN}/curve.csv",
    log:
        f"logs/{S}/{LIFTER_RUN}.log",
    benchmark:
        f"benchmarks/{S}/{LIFTER_RUN}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 120 * attempt,
        gpu=1,
    params:
        spec=lambda wc: spec_json(
            STUDY.train_lifter_spec(wc.lifter, wc.init, int(wc.seed))
        ),
        init=init_args,
        checkpoints=f"checkpoints/{S}/{LIFTER_RUN}",
    shell:
        "python -m pose_study train-lifter --spec {params.spec:q} --train-3d {input.train_3d:q} "
        "--val-3d {input.val_3d:q} {params.init} --model-out {output.model:q} "
        "--metrics-out {output.metrics:q} --curve-out {output.curve:q} "
        "--checkpoint-dir {params.checkpoints:q} > {log:q} 2>&1"
