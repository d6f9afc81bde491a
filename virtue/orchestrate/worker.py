"""One sweep trial, run wherever the executor put it (this process, a local subprocess, a Slurm array task).

The driver has already asked Optuna for the trial (so it is RUNNING with its parameters fixed); the worker
records where it runs, opens the trial's MLflow child run (re-attaching after a requeue), calls the objective,
and tells Optuna the result. TrialJob is Checkpointable: on timeout or preemption submitit requeues the same
call, which resumes from the checkpoints in the trial's own run folder.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit

from .study import StudySpec, flat_numbers, load_objective, pick_metric, trial_config
from .tracking import open_tracker


@dataclass(frozen=True)
class TrialSpec:
    spec: StudySpec
    storage: str
    trial_id: int
    number: int
    cell_key: str
    overrides: list[str]
    run_dir: str
    parent_run_id: str | None = None
    mlflow_run_id: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    threads: int | None = None  # torch threads of the trial process (None: torch's default)


def open_storage(url: str):
    """`journal:<path>` (the default: a journal file on the shared filesystem) or an RDB URL."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    return optuna.storages.RDBStorage(url)


def worker_attrs() -> dict[str, Any]:
    """Where this trial runs, so a later driver can tell whether it is still alive."""
    return {
        "worker_host": socket.gethostname(),
        "worker_pid": os.getpid(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }


def run_one(t: TrialSpec) -> dict:
    import optuna
    from optuna.trial import TrialState

    os.environ.update(t.env)
    if t.threads:
        import torch

        torch.set_num_threads(t.threads)
    storage = open_storage(t.storage)
    frozen = storage.get_trial(t.trial_id)
    if frozen.state == TrialState.COMPLETE:  # a requeue after the result was told: nothing to redo
        return frozen.user_attrs.get("metrics", {})
    for k, v in worker_attrs().items():
        storage.set_trial_user_attr(t.trial_id, k, v)

    cfg = trial_config(t.spec, t.overrides)
    run_id = t.mlflow_run_id or frozen.user_attrs.get("mlflow_run_id")
    seed = frozen.params.get("seed", 0)
    tags = {"sweep": t.spec.name, "cell": t.cell_key, "seed": seed, "optuna.trial_number": t.number}
    tracker = open_tracker(
        cfg, t.run_dir, run_name=f"{t.spec.name}/{t.cell_key}", parent_run_id=t.parent_run_id, tags=tags, run_id=run_id
    )
    if tracker.run_id:
        storage.set_trial_user_attr(t.trial_id, "mlflow_run_id", tracker.run_id)

    study = optuna.load_study(study_name=t.spec.name, storage=storage)
    try:
        metrics = load_objective(t.spec.objective)(cfg, tracker=tracker)
        value = pick_metric(metrics, t.spec.metric)
    except BaseException as e:
        # A signal-driven exit (requeue) is not a failure: leave the trial RUNNING for the resumed job.
        if isinstance(e, Exception):
            storage.set_trial_user_attr(t.trial_id, "error", f"{type(e).__name__}: {e}"[:2000])
            study.tell(t.number, state=TrialState.FAIL)
            tracker.close("FAILED")
        else:
            tracker.close("KILLED")
        raise
    numbers = flat_numbers(metrics)
    tracker.log_metrics(numbers)
    storage.set_trial_user_attr(t.trial_id, "metrics", numbers)
    study.tell(t.number, value)
    tracker.close("FINISHED")
    return numbers


class TrialJob(submitit.helpers.Checkpointable):
    """The callable submitted per trial. checkpoint() (inherited) resubmits the same TrialSpec."""

    def __call__(self, t: TrialSpec) -> dict:
        return run_one(t)
