"""The command line: one subcommand per stage, each job importing only its own stage."""

import subprocess
import sys

from pose_study import cli


def test_a_stage_job_imports_only_its_own_stage() -> None:
    # every Snakemake job starts a process: a training job must not pay for the report's plotting stack
    code = ("import sys; from pose_study import cli; cli.build_parser(['finetune-3d', '--help']); "
            "print(sorted(m for m in sys.modules if m.startswith(('seaborn', 'pose_study.stages.report', "
            "'pose_study.stages.collect', 'pose_study.benchmarks.cost'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    listing = cli.build_parser([]).format_help()
    assert all(name in listing for name, _, _ in cli.STAGES)
