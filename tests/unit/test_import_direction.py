"""Library modules do not depend on the stages, the training loop, the report or the benchmarks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pose_study"
LIBRARY = ("data", "models", "metrics.py")
FORBIDDEN = ("pose_study.train", "pose_study.stages", "pose_study.report", "pose_study.benchmarks")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def _library_files() -> list[Path]:
    files = []
    for entry in LIBRARY:
        path = PACKAGE / entry
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


@pytest.mark.parametrize("path", _library_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_library_module_imports_no_stage_loop_report_or_benchmark(path):
    bad = [name for name in _imports(path) if name.startswith(FORBIDDEN)]
    assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_the_check_sees_a_forbidden_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from pose_study.stages import synthesize\nimport pose_study.train.loop\n")
    assert [n for n in _imports(module) if n.startswith(FORBIDDEN)] == ["pose_study.stages",
                                                                       "pose_study.train.loop"]
