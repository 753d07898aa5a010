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
