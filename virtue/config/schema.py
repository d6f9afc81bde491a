"""The experiment config: one typed, validated tree. Each section lives in its own module."""

from pydantic import Field

from .base import Section
from .data import DataConfig
from .eval import EvalConfig
from .launcher import LauncherConfig
from .model import ModelConfig
from .tracking import TrackingConfig
from .train import PretrainConfig, TrainConfig


class ExperimentConfig(Section):
    name: str = Field(..., min_length=1, description="experiment name, used in run folders and MLflow")
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    launcher: LauncherConfig = Field(default_factory=LauncherConfig)
