"""`eval:` - the SCaR and MMEB protocols."""

from pydantic import Field

from .base import Section


class EvalConfig(Section):
    batch_size: int = Field(32, ge=1)
    scar: bool = True
    mmeb: bool = True
    output_dir: str = Field("runs/{name}/eval", description="metrics JSON, predictions, per-task scores")
