"""Micro trained runs for the evaluation-only studies: SCaR-synth, MMEB-synth and I2I-synth at micro sizes, and the
three variants trained a few steps with the real `virtue train` entry point (preset random-weight backbones)."""

from __future__ import annotations

from pathlib import Path

import pytest
from faults.conftest import PRESETS  # tests/ is on sys.path (rootdir import mode)

MICRO_SYNTH = (
    "data.synth.scar_train_per_subset=6",
    "data.synth.scar_eval_per_subset=6",
    "data.synth.scar_val_per_subset=0",
    "data.synth.mmeb_train_per_task=4",
    "data.synth.mmeb_eval_per_task=3",
    "data.synth.i2i_eval_queries=4",
    "data.synth.image_size=64",
)
MICRO_TRAIN = (
    "model.dtype=float32",
    "train.source=both",
    "train.steps=2",
    "train.batch_size=4",
    "train.warmup_steps=1",
    "train.hard_negatives=1",
    "train.checkpoint_every=0",
    "tracking.enabled=false",
)


@pytest.fixture(scope="session")
def micro_data(tmp_path_factory) -> dict[str, Path]:
    from virtue.config import load_experiment
    from virtue.data.synth.build import synthesize

    root = tmp_path_factory.mktemp("evalstudy-data")
    dirs = {"scar": root / "scar", "mmeb": root / "mmeb", "i2i": root / "i2i"}
    cfg = load_experiment("tiny", [*(f"data.{k}_dir={v}" for k, v in dirs.items()), *MICRO_SYNTH])
    synthesize(cfg.data, root, progress=False)
    return dirs


@pytest.fixture(scope="session")
def micro_runs(micro_data, tmp_path_factory) -> Path:
    """runs/micro-<variant> for virtue, crop and global (about 20 s in all)."""
    from virtue.cli.main import main

    root = tmp_path_factory.mktemp("evalstudy-runs")
    data = [f"data.{k}_dir={v}" for k, v in micro_data.items()]
    for variant in ("virtue", "crop", "global"):
        args = [*PRESETS, *data, *MICRO_TRAIN, f"model.variant={variant}", f"name=micro-{variant}"]
        args += [f"train.feature_cache_dir={root / 'features'}", f"train.output_dir={root / 'runs' / '{name}'}"]
        assert main(["train", "tiny", *args]) == 0
    return root / "runs"
