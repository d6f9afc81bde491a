"""Wall time of each DVC stage, measured: `dvc repro` records no stage durations, so a `virtue` command that
DVC runs as a stage's cmd (DVC sets $DVC_STAGE to the stage's name) appends one JSON line to
runs/stage-times.jsonl when it ends: stage, start and end (Unix seconds), seconds, exit code, and the parent
process (the shell of the stage's cmd: a cmd of several `virtue` commands gives one line each, with one
parent). Commands that a stage's command starts in turn (sweep trials, training jobs) inherit the
environment and record nothing. `virtue bench` reads the file (virtue/bench/pipeline.py)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

LOG = Path("runs") / "stage-times.jsonl"
_INNER = "VIRTUE_STAGE_CLOCKED"  # set for the stage's child processes


def log_path(root: str | os.PathLike) -> Path:
    return Path(root) / LOG


@contextlib.contextmanager
def stage_clock() -> Iterator[dict]:
    """Around a command: when DVC runs it as a stage (and no outer `virtue` command of that stage already
    clocks it), append its record to the workspace's log on the way out, whatever the outcome. Yields the
    record, whose "exit" the caller sets."""
    stage = os.environ.get("DVC_STAGE")
    record: dict = {"stage": stage, "exit": None, "ppid": os.getppid()}
    if not stage or os.environ.get(_INNER) == stage:
        yield record
        return
    root = Path(os.environ.get("DVC_ROOT") or ".")
    os.environ[_INNER] = stage
    start = time.time()
    try:
        yield record
    finally:
        end = time.time()
        record.update(start=round(start, 3), end=round(end, 3), seconds=round(end - start, 3))
        with contextlib.suppress(OSError):  # a clock must never fail the stage it times
            path = log_path(root)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as f:  # one short line per append: O_APPEND keeps lines whole
                f.write(json.dumps(record) + "\n")
        os.environ.pop(_INNER, None)


def read_stage_times(root: str | os.PathLike) -> dict[str, dict]:
    """Per stage, its latest run in `root`'s log ({} without one): the records of the latest record's cmd (same
    parent process) together, start to end, their seconds summed; a run with a failed command is no stage
    time. Unreadable lines are skipped."""
    path = log_path(root)
    runs: dict[str, list[dict]] = {}
    if not path.is_file():
        return {}
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not (isinstance(rec, dict) and isinstance(rec.get("seconds"), int | float) and rec.get("stage")):
            continue
        group = runs.setdefault(str(rec["stage"]), [])
        if group and group[-1].get("ppid") != rec.get("ppid"):
            group.clear()  # another run of the stage
        group.append(rec)
    latest = {}
    for stage, group in runs.items():
        if all(r.get("exit") == 0 for r in group):
            latest[stage] = {
                "stage": stage,
                "start": min(r["start"] for r in group),
                "end": max(r["end"] for r in group),
                "seconds": round(sum(r["seconds"] for r in group), 3),
                "commands": len(group),
            }
    return latest
