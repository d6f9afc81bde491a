"""`data:` - where datasets live, how the synthetic benchmark is generated, which visual prompt is used."""

from typing import Literal

from pydantic import Field

from .base import Section


class SynthConfig(Section):
    seed: int = 0
    image_size: int = Field(128, ge=64, description="side of the square synthetic images, pixels")
    scar_train_per_subset: int = Field(2000, ge=1)
    scar_eval_per_subset: int = Field(200, ge=1)
    scar_val_per_subset: int = Field(
        0, ge=0, description="queries per subset of a validation split in the eval schema (val/); 0 = none"
    )
    mmeb_train_per_task: int = Field(500, ge=1)
    mmeb_eval_per_task: int = Field(100, ge=1)
    i2i_eval_queries: int = Field(
        0, ge=0, description="I2I-synth eval queries (10 candidate images each; 0 = no set; params.yaml: 200)"
    )


class DataConfig(Section):
    root: str = Field("data/real", description="real-data root (relative to the workspace), tracked by data.dvc")
    scar_dir: str = Field("data/scar-synth", description="SCaR folder: train/eval parquet files + images")
    mmeb_dir: str = Field("data/mmeb-synth", description="MMEB folder: train/eval parquet files + images")
    i2i_dir: str = Field("data/i2i-synth", description="image-to-image folder (I2I-synth): eval parquet + images")
    image_root: str | None = Field(None, description="image paths are relative to this (default: the set's folder)")
    prompt: Literal["box", "mask", "points", "none"] = Field("box", description="visual prompt given to SCaR queries")
    skip_invalid: bool = Field(False, description="skip invalid rows (and report the count) instead of failing")
    synth: SynthConfig = Field(default_factory=SynthConfig)
