"""A dry run of config/paper.yaml under the SLURM profile asks every job for at least the memory it needs."""

from __future__ import annotations

import importlib.util
import re

import pytest
import yaml

from pose_study import resources
from tests.workflow.test_workflow import REPO, paper_config_on_fixtures, snakemake

pytestmark = pytest.mark.workflow


def job_resources(output: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of every job a dry run lists."""
    jobs, rule = [], None
    for line in output.splitlines():
        if m := re.match(r"^\s*(?:local)?rule (\w+):$", line):
            rule = m.group(1)
        elif rule and (m := re.match(r"^\s+resources: (.*)$", line)):
            jobs.append((rule, dict(item.split("=", 1) for item in m.group(1).split(", "))))
            rule = None
    return jobs


def test_paper_jobs_ask_for_their_documented_memory(tmp_path):
    config = paper_config_on_fixtures(tmp_path)
    budget = yaml.safe_load(config.read_text()).get("data_memory_mb", 2048)
    profile = ("--profile", str(REPO / "workflow/profiles/slurm")) \
        if importlib.util.find_spec("snakemake_executor_plugin_slurm") else ()
    out = snakemake("-n", *profile, "--configfile", str(config), "--directory", str(tmp_path)).stdout
    jobs = job_resources(out)
    checked = [(rule, res) for rule, res in jobs if rule in resources.SPLITS]
    assert {rule for rule, _ in checked} == set(resources.SPLITS)
    for rule, res in checked:
        need = resources.need_mb(rule, budget, int(res.get("gpu", 1)))
        assert int(res["mem_mb"]) >= need, (rule, res, need)
    assert all("mem_mb" in res for _, res in jobs)
