"""Imports run one way: tables ← data ← models ← lifters ← train | report ← stages ← cli.

train and report sit side by side and do not import each other.

Read from the source with ``ast`` (nothing is imported), so a backward import anywhere in the package
fails here, including one inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pose_study"
# Each entry is a layer; a module may import from lower layers and from its own top-level module or
# package. Inside the first layer (torch-free tables, the config, pure metrics) any import is fine; the plan
# (torch-free too) reads the data catalog.
LAYERS = [
    {"__init__", "_io", "_spec", "skeletons", "presets", "arms", "records", "resources", "metrics", "config"},
    {"data", "weights"},
    {"plan", "models", "predict"},
    {"lifters"},
    {"train", "report"},
    {"benchmarks", "stages"},
    {"cli"},
    {"__main__"},
]
LEVEL = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _top(module: str) -> str:
    """``pose_study.x.y`` -> ``x``; ``pose_study`` itself -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> set[str]:
    """Top-level pose_study modules ``path`` imports (``from pose_study import x`` counts as ``x``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "pose_study":
            if node.module == "pose_study":
                found |= {a.name if (PACKAGE / a.name).exists() or (PACKAGE / f"{a.name}.py").exists()
                          else "__init__" for a in node.names}
            else:
                found.add(_top(node.module))
        elif isinstance(node, ast.Import):
            found |= {_top(a.name) for a in node.names if a.name.split(".")[0] == "pose_study"}
    return found


def _modules() -> list[tuple[str, Path]]:
    return [(_top(".".join(("pose_study", *p.relative_to(PACKAGE).with_suffix("").parts))), p)
            for p in sorted(PACKAGE.rglob("*.py"))]


def test_every_module_has_a_layer():
    assert {top for top, _ in _modules()} <= set(LEVEL), sorted({top for top, _ in _modules()} - set(LEVEL))


@pytest.mark.parametrize("top,path", _modules(), ids=lambda v: str(v.relative_to(PACKAGE)) if isinstance(v, Path) else "")
def test_imports_point_down(top, path):
    backward = sorted(other for other in _imports(path) - {top}
                      if LEVEL[other] > LEVEL[top] or (LEVEL[other] == LEVEL[top] and LEVEL[top] > 0))
    assert not backward, f"{path.relative_to(PACKAGE)} ({top}, layer {LEVEL[top]}) imports {backward}"


def test_the_check_sees_a_backward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from pose_study.train.loop import train\n")
    assert _imports(bad) == {"train"} and LEVEL["train"] > LEVEL["data"]
