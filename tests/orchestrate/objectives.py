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


def quadratic(cfg, *, tracker=None) -> dict:
    """A small real objective over an experiment config: a bowl with its minimum at connector_depth=2,
    seg_tokens=16, lr=1e-3, plus a seed-dependent wobble so seeds differ deterministically."""
    import math

    d = cfg.model.connector_depth
    s = math.log2(cfg.model.seg_tokens)
    lr = math.log10(cfg.train.lr)
    score = 1.0 - 0.1 * (d - 2) ** 2 - 0.02 * (s - 4) ** 2 - 0.05 * (lr + 3) ** 2 + 0.01 * ((cfg.train.seed % 3) - 1)
    if tracker is not None:
        for step in range(3):  # a short "training curve", as a real objective would log
            tracker.log_metrics({"train.loss": (1.0 - score) * (3 - step)}, step=step)
    return {"score": score, "loss": 1.0 - score, "nested": {"hit@1": score / 2}}


def slow_quadratic(cfg, *, tracker=None) -> dict:
    """quadratic computed in 3 checkpointed steps in the trial's run folder. The first attempt at step 1
    writes $VIRTUE_TEST_ONCE (its pid and Slurm job) and hangs for $VIRTUE_TEST_SLEEP s, to be killed or
    requeued; a later attempt resumes from the checkpoint and reports where it started ("resumed_from")."""
    ckpt = Path(cfg.train.output_dir) / "ckpt.json"
    start = json.loads(ckpt.read_text())["next_step"] if ckpt.exists() else 0
    log = os.environ.get("VIRTUE_TEST_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps({"seed": cfg.train.seed, "depth": cfg.model.connector_depth, "start": start}) + "\n")
    marker = os.environ.get("VIRTUE_TEST_ONCE")
    for step in range(start, 3):
        if step == 1 and marker and not Path(marker).exists():
            info = {"pid": os.getpid(), "slurm_job": os.environ.get("SLURM_JOB_ID")}
            Path(marker).write_text(json.dumps(info))
            time.sleep(float(os.environ.get("VIRTUE_TEST_SLEEP", "60")))
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        ckpt.write_text(json.dumps({"next_step": step + 1}))
    return {**quadratic(cfg, tracker=tracker), "resumed_from": start}


def quadratic_threads(cfg, *, tracker=None) -> dict:
    """quadratic, plus the torch threads the trial process was given."""
    import torch

    return {**quadratic(cfg, tracker=tracker), "threads": torch.get_num_threads()}


def flaky_quadratic(cfg, *, tracker=None) -> dict:
    """quadratic, failing while $VIRTUE_TEST_FAIL is set (a fault outside the study's inputs)."""
    if os.environ.get("VIRTUE_TEST_FAIL"):
        raise RuntimeError("flaky: the node was not ready")
    return quadratic(cfg, tracker=tracker)


def threads_and_where(tag: str, meet: str | None = None, tags: tuple[str, ...] = ()) -> dict:
    """Who ran it and with how many torch threads. With `meet` (a folder), it leaves its tag there and waits
    until every tag of `tags` is there too: it returns only if all those jobs were running at the same time
    (a rendezvous, not a race against the clock; the generous deadline only guards against a hang)."""
    import torch

    if meet:
        Path(meet, tag).write_text(str(os.getpid()))
        deadline = time.monotonic() + 900
        while not all(Path(meet, t).exists() for t in tags):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{tag}: the other jobs never ran beside this one")
            time.sleep(0.05)
    return {"tag": tag, "threads": torch.get_num_threads(), **where()}


def reporting_quadratic(cfg, *, tracker=None, context=None) -> dict:
    """quadratic, reached in 4 steps that each report an intermediate value (the score so far) to the
    search's pruner, as the real objective does on its validation split."""
    result = quadratic(cfg, tracker=tracker)
    for step in (1, 2, 3, 4):
        if context is not None and context.report is not None:
            context.report(step, result["score"] * step / 4)
    return result


def quadratic_tracking(cfg, *, tracker=None) -> dict:
    """quadratic, plus whether the trial's process logs to MLflow over HTTP (a tracking server)."""
    over_http = os.environ.get("MLFLOW_TRACKING_URI", "").startswith("http")
    return {**quadratic(cfg, tracker=tracker), "over_http": float(over_http)}
