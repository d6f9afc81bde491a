"""YAML is parsed in virtue/config only (issue 20: one place per concern): every other module goes through
virtue.config.yamlfile, whose errors name the file and line and which refuses a key given twice."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from virtue.config.yamlfile import read_yaml_or_none

PACKAGE = Path(__file__).resolve().parents[2] / "virtue"


def _imports_yaml(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "yaml" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "yaml":
            return True
    return False


def test_no_module_outside_config_imports_yaml():
    files = sorted(PACKAGE.rglob("*.py"))
    offenders = [str(p.relative_to(PACKAGE)) for p in files if p.relative_to(PACKAGE).parts[0] != "config"]
    offenders = [p for p in offenders if _imports_yaml(PACKAGE / p)]
    assert offenders == []
    assert _imports_yaml(PACKAGE / "config" / "yamlfile.py")  # the check sees an import where there is one


@pytest.mark.parametrize("content", [b"a: [1\n", b"a: 1\na: 2\n", b"\xff\xfe"])
def test_an_unreadable_record_is_absent_not_an_error(tmp_path, content):
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    assert read_yaml_or_none(path) is None
    assert read_yaml_or_none(tmp_path / "missing.yaml") is None
    path.write_text("model: {dtype: bfloat16}\n")
    assert read_yaml_or_none(path) == {"model": {"dtype": "bfloat16"}}
