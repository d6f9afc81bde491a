"""Load an experiment: YAML file (with an optional `base:` parent) + dotted `key=value` overrides,
validated by the schema. Every failure is a UserError naming the file and the key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import UserError
from ..io import write_text
from ..paths import experiments_dir
from .base import RENAMED
from .schema import ExperimentConfig
from .yamlfile import read_yaml

Key = tuple[str, ...]


def experiment_path(name_or_path: str | os.PathLike) -> Path:
    """`tiny` -> experiments/tiny.yaml; an existing path is taken as it is."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise UserError(f"{p}: no such experiment file")
        return p
    candidate = experiments_dir() / f"{name_or_path}.yaml"
    if not candidate.is_file():
        known = sorted(f.stem for f in experiments_dir().glob("*.yaml"))
        raise UserError(f"{candidate}: no such experiment (known: {', '.join(known) or 'none'})")
    return candidate


def _read_yaml(path: Path) -> dict[str, Any]:
    data = read_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: the top level must be a mapping of config sections")
    return data


def _merge(dst: dict, src: dict, sources: dict[Key, str], label: str, prefix: Key = ()) -> None:
    for k, v in src.items():
        key = (*prefix, str(k))
        if isinstance(v, dict) and isinstance(dst.get(k, {}), dict):
            _merge(dst.setdefault(k, {}), v, sources, label, key)
        else:
            dst[k] = v
            sources[key] = label


def _load_tree(path: Path, sources: dict[Key, str], seen: tuple[Path, ...] = ()) -> dict:
    if path.resolve() in seen:
        raise UserError(f"{path}: base: circular inheritance")
    data = _read_yaml(path)
    tree: dict = {}
    base = data.pop("base", None)
    if base is not None:
        if not isinstance(base, str):
            raise UserError(f"{path}: base: must be an experiment name or file")
        base_path = path.parent / base if base.endswith((".yaml", ".yml")) else path.parent / f"{base}.yaml"
        if not base_path.is_file():
            raise UserError(f"{path}: base: no such experiment file {base_path}")
        tree = _load_tree(base_path, sources, (*seen, path.resolve()))
    _merge(tree, data, sources, str(path))
    tree.setdefault("name", path.stem)
    return tree


def parse_override(text: str, file_label: str) -> tuple[Key, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"{file_label}: override '{text}': expected dotted.key=value")
    parts = tuple(key.strip().split("."))
    if any(not p for p in parts):
        raise UserError(f"{file_label}: override '{text}': empty component in key '{key}'")
    return parts, override_value(raw)


def override_value(raw: str) -> Any:
    """The value of `key=value` as YAML reads it (numbers, booleans, lists), except that a command line has
    no comments: `name=run #2` keeps its '#...' (YAML would drop it), and so does an unquoted '#' anywhere."""
    if not raw.strip():
        return ""
    text = raw.strip()
    quoted = len(text) >= 2 and text[0] == text[-1] and text[0] in "'\""
    if "#" in text and not quoted:
        return raw
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def apply_override(tree: dict, sources: dict[Key, str], text: str, file_label: str) -> None:
    parts, value = parse_override(text, file_label)
    node = tree
    for i, p in enumerate(parts[:-1]):
        child = node.get(p)
        if child is None:
            child = node[p] = {}
        elif not isinstance(child, dict):
            dotted = ".".join(parts[: i + 1])
            raise UserError(f"{file_label}: {dotted}: is a value, not a section (override '{text}')")
        node = child
    node[parts[-1]] = value
    sources[parts] = f"{file_label} (override '{text}')"


def _explain(err: ValidationError, sources: dict[Key, str], file_label: str) -> str:
    e = err.errors()[0]
    loc = tuple(str(p) for p in e["loc"])
    if e["type"] == RENAMED:  # the error is the section's; name the old key inside it, and the new one
        old, new = (*loc, e["ctx"]["old"]), ".".join((*loc, e["ctx"]["new"]))
        return f"{sources.get(old, file_label)}: {'.'.join(old)}: renamed to {new}"
    origin = file_label
    for n in range(len(loc), 0, -1):
        if loc[:n] in sources:
            origin = sources[loc[:n]]
            break
    else:  # an error on a section as a whole (cross-field check): name the deepest override inside it
        inside = [src for k, src in sources.items() if k[: len(loc)] == loc and "override" in src]
        origin = inside[-1] if inside else file_label
    key = ".".join(loc) or "<top level>"
    if e["type"] == "extra_forbidden":
        return f"{origin}: {key}: unknown key"
    if e["type"] == "missing":
        return f"{origin}: {key}: required key is missing"
    msg = e["msg"].removeprefix("Value error, ")
    got = e.get("input")
    shown = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
    return f"{origin}: {key}: {msg}{shown}"


def load_experiment(name_or_path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    path = experiment_path(name_or_path)
    sources: dict[Key, str] = {}
    tree = _load_tree(path, sources)
    for text in overrides:
        apply_override(tree, sources, text, str(path))
    try:
        return ExperimentConfig.model_validate(tree)
    except ValidationError as err:
        raise UserError(_explain(err, sources, str(path))) from None


def with_overrides(cfg: ExperimentConfig, overrides: list[str] | tuple[str, ...]) -> ExperimentConfig:
    """A resolved config with more dotted overrides applied (validated like any other)."""
    tree = cfg.model_dump(mode="json")
    sources: dict[Key, str] = {}
    label = f"config of {cfg.name}"
    for text in overrides:
        apply_override(tree, sources, text, label)
    try:
        return ExperimentConfig.model_validate(tree)
    except ValidationError as err:
        raise UserError(_explain(err, sources, label)) from None


def to_yaml(cfg: ExperimentConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def flatten(cfg: ExperimentConfig) -> dict[str, Any]:
    """Dotted keys -> leaf values (lists kept whole): for diffs and MLflow params."""
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else k)
        else:
            out[prefix] = node

    walk(cfg.model_dump(mode="json"), "")
    return out


def write_resolved(cfg: ExperimentConfig, folder: str | os.PathLike) -> Path:
    """The resolved config, written next to an output (atomically)."""
    path = Path(folder) / "config.yaml"
    write_text(path, to_yaml(cfg))
    return path


def load_resolved(path: str | os.PathLike) -> ExperimentConfig:
    """Read a config.yaml written by write_resolved (no base, no overrides)."""
    path = Path(path)
    try:
        return ExperimentConfig.model_validate(_read_yaml(path))
    except ValidationError as err:
        raise UserError(_explain(err, {}, str(path))) from None
