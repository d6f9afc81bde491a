"""`eval:` - the SCaR and MMEB protocols."""

from typing import Literal

from pydantic import Field

from .base import OutputDir, Section


class EvalConfig(Section):
    batch_size: int = Field(32, ge=1)
    split: Literal["eval", "val"] = Field(
        "eval", description="SCaR split the protocol reads: eval, or val (model selection, e.g. a search's pruning)"
    )
    scar: bool = True
    mmeb: bool = True
    output_dir: OutputDir = Field(
        "runs/eval/{name}",
        description="metrics.json, predictions.parquet, per-task scores; outside the training run folder so that"
        " DVC can track training and evaluation outputs separately",
    )
