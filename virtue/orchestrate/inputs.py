"""What a study's results were made from, so that continuing a study never mixes trials of different inputs.

A study continues from its Optuna storage (journal) and its trial folders. That is only right while the
inputs are the same: the study definition, every cell's resolved config (which carries the per-trial budget
given with --set), the files the trials read (backbones and data) and the code that trains and evaluates
them (the sweep driver's own code does not count). The driver keeps a digest of each in
runs/sweeps/<study>/inputs.json and compares it before continuing; a change means the old trials answer a
different question (e.g. `dvc repro` after the backbones were pre-trained again)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..config import ExperimentConfig
from ..io import write_json
from ..paths import in_workspace, workspace_root
from .study import StudySpec

# The packages whose code decides a trial's numbers.
_TRIAL_CODE = ("config", "data", "models", "train", "eval")

# Fields that may change while a study continues: more seeds or trials add work, resources do not change values.
# The cells are in the configs digest: another set of cells starts the study over, and every cell it keeps finds
# its result again in runs/cells (virtue.orchestrate.cells) instead of training.
_FREE_FIELDS = {"seeds", "n_trials", "slurm", "description", "cells", "omitted", "reference_seeds"}


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def tree_digest(folder: Path, pattern: str = "*") -> str:
    h = hashlib.sha256()
    for p in sorted(q for q in folder.rglob(pattern) if q.is_file()):
        h.update(p.relative_to(folder).as_posix().encode() + b"\0")
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def code_digest() -> str:
    """Digest of the code that trains and evaluates a trial (the sweep driver's own code does not count)."""
    package = Path(__file__).resolve().parents[1]
    return _digest({name: tree_digest(package / name, "*.py") for name in _TRIAL_CODE})


def read_paths(cfg: ExperimentConfig) -> list[str]:
    """Local folders a trial reads its weights and data from (hub ids and unset paths are skipped)."""
    paths = [cfg.model.sam.path, cfg.model.vlm.path, cfg.data.scar_dir, cfg.data.mmeb_dir]
    return [p for p in paths if p]


def study_inputs(spec: StudySpec, cfgs: list[ExperimentConfig], own_dir: Path) -> dict[str, str]:
    """Digests of the study definition, the cells' configs and the files they read. Folders inside the
    study's own directory (backbones it pre-trains itself) follow from the rest and are not hashed."""
    root = workspace_root()
    files: dict[str, str] = {}
    for cfg in cfgs:
        for rel in read_paths(cfg):
            p = in_workspace(rel, root)
            if p.is_dir() and own_dir.resolve() not in p.resolve().parents and rel not in files:
                files[rel] = tree_digest(p)
    return {
        "code": code_digest(),
        "study": _digest(spec.model_dump(mode="json", exclude=_FREE_FIELDS)),
        "configs": _digest([cfg.model_dump(mode="json") for cfg in cfgs]),
        "files": _digest(files),
    }


def changed_inputs(path: Path, current: dict[str, str]) -> list[str]:
    """Which digests differ from those recorded at `path` (none when nothing was recorded yet)."""
    if not path.is_file():
        return []
    old = json.loads(path.read_text(encoding="utf-8"))
    return sorted(k for k in current if old.get(k) != current[k])


def record_inputs(path: Path, current: dict[str, str]) -> None:
    write_json(path, current)
