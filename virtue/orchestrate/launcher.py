"""One way to run heavy work: in this process, as a local subprocess, or as a Slurm job (submitit), always
awaited. DVC stages call through here, so `dvc repro` on a login node drives the cluster and only the
driver process touches dvc.lock."""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import submitit

from ..config.launcher import LauncherConfig
from ..paths import in_workspace
from .liveness import ended

T = TypeVar("T")


class LaunchError(RuntimeError):
    """A submitted job failed or vanished; the message names the job and its log files."""


def log_folder(launcher: LauncherConfig, name: str) -> Path:
    folder = Path(launcher.log_dir)
    folder = in_workspace(folder)
    return folder / name


def make_executor(launcher: LauncherConfig, name: str, *, folder: str | os.PathLike | None = None, **extra: Any):
    """A submitit executor for `launcher.kind` local|slurm with the config's resources; `extra` passes further
    update_parameters (e.g. slurm_array_parallelism)."""
    if launcher.kind not in ("local", "slurm"):
        raise ValueError(f"launcher.kind={launcher.kind!r} has no executor")
    folder = Path(folder) if folder is not None else log_folder(launcher, name)
    # %j in the folder keeps every job's pickles and logs apart (%A_%a for array tasks is added by submitit).
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster=launcher.kind)
    params: dict[str, Any] = {
        "name": name,
        "timeout_min": launcher.time_min,
        "nodes": launcher.nodes,
        "tasks_per_node": launcher.tasks_per_node,
        "cpus_per_task": launcher.cpus_per_task,
    }
    if launcher.gpus_per_node:
        params["gpus_per_node"] = launcher.gpus_per_node
    if launcher.kind == "slurm":
        if launcher.mem_gb is not None:
            params["mem_gb"] = launcher.mem_gb
        if launcher.partition:
            params["slurm_partition"] = launcher.partition
        if launcher.slurm_extra:
            params["slurm_additional_parameters"] = dict(launcher.slurm_extra)
    else:
        params.pop("nodes")
    executor.update_parameters(**params, **extra)
    return executor


def failure_reason(e: BaseException) -> str:
    """The remote traceback's last "SomeError: message" line says what went wrong; else submitit's summary."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    errs = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception|Interrupt|Exit)\b", ln)]
    return errs[-1] if errs else (lines[0] if lines else type(e).__name__)


def wait(job, name: str) -> Any:
    """job.result(), with a failure turned into one clear error naming the job and its logs."""
    try:
        return job.result()
    except (submitit.core.utils.FailedJobError, submitit.core.utils.UncompletedJobError) as e:
        raise LaunchError(
            f"{name}: job {job.job_id} failed: {failure_reason(e)} "
            f"(stdout: {job.paths.stdout}, stderr: {job.paths.stderr})"
        ) from e


def launch(fn: Callable[..., T], *args: Any, launcher: LauncherConfig, name: str = "virtue", **kwargs: Any) -> T:
    """Run fn(*args, **kwargs) where `launcher` says and return its result (blocks until the job ends).
    A callable with a `checkpoint` method (submitit.helpers.Checkpointable) is requeued on timeout/preemption."""
    if launcher.kind == "inprocess":
        return fn(*args, **kwargs)
    executor = make_executor(launcher, name)
    if launcher.kind == "slurm":  # a local job has this machine to itself: torch's default threads
        fn = _WithThreads(fn, job_threads(launcher, 1))
    job = executor.submit(fn, *args, **kwargs)
    return wait(job, name)


def local_threads(launcher: LauncherConfig, jobs: int) -> int:
    """Torch threads of each of `jobs` local jobs sharing this machine: its cores split, at most cpus_per_task."""
    return max(1, min(launcher.cpus_per_task, len(os.sched_getaffinity(0)) // jobs))


def job_threads(launcher: LauncherConfig, jobs: int) -> int:
    """Torch threads of each of `jobs` jobs: local ones split this machine's cores (local_threads); a Slurm job
    gets its cpus_per_task, since a node that does not confine jobs to their CPUs shows torch all of its cores."""
    return local_threads(launcher, jobs) if launcher.kind == "local" else launcher.cpus_per_task


class _WithThreads(submitit.helpers.Checkpointable):
    """fn with `threads` torch threads; Checkpointable like the submitted fn (requeued, it calls fn again)."""

    def __init__(self, fn: Callable[..., Any], threads: int):
        self.fn, self.threads = fn, threads

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        import torch

        torch.set_num_threads(self.threads)
        return self.fn(*args, **kwargs)


def launch_all(
    fn: Callable[..., T],
    calls: Sequence[tuple[str, tuple]],
    *,
    launcher: LauncherConfig,
    poll: Callable[[], None] | None = None,
) -> list[T]:
    """fn(*args) for each (name, args), all at once where `launcher` says, and the results in order once every
    job has ended. local: side by side on this machine, its cores split between them (local_threads); slurm: one
    job each, running as the cluster allows; inprocess: one after another in this process. A failed job does not
    stop the others; at the end one LaunchError names every failed job. `poll` is called about once a second
    while jobs run (e.g. to show progress)."""
    if launcher.kind == "inprocess":
        return [fn(*args) for _, args in calls]
    threads = job_threads(launcher, len(calls))
    jobs = []
    for name, args in calls:
        executor = make_executor(launcher, name)
        job = executor.submit(_WithThreads(fn, threads), *args)
        jobs.append((name, job))
    try:
        while not all(ended(job) for _, job in jobs):
            if poll is not None:
                poll()
            time.sleep(1.0)
        if poll is not None:
            poll()
    except BaseException:  # the driver is stopping (Ctrl-C, a signal, a bug): do not leave the jobs behind
        for _, job in jobs:
            with contextlib.suppress(Exception):
                job.cancel()
        raise
    results, failures = [], []
    for name, job in jobs:
        try:
            results.append(wait(job, name))
        except LaunchError as e:
            failures.append(str(e))
    if failures:
        raise LaunchError("; ".join(failures))
    return results
