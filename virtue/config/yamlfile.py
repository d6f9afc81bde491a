"""Reading YAML in one place: files written by people (experiments, studies, params.yaml), where a key given
twice in one mapping is an error (plain YAML keeps the last one silently) and a file that is not UTF-8 or not
YAML is a one-line UserError naming the file and line; and records read for information only (a run's
config.yaml on the results page), where an unreadable file is simply absent."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError


class _UniqueKeyLoader(yaml.SafeLoader):
    pass


def _mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key '{key}' appears twice (first on line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def parse_yaml(text: str, label: str) -> Any:
    """YAML text -> Python objects; errors name `label` and the line."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{label}:{where} invalid YAML: {getattr(e, 'problem', None) or e}") from None


def read_yaml(path: str | os.PathLike) -> Any:
    """A YAML file -> Python objects (None for an empty file)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read: {e.strerror}") from None
    return parse_yaml(text, str(path))


def read_yaml_or_none(path: str | os.PathLike) -> Any:
    """A record read for information (a run's resolved config.yaml on the results page): its contents, or None
    where the file is missing, unreadable or not YAML. A report of older runs is still a report."""
    try:
        return read_yaml(path)
    except UserError:
        return None
