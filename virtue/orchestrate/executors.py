"""Where a study's jobs run: `debug` (this process, one after another), `local` (submitit subprocesses on
this machine, at most `workers` at once) or `slurm` (one job array, slurm_array_parallelism = workers).
Every job is awaited here; one that fails does not stop the others, and each failure comes back as one line
naming the job and its log."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from tqdm import tqdm

from ..errors import UserError
from .launcher import failure_reason, make_executor
from .liveness import ended

EXECUTORS = ("debug", "local", "slurm")


def progress(total: int, desc: str, *, initial: int = 0) -> tqdm:
    """A bar over a study's trials that also shows in a log (under `dvc repro` stderr is not a terminal)."""
    return tqdm(total=total, initial=initial, desc=desc, unit="trial", file=sys.stderr, mininterval=5.0,
                dynamic_ncols=sys.stderr.isatty())  # fmt: skip


def run_jobs(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    names: Sequence[str],
    *,
    executor: str,
    workers: int,
    launcher,
    folder,
    job_name: str,
    on_submit: Callable[[int, Any], None] | None = None,
    on_done: Callable[[int], None] | None = None,
) -> list[str]:
    """fn(item) for each item; returns a message per failed one. `on_submit(i, job)` runs once the i-th job
    is submitted (to record where it runs), `on_done(i)` once it has ended."""
    if executor == "debug":
        return _run_in_process(fn, items, names, on_done)
    if executor == "slurm":
        ex, pending = _submit_array(fn, items, workers=workers, launcher=launcher, folder=folder,
                                    job_name=job_name, on_submit=on_submit)  # fmt: skip
        queue: list[int] = []
    else:  # submitit's local executor has no array parallelism: keep `workers` processes in flight
        ex = make_executor(launcher.model_copy(update={"kind": "local"}), job_name, folder=folder)
        queue, pending = list(range(len(items))), []
    done = _await_jobs(ex, fn, items, pending, queue, workers=workers, on_submit=on_submit, on_done=on_done)
    return _failures(done, names)


def _run_in_process(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    names: Sequence[str],
    on_done: Callable[[int], None] | None,
) -> list[str]:
    """The `debug` executor: fn(item) here, one after another; a message per item whose call raised."""
    failed: list[str] = []
    for i, item in enumerate(items):
        try:
            fn(item)
        except Exception as e:  # noqa: BLE001 - one failed trial does not stop the others
            failed.append(f"{names[i]}: {type(e).__name__}: {e}")
        if on_done:
            on_done(i)
    return failed


def _submit_array(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    *,
    workers: int,
    launcher,
    folder,
    job_name: str,
    on_submit: Callable[[int, Any], None] | None,
) -> tuple[Any, list[tuple[int, Any]]]:
    """The `slurm` executor: every item in one job array, at most `workers` running at once. Returns the
    executor and the (index, job) pairs, all submitted; a refused sbatch is the user's error."""
    ex = make_executor(launcher, job_name, folder=folder, slurm_array_parallelism=workers)
    try:
        jobs = ex.map_array(fn, list(items))
    except Exception as e:  # sbatch refused (partition, limits)
        raise UserError(f"{job_name}: sbatch refused the job array: {failure_reason(e)}") from e
    for i, job in enumerate(jobs):
        if on_submit:
            on_submit(i, job)
    return ex, list(enumerate(jobs))


def _await_jobs(
    ex,
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    pending: list[tuple[int, Any]],
    queue: list[int],
    *,
    workers: int,
    on_submit: Callable[[int, Any], None] | None,
    on_done: Callable[[int], None] | None,
) -> list[tuple[int, Any]]:
    """Submit the queued item indices with `ex`, keeping at most `workers` pending, until every job has
    ended; returns the (index, job) pairs in the order they ended."""
    done: list[tuple[int, Any]] = []
    while pending or queue:
        while queue and len(pending) < workers:
            i = queue.pop(0)
            job = ex.submit(fn, items[i])
            if on_submit:
                on_submit(i, job)
            pending.append((i, job))
        finished = [(i, j) for i, j in pending if ended(j)]
        for item in finished:
            pending.remove(item)
            done.append(item)
            if on_done:
                on_done(item[0])
        if not finished:
            time.sleep(0.5)
    return done


def _failures(done: list[tuple[int, Any]], names: Sequence[str]) -> list[str]:
    """A message per ended job whose result is an error (in item order), naming the job and its log."""
    failed: list[str] = []
    for i, job in sorted(done, key=lambda d: d[0]):
        try:
            job.result()
        except Exception as e:  # noqa: BLE001
            failed.append(f"{names[i]}: job {job.job_id} failed: {failure_reason(e)} (log: {job.paths.stderr})")
    return failed
