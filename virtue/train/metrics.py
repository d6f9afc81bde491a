"""The tracker used when training is called without one: metrics appended to run_dir/metrics.jsonl.
It has the Tracker interface of virtue.orchestrate.tracking (which also keeps that file), so the loop
does not care which one it was given."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class RunFolderTracker:
    run_id: str | None = None

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "metrics.jsonl"

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass  # the resolved config is already written to run_dir/config.yaml

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **{k: float(v) for k, v in metrics.items()}}) + "\n")

    def log_artifact(self, path: str | os.PathLike) -> None:
        pass

    def set_tags(self, tags: Mapping[str, str]) -> None:
        pass

    def close(self, status: str = "FINISHED") -> None:
        pass
