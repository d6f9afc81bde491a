"""`train:` and `pretrain:` - contrastive training of the embedder, and the embedded default's backbones."""

from typing import Literal

from pydantic import Field

from .base import Section


class TrainConfig(Section):
    seed: int = 0
    steps: int = Field(2000, ge=0)
    batch_size: int = Field(64, ge=1, description="global batch (all ranks together)")
    gradcache_chunk: int = Field(0, ge=0, description="GradCache chunk size; 0 = no GradCache")
    lr: float = Field(2e-5, gt=0)
    connector_lr: float | None = Field(None, gt=0, description="learning rate of the connector (default: lr)")
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(200, ge=0)
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    temperature: float = Field(0.02, gt=0)
    hard_negatives: int = Field(0, ge=0, description="distractors per query added as extra negatives")
    bidirectional: bool = False
    source: Literal["scar", "mmeb", "both"] = Field("scar", description="training data")
    checkpoint_every: int = Field(200, ge=0, description="steps between checkpoints; 0 = only at the end")
    resume: str = Field("auto", description="'auto' (latest in the run folder), 'never', or a checkpoint path")
    feature_cache: bool = Field(True, description="cache frozen SAM-2 / vision-tower outputs on disk")
    output_dir: str = Field("runs/{name}", description="run folder; {name} is the experiment name")


class PretrainConfig(Section):
    """Backbone pre-training for the embedded default (no downloadable checkpoints here)."""

    seed: int = 0
    sam_steps: int = Field(400, ge=0)
    vlm_steps: int = Field(600, ge=0)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    output_dir: str = Field("runs/backbones", description="where the save_pretrained folders go")
