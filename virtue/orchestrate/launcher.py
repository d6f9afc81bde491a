"""One way to run heavy work: in this process, as a local subprocess, or as a Slurm job (submitit), always
awaited. DVC stages call through here, so `dvc repro` on a login node drives the cluster and only the
driver process touches dvc.lock."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..config.launcher import LauncherConfig
from ..paths import workspace_root

T = TypeVar("T")


class LaunchError(RuntimeError):
    """A submitted job failed or vanished; the message names the job and its log files."""


def log_folder(launcher: LauncherConfig, name: str) -> Path:
    folder = Path(launcher.log_dir)
    folder = folder if folder.is_absolute() else workspace_root() / folder
    return folder / name


def make_executor(launcher: LauncherConfig, name: str, *, folder: str | os.PathLike | None = None, **extra: Any):
    """A submitit executor for `launcher.kind` local|slurm with the config's resources; `extra` passes further
    update_parameters (e.g. slurm_array_parallelism)."""
    import submitit

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
    import submitit

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
    job = executor.submit(fn, *args, **kwargs)
    return wait(job, name)
