"""One result per distinct configuration: trained cells keyed by what decides their numbers.

A study's cell is a training run (one config, one seed) and its evaluations. Many cells of different studies
are the same run: every study's reference cell (|S| 16, depth 2, N 9, box, the pipeline's SAM-2) resolves to
one config. A cell's folder is therefore named by a digest of everything its numbers depend on, as DVC's run
cache names a stage run: the config fields that change the weights (virtue.train.rundir.result_fields), the
content of the folders it reads (backbones, data, a warm start), and the code that trains and evaluates it.
The first study to need a cell trains it in runs/cells/<key>/; every later one finds its results there and
hands them to Optuna as a completed trial, without training again. A lock on the folder keeps two drivers that
need the same cell at once from training it twice."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from ..config import ExperimentConfig, load_resolved
from ..errors import UserError
from ..paths import in_workspace, workspace_root
from .inputs import code_digest, read_paths, tree_digest

CELLS = Path("runs") / "cells"
# Finished runs elsewhere that are cells too: the main path's trained variants (dvc.yaml's train stage). A study
# cell with the same key copies their final weights instead of training again.
ADOPT_FROM = (Path("runs") / "train",)
MAIN_PATH_RUN = "main_path_run.txt"  # in a cell that is a main-path run: that run's folder (runs/train/<name>)
EVAL = "eval"  # the cell's own evaluation (cfg.eval, cfg.data): <cell>/eval/metrics.json
EXTRA = "evals"  # further evaluations of a study: <cell>/evals/<name>/metrics.json


@cache
def _folder_digest(path: str) -> str:
    return tree_digest(Path(path))


def cell_key(cfg: ExperimentConfig) -> str:
    """Digest of the config fields that decide the trained weights, the folders they are read from, and the
    trial code. Output folders, tracking, launcher and evaluation settings are not part of it."""
    from ..train.rundir import result_fields

    root = workspace_root()
    files = {}
    for rel in [*read_paths(cfg), cfg.train.init_from]:
        if rel:
            p = in_workspace(rel, root)
            files[rel] = _folder_digest(str(p)) if p.is_dir() else (_file_digest(p) if p.is_file() else "missing")
    blob = json.dumps({"config": result_fields(cfg), "files": files, "code": code_digest()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def cell_dir(cfg: ExperimentConfig) -> Path:
    return workspace_root() / CELLS / cell_key(cfg)


def evaluation_dir(run_dir: Path, name: str | None) -> Path:
    return run_dir / EVAL if name is None else run_dir / EXTRA / name


def finished_evaluation(out_dir: Path, cfg: ExperimentConfig) -> dict | None:
    """The metrics of an evaluation already in out_dir that `cfg` would repeat exactly (same data, prompt,
    protocols and batch size), else None. metrics.json is written last, so its presence means complete."""
    metrics, stored = out_dir / "metrics.json", out_dir / "config.yaml"
    if not (metrics.is_file() and stored.is_file()):
        return None
    try:
        old = load_resolved(stored)
    except UserError:
        return None
    same = old.data.model_dump() == cfg.data.model_dump() and old.eval.model_dump(exclude={"output_dir"}) == (
        cfg.eval.model_dump(exclude={"output_dir"})
    )
    return json.loads(metrics.read_text(encoding="utf-8")) if same else None


@contextlib.contextmanager
def cell_lock(run_dir: Path) -> Iterator[None]:
    """Held while a cell trains and evaluates; a second process needing the same cell waits, then reuses."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(run_dir.parent / f"{run_dir.name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def finished_run_for(key: str) -> Path | None:
    """A finished run in ADOPT_FROM (the main path trained it) whose cell key is `key`, else None. Reads only."""
    from ..train.checkpoint import WEIGHTS

    for folder in ADOPT_FROM:
        for stored in sorted((workspace_root() / folder).glob("*/config.yaml")):
            if not (stored.parent / WEIGHTS).is_file():
                continue
            try:
                if cell_key(load_resolved(stored)) == key:
                    return stored.parent
            except UserError:
                continue
    return None


def adopt_finished_run(cfg: ExperimentConfig, run_dir: Path) -> Path | None:
    """If a finished run of the same cell key lies in ADOPT_FROM (the main path trained it), copy its config and
    final weights (and its training log) into the cell's folder, so the cell is evaluated, not trained again.
    Returns the run it came from, or None."""
    import shutil

    from ..io import atomic_path
    from ..train.checkpoint import WEIGHTS

    run = finished_run_for(run_dir.name)
    if run is None:
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in ("config.yaml", "metrics.jsonl", WEIGHTS):  # the weights last: they mark it finished
        if (run / name).is_file():
            with atomic_path(run_dir / name) as tmp:
                shutil.copyfile(run / name, tmp)
    mark_main_path_run(run_dir, run)
    return run


def mark_main_path_run(cell: Path, run: Path) -> None:
    """Record in the cell that it is the main path's run `run` (copied in, or trained there: --in-cells)."""
    from ..io import write_text

    write_text(cell / MAIN_PATH_RUN, os.path.relpath(run, workspace_root()) + "\n")


def main_path_run(cell: Path) -> str | None:
    """The main-path run folder this cell is, if it is one (mark_main_path_run)."""
    mark = cell / MAIN_PATH_RUN
    return mark.read_text(encoding="utf-8").strip() if mark.is_file() else None
