# pose_study: 2D pre-training for 3D human pose, as one DAG.
#
#   make study                                    # the default synthetic study (config/synthetic.yaml)
#   snakemake --configfile config/paper.yaml      # the real-data study
#
# results/{study}/
#   data/{dataset}/{split}.h5                                      synthesize | download + convert
#   pretrain_2d/{model}/{dataset2d}/seed{seed}/                     pretrain_2d  (model.pt, metrics.json, curve.csv, spec.json)
#   pretrain_pose/{lifter}/{dataset2d}/{dataset3d}/seed{seed}/      pretrain_pose (same files; dataset2d none:
#   train_lifter/{lifter}/{init}/{dataset2d}/{dataset3d}/seed{seed}/ train_lifter  (same files)   no 2D set read)
#   finetune_3d/{arm}/{model}/{dataset2d}/{dataset3d}/seed{seed}/   finetune_3d  (same files)
#   evaluate/<training run path>/{testset}.json                    evaluate     (testset = {dataset}_{split})
#   tables/{metrics,curves,runs,jobs,examples}.csv                 collect
# reports/{study}/index.html                                       report
# logs/{study}/... and benchmarks/{study}/... mirror results/; checkpoints/{study}/... hold resume state.
# The patterns live in pose_study/plan.py (RUN_PATTERNS, DATA_PATTERN, ...): the rules ask the plan.

from snakemake.utils import min_version

min_version("9.20")


# The default study, only when no --configfile is given (Snakemake would merge the two configs).
if not config:

    configfile: "config/synthetic.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/pretrain_2d.smk"
include: "workflow/rules/pretrain_pose.smk"
include: "workflow/rules/train_lifter.smk"
include: "workflow/rules/finetune_3d.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        PLAN.report_path,
        PLAN.table_paths(),
