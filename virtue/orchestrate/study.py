"""A sweep study as data (sweeps/studies/<name>.yaml): the base experiment, the ablated axis as config
overrides per cell (or a search space for TPE), the metric, the objective and the Slurm resources."""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from ..config import ExperimentConfig, load_experiment
from ..config.base import Section
from ..config.launcher import LauncherConfig
from ..config.yamlfile import read_yaml
from ..errors import UserError
from ..paths import workspace_root


def sweep_launcher(**fields) -> LauncherConfig:
    """A study's Slurm resources: the launcher's defaults with the sweeps' log folder, then `fields`."""
    return LauncherConfig(**{"kind": "slurm", "log_dir": "runs/sweeps/logs", **fields})

class Cell(Section):
    label: str = Field(..., min_length=1, description="the cell's value on the axis (plot tick, table row)")
    overrides: list[str] = Field(default_factory=list, description="dotted key=value overrides for this cell")


class BackboneJob(Section):
    """A backbone some cells need that the main pipeline does not make: the driver pre-trains it (SAM-2 only,
    with the study's overrides, then these) into `path` before the trials, unless `path` already exists."""

    path: str = Field(..., min_length=1, description="save_pretrained folder the cells point model.sam.path at")
    overrides: list[str] = Field(default_factory=list, description="e.g. model.sam.arch=sam2-tiny-s")


class Evaluation(Section):
    """Another evaluation of every trained cell, e.g. SCaR with the boxes withheld: its metrics land under
    `name.` (metric keys like `unprompted.scar.overall.hit@1`)."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9_-]+$")
    overrides: list[str] = Field(..., min_length=1, description="config overrides of this evaluation only")


class Check(Section):
    """One comparison a claim predicts: `cell` against `than` (default: the reference cell)."""

    cell: str
    than: str | None = None
    expect: Literal["better", "worse", "equivalent", "not_better"] = Field(
        ...,
        description="equivalent: the whole interval within +-margin; not_better: its upper end below +margin",
    )
    metric: str | None = Field(None, description="default: the study's metric")
    margin: float = Field(0.03, gt=0, description="equivalence margin, in the metric's units")


class Claim(Section):
    """What the paper found, as checks on this study's cells: reproduced when every check holds, contradicted
    when one is significantly the other way (or not equivalent), unresolved otherwise."""

    text: str = Field(..., min_length=1)
    source: str = Field(..., description="where the paper says it (table, section)")
    checks: list[Check] = Field(..., min_length=1)


class Pruning(Section):
    """Multi-fidelity search: the objective reports the metric on the validation split every `every` steps
    and the pruner stops trials that trail the others (median rule; NopPruner when absent)."""

    every: int = Field(..., ge=1, description="training steps between intermediate evaluations")
    startup_trials: int = Field(2, ge=0, description="trials that always run to the end first")
    warmup_steps: int = Field(0, ge=0, description="no pruning before this step")
    validation: list[str] = Field(
        default_factory=lambda: ["eval.split=val", "eval.mmeb=false"],
        description="overrides that point the intermediate evaluation at the validation split",
    )


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
    reference: str | None = Field(
        None, description="grid: the cell every other cell is compared with (paired, on the same eval queries)"
    )
    reference_seeds: int | None = Field(
        None, ge=2, description="seeds of the reference cell (default: seeds); they also estimate the seed variance"
    )
    claim: Claim | None = Field(None, description="the paper's finding this study tests")
    evals: list[Evaluation] = Field(default_factory=list, description="further evaluations of every cell")
    pruning: Pruning | None = Field(None, description="tpe: stop poor trials early on intermediate evaluations")
    omitted: list[str] = Field(default_factory=list, description="cells of the study left out of this run (--cells)")
    own_budget: bool = Field(
        False,
        description="keep the study's own train.steps / warmup_steps under --budget-from (a search that prunes: "
        "its trials are not compared with the ablation cells)",
    )
    metric: str = Field(..., description="dotted key into the objective's metrics dict, e.g. scar.overall.hit@1")
    extra_metrics: list[str] = Field(default_factory=list, description="also summarised in the report")
    direction: Literal["maximize", "minimize"] = "maximize"
    objective: str = Field("virtue.orchestrate.trial:run_trial", description="module:function(cfg, *, tracker)")
    sampler_seed: int = 0
    backbones: list[BackboneJob] = Field(default_factory=list, description="pre-trained before the trials")
    slurm: LauncherConfig = Field(default_factory=lambda: sweep_launcher())

    @model_validator(mode="after")
    def _shape(self):
        if self.sampler == "grid":
            if not self.cells:
                raise ValueError("a grid study needs 'cells'")
            labels = [c.label for c in self.cells]
            if len(set(labels)) != len(labels):
                raise ValueError(f"cell labels must be unique (got {labels})")
            if self.reference is not None and self.reference not in labels:
                raise ValueError(f"reference: {self.reference!r} is not a cell ({', '.join(labels)})")
            for check in self.claim.checks if self.claim else ():
                for label in (check.cell, check.than or self.reference):
                    if label not in labels:
                        raise ValueError(f"claim: {label!r} is not a cell ({', '.join(labels)})")
            if self.claim and self.reference is None:
                raise ValueError("a claim needs a reference cell")
        elif not self.search:
            raise ValueError("a tpe study needs a 'search' space")
        if self.pruning and self.sampler != "tpe":
            raise ValueError("pruning: only a search (sampler: tpe) prunes; ablation cells run at equal budget")
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
    data = read_yaml(path) or {}
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


def only_cells(spec: StudySpec, labels: list[str]) -> StudySpec:
    """The study with just these cells (and its reference): a smaller default budget that keeps the cells its
    claim compares. The cells left out are listed in the summary."""
    known = [c.label for c in spec.cells]
    unknown = [x for x in labels if x not in known]
    if unknown:
        raise UserError(f"{spec.name}: --cells {','.join(labels)}: no cell {unknown[0]!r} (cells: {', '.join(known)})")
    keep = set(labels) | ({spec.reference} if spec.reference else set())
    return spec.model_copy(update={"cells": [c for c in spec.cells if c.label in keep],
                                   "omitted": [x for x in known if x not in keep]})  # fmt: skip


def cell_seeds(spec: StudySpec, label: str, seeds: int | None = None) -> int:
    """How many seeds a grid cell runs with: the reference cell's own count where the study sets one."""
    n = seeds or spec.seeds
    if label == spec.reference and spec.reference_seeds:
        return max(n, spec.reference_seeds)
    return n


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
