"""The interface every run logs through, and the one way to open and close a run.

`Tracker` is what training, pre-training, evaluation and the sweep workers are given: MLflow's run
(virtue.orchestrate.tracking.MlflowTracker) or, without MLflow, `LocalTracker`, which keeps the metrics in the
run folder only (both append to run_dir/metrics.jsonl, so a run folder looks the same either way).
`tracked_run` closes a run with the status of how its block ended.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from .errors import Interrupted

METRICS_FILE = "metrics.jsonl"


class Tracker(Protocol):
    run_id: str | None

    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...
    def log_artifact(self, path: str | os.PathLike) -> None: ...
    def set_tags(self, tags: Mapping[str, Any]) -> None: ...
    def close(self, status: str = "FINISHED") -> None: ...


def append_metrics(path: Path, metrics: Mapping[str, float], step: int | None) -> None:
    """One JSON line {"step": .., name: value, ..} at the end of `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"step": step, **{k: float(v) for k, v in metrics.items()}}) + "\n")


class LocalTracker:
    """No tracking server (tracking.enabled: false, or training called without a tracker): metrics go to
    run_dir/metrics.jsonl when a run folder is given; params (already in run_dir/config.yaml), tags and
    artifacts are not kept elsewhere."""

    run_id: str | None = None

    def __init__(self, run_dir: str | os.PathLike | None = None):
        self._metrics = Path(run_dir) / METRICS_FILE if run_dir is not None else None

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if self._metrics is not None:
            append_metrics(self._metrics, metrics, step)

    def log_artifact(self, path: str | os.PathLike) -> None:
        pass

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        pass

    def close(self, status: str = "FINISHED") -> None:
        pass


def end_status(error: BaseException | None) -> str:
    """FINISHED without an error; KILLED for an interruption (a signal: the run resumes) or a non-Exception
    exit (Ctrl-C, SystemExit, a requeued trial); FAILED for any other error."""
    if error is None:
        return "FINISHED"
    if isinstance(error, Interrupted) or not isinstance(error, Exception):
        return "KILLED"
    return "FAILED"


@contextmanager
def tracked_run(tracker: Tracker) -> Iterator[Tracker]:
    """`with tracked_run(open_tracker(...)) as tracker:` - the run is closed however the block ends, with
    end_status of that end; the error, if any, goes on."""
    try:
        yield tracker
    except BaseException as e:
        tracker.close(end_status(e))
        raise
    tracker.close("FINISHED")
