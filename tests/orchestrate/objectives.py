"""Importable test objectives (compute nodes unpickle them by module name, so they live in a real module)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def square_sum(x: float, y: float) -> float:
    return x * x + y * y


def fail(message: str) -> None:
    raise ValueError(message)


def where() -> dict:
    return {"pid": os.getpid(), "slurm_job": os.environ.get("SLURM_JOB_ID")}


def quadratic(cfg) -> dict:
    """A small real objective over an experiment config: a bowl with its minimum at connector_depth=2,
    seg_tokens=16, lr=1e-3, plus a seed-dependent wobble so seeds differ deterministically."""
    import math

    d = cfg.model.connector_depth
    s = math.log2(cfg.model.seg_tokens)
    lr = math.log10(cfg.train.lr)
    score = 1.0 - 0.1 * (d - 2) ** 2 - 0.02 * (s - 4) ** 2 - 0.05 * (lr + 3) ** 2 + 0.01 * ((cfg.train.seed % 3) - 1)
    return {"score": score, "loss": 1.0 - score}


def slow_quadratic(cfg) -> dict:
    """quadratic, after a pause that `VIRTUE_TEST_SLEEP` sets (for kill/requeue tests); records each start in
    $VIRTUE_TEST_LOG so a test can see that a trial ran twice."""
    log = os.environ.get("VIRTUE_TEST_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps({"seed": cfg.train.seed, "depth": cfg.model.connector_depth}) + "\n")
    marker = os.environ.get("VIRTUE_TEST_ONCE")
    if marker and not Path(marker).exists():  # the first attempt hangs (to be killed); later ones are quick
        Path(marker).write_text("started")
        time.sleep(float(os.environ.get("VIRTUE_TEST_SLEEP", "60")))
    return quadratic(cfg)
