"""Reading Snakemake's dry-run listing in tests."""

from __future__ import annotations

import re


def planned_jobs(output: str) -> set[tuple[str, str]]:
    """(rule, first output) of every job a dry run lists (members of a group are indented)."""
    jobs, rule = set(), None
    for line in output.splitlines():
        if m := re.match(r"^\s*(?:local)?rule (\w+):$", line):
            rule = m.group(1)
        elif rule and (m := re.match(r"^\s+output: ([^,\s]+)", line)):
            jobs.add((rule, m.group(1)))
            rule = None
    return jobs


def dry_run_jobs(output: str) -> list[tuple[str, frozenset[str], frozenset[str]]]:
    """(rule, outputs, inputs) of every job a dry run lists (``all`` included)."""
    jobs, rule, files = [], None, {}
    for line in output.splitlines() + [""]:
        if m := re.match(r"^\s*(?:local)?rule (\w+):$", line):
            rule, files = m.group(1), {"input": "", "output": ""}
        elif rule and (m := re.match(r"^\s+(input|output): (.*)$", line)):
            files[m.group(1)] = m.group(2)
        elif rule and re.match(r"^\s+jobid: ", line):
            jobs.append((rule, *(frozenset(p for p in files[k].split(", ") if p) for k in ("output", "input"))))
            rule = None
    return jobs
