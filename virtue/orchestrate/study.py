"""A sweep study as data (sweeps/studies/<name>.yaml): the base experiment, the ablated axis as config
overrides per cell (or a search space for TPE), the metric, the objective and the Slurm resources."""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from ..config import ExperimentConfig, load_experiment
from ..config.base import Section
from ..config.launcher import LauncherConfig
from ..errors import UserError
from ..paths import workspace_root


class Cell(Section):
    label: str = Field(..., min_length=1, description="the cell's value on the axis (plot tick, table row)")
    overrides: list[str] = Field(default_factory=list, description="dotted key=value overrides for this cell")


class BackboneJob(Section):
    """A backbone some cells need that the main pipeline does not make: the driver pre-trains it (SAM-2 only,
    with the study's overrides, then these) into `path` before the trials, unless `path` already exists."""

    path: str = Field(..., min_length=1, description="save_pretrained folder the cells point model.sam.path at")
    overrides: list[str] = Field(default_factory=list, description="e.g. model.sam.arch=sam2-tiny-s")


class SearchParam(Section):
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _range_or_choices(self):
        if (self.choices is None) == (self.low is None or self.high is None):
            raise ValueError("give either 'choices' or both 'low' and 'high'")
        if self.low is not None and self.high is not None and self.low >= self.high:
            raise ValueError("'low' must be below 'high'")
        return self


class StudySpec(Section):
    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    experiment: str = Field("tiny", description="base experiment (name under experiments/ or a path)")
    overrides: list[str] = Field(default_factory=list, description="applied to every cell before the cell's own")
    sampler: Literal["grid", "tpe"] = "grid"
    axis: str = Field("cell", description="name of the ablated axis (x label, table column)")
    cells: list[Cell] = Field(default_factory=list, description="grid: one entry per cell, in plot order")
    search: dict[str, SearchParam] = Field(default_factory=dict, description="tpe: config key -> range/choices")
    n_trials: int = Field(20, ge=1, description="tpe: trials in total (seeds not counted)")
    seeds: int = Field(1, ge=1, description="each cell is run with train.seed = 0..seeds-1")
    metric: str = Field(..., description="dotted key into the objective's metrics dict, e.g. scar.overall.hit@1")
    extra_metrics: list[str] = Field(default_factory=list, description="also summarised in the report")
    direction: Literal["maximize", "minimize"] = "maximize"
    objective: str = Field("virtue.orchestrate.trial:run_trial", description="module:function(cfg, *, tracker)")
    sampler_seed: int = 0
    backbones: list[BackboneJob] = Field(default_factory=list, description="pre-trained before the trials")
    slurm: LauncherConfig = Field(default_factory=lambda: LauncherConfig(kind="slurm", log_dir="runs/sweeps/logs"))

    @model_validator(mode="after")
    def _shape(self):
        if self.sampler == "grid":
            if not self.cells:
                raise ValueError("a grid study needs 'cells'")
            labels = [c.label for c in self.cells]
            if len(set(labels)) != len(labels):
                raise ValueError(f"cell labels must be unique (got {labels})")
        elif not self.search:
            raise ValueError("a tpe study needs a 'search' space")
        if not re.fullmatch(r"[\w.]+:[\w.]+", self.objective):
            raise ValueError("'objective' must be 'module:function'")
        return self


def studies_dir() -> Path:
    return workspace_root() / "sweeps" / "studies"


def load_study(name_or_path: str | os.PathLike) -> StudySpec:
    p = Path(name_or_path)
    path = p if p.suffix in (".yaml", ".yml") else studies_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(f.stem for f in studies_dir().glob("*.yaml"))
        raise UserError(f"{path}: no such study (known: {', '.join(known) or 'none'})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise UserError(f"{path}: invalid YAML: {e}") from e
    if not isinstance(data, dict):
        raise UserError(f"{path}: the top level must be a mapping")
    data.setdefault("name", path.stem)
    try:
        return StudySpec.model_validate(data)
    except ValidationError as err:
        e = err.errors()[0]
        key = ".".join(str(x) for x in e["loc"]) or "<top level>"
        raise UserError(f"{path}: {key}: {e['msg'].removeprefix('Value error, ')}") from None


def load_objective(ref: str) -> Callable[..., dict]:
    module, _, attr = ref.partition(":")
    try:
        fn = importlib.import_module(module)
        for part in attr.split("."):
            fn = getattr(fn, part)
    except (ImportError, AttributeError) as e:
        raise UserError(f"objective {ref}: cannot import ({e})") from e
    return fn


def trial_overrides(spec: StudySpec, params: dict[str, Any], seed: int, run_dir: Path) -> list[str]:
    """The overrides of one trial: study-wide, then the cell's (grid) or the sampled values (tpe), then the
    seed and the trial's own output folders (so a requeued trial resumes from its own checkpoints)."""
    out = list(spec.overrides)
    if spec.sampler == "grid":
        out += next(c.overrides for c in spec.cells if c.label == params["cell"])
    else:
        out += [f"{k}={v}" for k, v in params.items() if k != "seed"]
    out += [f"train.seed={seed}", f"train.output_dir={run_dir}", f"eval.output_dir={run_dir / 'eval'}"]
    return out


def trial_config(spec: StudySpec, overrides: list[str]) -> ExperimentConfig:
    return load_experiment(spec.experiment, overrides)


def pick_metric(metrics: dict, key: str) -> float:
    """`a.b.c` into nested dicts (keys may themselves contain dots, e.g. 'hit@1')."""
    node: Any = metrics
    rest = key
    while rest:
        if isinstance(node, dict) and rest in node:
            node, rest = node[rest], ""
            break
        head, _, tail = rest.partition(".")
        if not isinstance(node, dict) or head not in node:
            raise KeyError(f"metric {key!r} not in the objective's result (keys: {sorted(metrics)})")
        node, rest = node[head], tail
    if not isinstance(node, int | float):
        raise KeyError(f"metric {key!r} is not a number ({node!r})")
    return float(node)


def flat_numbers(metrics: dict, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in metrics.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_numbers(v, key + "."))
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out[key] = float(v)
    return out
