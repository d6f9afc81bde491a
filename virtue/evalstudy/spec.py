"""An evaluation-only study as data: sweeps/studies/<name>.yaml with `kind: eval`. Validated like every other
config (unknown keys are errors naming the file and key)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from ..config.base import Section
from ..config.yamlfile import read_yaml
from ..errors import UserError
from ..paths import workspace_root


class EvalStudySpec(Section):
    name: str
    kind: Literal["eval"]
    description: str = ""
    study: Literal["prompt_noise", "point_sampling", "i2i"] = Field(..., description="which evaluation this file runs")
    experiment: str = Field("tiny", description="the main path's experiment: runs/train/<experiment>-<variant>")
    runs: str = Field("runs/train", description="folder of the main path's trained runs")
    variants: list[Literal["virtue", "global", "crop"]] = Field(..., min_length=1)
    queries_per_subset: int = Field(
        200, ge=1, description="eval queries per SCaR-synth subset / I2I-synth task (the first ones of each file)"
    )
    ious: list[float] = Field(
        default_factory=lambda: [0.9, 0.75, 0.5], description="prompt_noise: target IoUs of the moved boxes"
    )
    scale_ious: list[float] = Field(
        default_factory=lambda: [0.5], description="prompt_noise: target IoUs of the shrunk and the grown boxes"
    )
    mask_iou: float = Field(0.75, gt=0, lt=1, description="prompt_noise: target IoU of eroded and dilated masks")
    strategies: list[Literal["grid", "random", "objectness", "saliency", "proposals"]] = Field(
        default_factory=lambda: ["grid", "random", "objectness", "saliency", "proposals"],
        description="point_sampling: where an unprompted query's N points come from (grid: the paper's)",
    )
    seed: int = Field(0, description="seed of every random choice (jitter directions, clicks, random points)")
    batch_size: int = Field(64, ge=1)
    n_boot: int = Field(2000, ge=100, description="paired bootstrap resamples per comparison")


def evaluation_of(summary: dict) -> str:
    """Which evaluation a reports/sweeps/<name>.json holds (files written before the `evaluation` key: told
    apart by their contents)."""
    return summary.get("evaluation") or ("prompt_noise" if "follow" in summary else "point_sampling")


def study_path(name_or_path: str | os.PathLike) -> Path:
    p = Path(name_or_path)
    return p if p.suffix in (".yaml", ".yml") else workspace_root() / "sweeps" / "studies" / f"{name_or_path}.yaml"


def is_eval_study(name_or_path: str | os.PathLike) -> bool:
    """Does this study file say `kind: eval`? (False for a missing file: the sweep driver reports that.)"""
    path = study_path(name_or_path)
    if not path.is_file():
        return False
    data = read_yaml(path)
    return isinstance(data, dict) and data.get("kind") == "eval"


def load_eval_study(name_or_path: str | os.PathLike) -> EvalStudySpec:
    path = study_path(name_or_path)
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: the top level must be a mapping")
    data.setdefault("name", path.stem)
    try:
        return EvalStudySpec.model_validate(data)
    except ValidationError as err:
        e = err.errors()[0]
        key = ".".join(str(x) for x in e["loc"]) or "<top level>"
        raise UserError(f"{path}: {key}: {e['msg'].removeprefix('Value error, ')}") from None
