"""(d) `dvc repro` with nothing to do, and (e) per-stage minutes of the full default `dvc repro`.

(d) runs only when dvc.lock exists and `dvc status` reports nothing changed (otherwise `dvc repro` would
start real work, which a benchmark must not do). (e) DVC records no stage durations; the `virtue` command of
each stage records its own in runs/stage-times.jsonl (virtue/cli/stage_clock.py), and a stage's minutes are
its latest successful record's. A stage without one (run by an older version) is estimated: its end as the
newest modification time among its outputs, its minutes as the gap to the previous stage's end (valid only
for one sequential full `dvc repro` whose outputs nothing has touched since, not even a `git checkout`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .common import Side, log, median, skipped, timed


def _dvc() -> list[str]:
    exe = Path(sys.executable).with_name("dvc")
    return [str(exe)] if exe.is_file() else ([shutil.which("dvc")] if shutil.which("dvc") else [])


def noop_repro(root: Path, repeats: int) -> dict:
    name = "dvc_repro_noop"
    if not (root / "dvc.yaml").is_file():
        return skipped(name, f"{root}: no dvc.yaml")
    if not (root / "dvc.lock").is_file():
        return skipped(name, f"{root}: no dvc.lock: the pipeline has not completed in this workspace")
    dvc = _dvc()
    if not dvc:
        return skipped(name, "dvc is not installed")
    status = subprocess.run([*dvc, "status", "--json"], cwd=root, capture_output=True, text=True, timeout=300)
    if status.returncode != 0:
        return skipped(name, f"dvc status failed: {status.stderr.strip().splitlines()[-1:] or status.returncode}")
    changed = json.loads(status.stdout or "{}")
    if changed:
        return skipped(name, f"not up to date ({len(changed)} stage(s) changed: {', '.join(sorted(changed))[:200]})")
    side = Side("dvc repro, nothing to do", "s")
    for r in range(repeats):
        log(f"dvc repro (nothing to do): repeat {r + 1}/{repeats}")
        seconds, proc = timed(lambda: subprocess.run([*dvc, "repro"], cwd=root, capture_output=True, text=True))
        if proc.returncode != 0:
            return skipped(name, f"dvc repro failed: {proc.stderr.strip()[-300:]}")
        side.values.append(seconds)
    return {"name": name, "status": "measured", "seconds": side.as_dict(), "method": "wall time of `dvc repro`"}


def _newest_mtime(path: Path) -> float | None:
    if path.is_file():
        return path.stat().st_mtime
    if path.is_dir():
        times = [p.stat().st_mtime for p in path.rglob("*") if p.is_file()]
        return max(times) if times else None
    return None


def stage_minutes(root: Path) -> dict:
    from ..cli.stage_clock import LOG, read_stage_times
    from ..config.yamlfile import read_yaml

    name = "dvc_repro_stages"
    lock = root / "dvc.lock"
    if not lock.is_file():
        return skipped(name, f"{root}: no dvc.lock: the full default `dvc repro` has not been run here")
    stages = (read_yaml(lock) or {}).get("stages", {})
    clocked = read_stage_times(root)
    ends = {}
    for stage, info in stages.items():
        if stage in clocked:
            ends[stage] = clocked[stage]["end"]
            continue  # no walk over its outputs' files
        times = [t for o in info.get("outs", []) if (t := _newest_mtime(root / o["path"])) is not None]
        if times:
            ends[stage] = max(times)
    if not ends:
        return skipped(name, "dvc.lock names no outputs present in the workspace")
    order = sorted(ends, key=ends.get)
    minutes: dict[str, float | None] = {}
    source: dict[str, str] = {}
    for i, stage in enumerate(order):
        if stage in clocked:
            minutes[stage], source[stage] = round(clocked[stage]["seconds"] / 60, 2), "clock"
        else:  # the first stage's start is recorded nowhere
            gap = (ends[stage] - ends[order[i - 1]]) / 60 if i else None
            minutes[stage], source[stage] = (None if gap is None else round(gap, 2)), "mtime"
    known = [m for m in minutes.values() if m is not None]
    all_clocked = all(v == "clock" for v in source.values())
    return {
        "name": name,
        "status": "measured" if all_clocked else "estimated",
        "minutes": minutes,
        "source": source,
        "total_minutes_after_first": round(sum(known), 2),
        "total_minutes": round(sum(known), 2) if all_clocked else None,
        "method": (__doc__ or "").split("\n\n", 1)[1].replace("\n", " "),
        "median_stage_minutes": median(known) if known else None,
        "generated_from": os.path.relpath(lock, root),
        "clock_log": str(LOG) if clocked else None,
    }
