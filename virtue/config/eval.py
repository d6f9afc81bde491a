"""`eval:` - the SCaR and MMEB protocols."""

from pydantic import Field

from .base import Section


class EvalConfig(Section):
    batch_size: int = Field(32, ge=1)
    scar: bool = True
    mmeb: bool = True
    output_dir: str = Field(
        "runs/eval/{name}",
        description="metrics.json, predictions.parquet, per-task scores; outside the training run folder so that"
        " DVC can track training and evaluation outputs separately",
    )
