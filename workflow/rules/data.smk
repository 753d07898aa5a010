# Stage `data`: every dataset split in the canonical HDF5 format.


rule synthesize:
    output:
        f"{R}/{DATA_PATTERN}",
    log:
        f"logs/{S}/data/{{dataset}}/{{split}}.log",
    benchmark:
        f"benchmarks/{S}/data/{{dataset}}/{{split}}.tsv"
    wildcard_constraints:
        dataset=alternatives(SYNTHETIC),
    conda:
        "../../envs/light.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        spec=lambda wc: spec_json(PLAN.data_job(wc.dataset, wc.split).spec),
    shell:
        "python -m pose_study synthesize --spec {params.spec:q} --out {output:q} > {log:q} 2>&1"


rule download:
    output:
        f"{R}/{DOWNLOAD_PATTERN}",
    log:
        f"logs/{S}/data/{{dataset}}/download.log",
    benchmark:
        f"benchmarks/{S}/data/{{dataset}}/download.tsv"
    wildcard_constraints:
        dataset=alternatives(DOWNLOADS),
    retries: 0  # a licensed-data check gives the same answer every time; public fetches retry inside the stage
    localrule: True  # many clusters' compute nodes have no internet: the login node fetches
    conda:
        "../../envs/light.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=600,
    params:
        spec=lambda wc: spec_json(PLAN.download_job(wc.dataset).spec),
    shell:
        # The message (missing files, layout, where to register) goes to the terminal as well as the log.
        "python -m pose_study download --spec {params.spec:q} --manifest {output:q} 2>&1 | tee {log:q} >&2"


rule convert:
    input:
        f"{R}/{DOWNLOAD_PATTERN}",
    output:
        f"{R}/{DATA_PATTERN}",
    log:
        f"logs/{S}/data/{{dataset}}/{{split}}.log",
    benchmark:
        f"benchmarks/{S}/data/{{dataset}}/{{split}}.tsv"
    wildcard_constraints:
        dataset=alternatives(REAL),
    conda:
        "../../envs/light.yaml"
    threads: 4
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        spec=lambda wc: spec_json(PLAN.data_job(wc.dataset, wc.split).spec),
    shell:
        "python -m pose_study convert --spec {params.spec:q} --out {output:q} > {log:q} 2>&1"
