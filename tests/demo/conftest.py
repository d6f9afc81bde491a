"""Shared set-up of the demo tests: a micro SCaR-synth and two micro runs (virtue, global) trained a few steps
with the real `virtue train` entry point on the tiny model with preset (random-weight) backbones."""

from __future__ import annotations

from pathlib import Path

import pytest
from faults.conftest import PRESETS  # tests/ is on sys.path (rootdir import mode)

MICRO_SYNTH = (
    "data.synth.scar_train_per_subset=8",
    "data.synth.scar_eval_per_subset=4",  # 20 eval queries on 10 images, 197 distinct captions
    "data.synth.scar_val_per_subset=0",
    "data.synth.image_size=64",
)
MICRO_TRAIN = (
    # float32 backbones on every machine: two computations of a score then agree within 3e-5 (virtue.numerics),
    # where bfloat16's bound (0.07) would be wider than the spread of a top 10 (about 0.05 here)
    "model.dtype=float32",
    "train.steps=4",
    "train.batch_size=8",
    "train.warmup_steps=1",
    "train.hard_negatives=1",
    "train.checkpoint_every=0",
    "tracking.enabled=false",
)


@pytest.fixture(scope="session")
def micro_runs(tmp_path_factory) -> dict[str, Path]:
    """{variant: run folder} for virtue and global, trained on the same micro SCaR-synth (about 10 s)."""
    from virtue.cli.main import main
    from virtue.config import load_experiment
    from virtue.data.synth.build import synthesize

    root = tmp_path_factory.mktemp("demo-micro")
    data = f"data.scar_dir={root / 'scar'}"
    synthesize(load_experiment("tiny", [data, *MICRO_SYNTH]).data, root, only="scar", progress=False)
    runs = {}
    for variant in ("virtue", "global"):
        args = [*PRESETS, data, *MICRO_TRAIN, f"model.variant={variant}", f"name=micro-{variant}"]
        args += [f"train.feature_cache_dir={root / 'features'}", f"train.output_dir={root / 'runs' / '{name}'}"]
        assert main(["train", "tiny", *args]) == 0
        runs[variant] = root / "runs" / f"micro-{variant}"
    return runs
