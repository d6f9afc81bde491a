"""An evaluation as an MLflow run (`virtue eval` calls this once the metrics are written): the resolved config as
params, every number of metrics.json as a metric (`scar.overall.hit_at_1`, `mmeb.tasks.<task>.hit_at_1`, ...),
metrics.json, config.yaml and the predictions table (predictions.parquet: one row per query with its candidates'
ranks and scores and the ground truth's rank) as artifacts, and tags naming the checkpoint and, where the
training run folder recorded one, the training's MLflow run. Each evaluation is its own MLflow run (a second
evaluation into the same folder keeps the first one's). Tracking failures never fail the evaluation: the tracker
warns once and goes offline (virtue/orchestrate/tracking.py)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..config import ExperimentConfig


def numeric_leaves(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """(dotted key, value) for every finite number in a nested dict (booleans and NaN left out)."""
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from numeric_leaves(value, name + ".")
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            yield name, float(value)


def training_run_id(checkpoint: str | Path) -> str | None:
    """The MLflow run id the training run folder recorded (mlflow_run.json), if the checkpoint is one."""
    from ..orchestrate.tracking import RUN_FILE

    path = Path(checkpoint)
    folder = path if path.is_dir() else path.parent
    try:
        return json.loads((folder / RUN_FILE).read_text(encoding="utf-8")).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None


def log_evaluation(cfg: ExperimentConfig, eval_dir: str | Path, checkpoint: str, metrics: Mapping) -> str | None:
    """Log one finished evaluation; returns the MLflow run id (None with tracking off or offline)."""
    if not cfg.tracking.enabled:
        return None
    from ..orchestrate.tracking import open_tracker
    from ..tracker import tracked_run

    eval_dir = Path(eval_dir)
    tags = {"kind": "eval", "checkpoint": str(checkpoint), "variant": cfg.model.variant,
            "train_run_id": training_run_id(checkpoint)}  # fmt: skip
    opened = open_tracker(cfg, eval_dir, run_name=f"eval-{cfg.name}", tags=tags, attach_stored=False)
    with tracked_run(opened) as tracker:
        tracker.log_metrics(dict(numeric_leaves(metrics)))
        for name in ("metrics.json", "config.yaml", "predictions.parquet"):
            if (eval_dir / name).is_file():
                tracker.log_artifact(eval_dir / name)
    return getattr(tracker, "run_id", None)
