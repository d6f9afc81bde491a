"""Structural rules of issue 20 that a reader relies on: functions under virtue/train and virtue/orchestrate fit
on a screen (at most 60 lines, decorators and docstring included), and paths from configs are resolved
against the workspace by virtue.paths.in_workspace, not by hand."""

from __future__ import annotations

import ast
from pathlib import Path

from virtue.paths import in_workspace

PACKAGE = Path(__file__).resolve().parents[1] / "virtue"
MAX_LINES = 60


def _long_functions(path: Path, limit: int, base: Path = PACKAGE) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = node.end_lineno - first + 1
            if length > limit:
                out.append(f"{path.relative_to(base)}:{node.lineno} {node.name} ({length} lines)")
    return out


def test_no_function_over_60_lines_in_train_and_orchestrate():
    files = sorted([*(PACKAGE / "train").rglob("*.py"), *(PACKAGE / "orchestrate").rglob("*.py")])
    assert files
    assert [f for p in files for f in _long_functions(p, MAX_LINES)] == []


def test_the_length_check_sees_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    src = tmp_path / "virtue_long.py"
    src.write_text(f"def long():\n{body}\n\ndef short():\n    return 1\n")
    assert [f.split()[1] for f in _long_functions(src, MAX_LINES, tmp_path)] == ["long"]


def test_in_workspace_resolves_relative_paths_against_the_workspace_not_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "ws"
    assert in_workspace("runs/train", root) == root / "runs" / "train"
    assert in_workspace(tmp_path / "abs", root) == tmp_path / "abs"
    monkeypatch.setenv("VIRTUE_ROOT", str(root))
    assert in_workspace("data/x.jsonl") == root.resolve() / "data" / "x.jsonl"
