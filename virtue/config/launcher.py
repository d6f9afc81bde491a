"""`launcher:` - where heavy stages run: in this process, as local processes, or on Slurm."""

from typing import Literal

from pydantic import Field

from .base import Section


class LauncherConfig(Section):
    kind: Literal["inprocess", "local", "slurm"] = "inprocess"
    partition: str | None = None
    nodes: int = Field(1, ge=1)
    gpus_per_node: int = Field(0, ge=0)
    tasks_per_node: int = Field(1, ge=1)
    cpus_per_task: int = Field(2, ge=1)
    mem_gb: int | None = Field(None, ge=1)
    time_min: int = Field(60, ge=1)
    slurm_extra: dict[str, str | int] = Field(default_factory=dict, description="extra sbatch options")
    log_dir: str = Field("runs/slurm-logs", description="must be on a filesystem the compute nodes share")
