"""Whether the worker of a RUNNING trial still works on it. Optuna's journal storage has no heartbeat, so a
trial whose worker died (SIGKILL, a lost node) stays RUNNING forever; the driver asks here before it runs
anything: a dead worker's trial is failed and its cell enqueued again, a live one is waited for.

Where a trial runs is recorded on it when it starts: `executor` and `driver_host` / `driver_pid` by the driver,
`local_pid` (a local submitit job's process) or `slurm_job_id` once the job is submitted, `worker_host` /
`worker_pid` when a search worker asks for it."""

from __future__ import annotations

import os
import socket
import subprocess
from typing import Any

ACTIVE_SLURM = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING"}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def slurm_job_active(job_id: str) -> bool | None:
    """True/False from squeue; None when squeue cannot answer (no Slurm here)."""
    try:
        out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        # squeue errors for ids it has forgotten ("Invalid job id"): that job is long gone.
        return False if "Invalid job id" in out.stderr else None
    return bool({s.strip() for s in out.stdout.split()} & ACTIVE_SLURM)


def ended(job) -> bool:
    """job.done(), except that a Slurm job without a result that squeue still lists has not ended: during a
    requeue (preemption, timeout) sacct can report the first attempt as ended for a few seconds before the job
    is queued again, and submitit caches that state; squeue knows the job is coming back."""
    from submitit.slurm.slurm import SlurmJob  # here, not at import: liveness is read without submitit's cost

    if not job.done():
        return False
    if not isinstance(job, SlurmJob) or job.paths.result_pickle.exists():
        return True
    return slurm_job_active(str(job.job_id)) is not True


def worker_alive(attrs: dict[str, Any]) -> bool:
    """Whether the worker recorded on a RUNNING trial may still be working on it."""
    job = attrs.get("slurm_job_id")
    if job:
        return bool(slurm_job_active(str(job)))  # unknown (squeue missing) counts as dead: nobody to wait for
    here = socket.gethostname()
    where = (("worker_host", "worker_pid"), ("driver_host", "local_pid"), ("driver_host", "driver_pid"))
    for host_key, pid_key in where:
        pid = attrs.get(pid_key)
        if pid and attrs.get(host_key) == here:
            return int(pid) != os.getpid() and pid_alive(int(pid))
    return False


def running(study) -> list:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))


def recover_dead_trials(study) -> list[int]:
    """RUNNING trials whose worker is gone -> FAIL, and the same parameters enqueued again (with the MLflow run
    id, so the new attempt re-attaches to the run and its checkpoints). Returns the failed trial numbers."""
    from optuna.trial import TrialState

    requeued = []
    for t in running(study):
        if worker_alive(t.user_attrs):
            continue
        study.tell(t.number, state=TrialState.FAIL)
        attrs = {"cell_key": t.user_attrs.get("cell_key"), "requeued_from": t.number}
        if t.user_attrs.get("mlflow_run_id"):
            attrs["mlflow_run_id"] = t.user_attrs["mlflow_run_id"]
        study.enqueue_trial(dict(t.params), user_attrs=attrs, skip_if_exists=False)
        requeued.append(t.number)
    return requeued


def live_trials(study) -> list:
    """RUNNING trials whose worker is still alive (a job a dead driver left behind, or another driver's)."""
    return [t for t in running(study) if worker_alive(t.user_attrs)]
