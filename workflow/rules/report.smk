# Stages `collect` and `report`: tidy tables from every result, then one self-contained HTML page.


rule collect:
    input:
        **PLAN.collect_job().inputs,
    output:
        tables=[
            report(
                t,
                caption=f"../report/{Path(t).stem}.rst",
                category="Tables",
                labels={"table": Path(t).stem},
            )
            for t in PLAN.collect_job().outputs
        ],
    log:
        f"logs/{S}/collect.log",
    benchmark:
        f"benchmarks/{S}/report/collect.tsv"
    localrule: True
    conda:
        "../../envs/light.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        config=spec_json(config),
        benchmarks=f"benchmarks/{S}",
        out_dir=table_dir,
    shell:
        "python -m pose_study collect --config {params.config:q} --results {params.out_dir:q}/.. "
        "--benchmarks {params.benchmarks:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule report:
    input:
        **PLAN.report_job().inputs | {"references": f"{workflow.basedir}/{REFERENCES}"},
    output:
        report(PLAN.report_path, caption="../report/index.rst", category="Report"),
    log:
        f"logs/{S}/report.log",
    benchmark:
        f"benchmarks/{S}/report/render.tsv"
    localrule: True
    conda:
        "../../envs/light.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        config=spec_json(config),
        results=results_dir,
    shell:
        "python -m pose_study report --config {params.config:q} --tables {params.results:q}/tables "
        "--results {params.results:q} --references {input.references:q} --out {output:q} > {log:q} 2>&1"
