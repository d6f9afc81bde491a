"""The queue of a grid study's cells: every (cell, seed) is enqueued once in Optuna, then asked for with its
parameters fixed and bound to its cell folder (virtue.orchestrate.cells) and its MLflow child run. A cell
some study has already trained and evaluated comes back with its result, to be told to Optuna at once."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..paths import workspace_root
from ..tracker import Tracker
from ..train.checkpoint import WEIGHTS
from .cells import adopt_finished_run, cell_dir, main_path_run
from .study import StudySpec, cell_seeds, trial_config, trial_overrides
from .tracking import SERVED_STORE_ENV, open_tracker
from .worker import TrialSpec, read_result

SEED_RANGE = (0, 1_000_000)


def cell_key(label: str, seed: int) -> str:
    return f"{label}-s{seed}"


def enqueue_grid(study, spec: StudySpec, seeds: int) -> int:
    """Enqueue every (cell, seed) that is neither complete nor queued nor running; seed-major order so that
    a partial sweep already covers every cell once."""
    from optuna.trial import TrialState

    have = {
        t.user_attrs.get("cell_key")
        for t in study.get_trials(deepcopy=False)
        if t.state in (TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING)
    }
    n = 0
    for seed in range(max(cell_seeds(spec, c.label, seeds) for c in spec.cells)):
        for cell in spec.cells:
            key = cell_key(cell.label, seed)
            if seed < cell_seeds(spec, cell.label, seeds) and key not in have:
                study.enqueue_trial({"cell": cell.label, "seed": seed}, user_attrs={"cell_key": key})
                n += 1
    return n


@dataclass
class Asked:
    trial: Any  # optuna.trial.Trial, RUNNING
    job: TrialSpec
    tracker: Tracker  # the trial's MLflow child run
    reused: dict | None  # the cell's result, when some study already has it


def worker_env() -> dict[str, str]:
    """What a worker on another node must see like the driver: the workspace and the tracking server."""
    env = {"VIRTUE_ROOT": str(workspace_root())}
    for k in ("MLFLOW_TRACKING_URI", SERVED_STORE_ENV, "PYTHONPATH"):
        if os.environ.get(k):
            env[k] = os.environ[k]
    return env


def ask_grid(study, spec: StudySpec, *, storage: str, executor: str, parent: str | None, threads: int | None) -> Asked:
    """The next queued (cell, seed), RUNNING, bound to its cell folder and MLflow run."""
    from optuna.trial import TrialState

    trial = study.ask()
    labels = [c.label for c in spec.cells]
    params = {"cell": trial.suggest_categorical("cell", labels), "seed": trial.suggest_int("seed", *SEED_RANGE)}
    key = trial.user_attrs.get("cell_key")
    if key is None:  # not one of ours (someone else popped the queued trial first): never run an unplanned cell
        study.tell(trial, state=TrialState.FAIL)
        raise RuntimeError("grid study asked for a trial with nothing queued (is another driver running?)")
    placeholder = trial_config(spec, trial_overrides(spec, params, params["seed"], Path("cell")))
    run_dir = cell_dir(placeholder)
    overrides = trial_overrides(spec, params, params["seed"], run_dir)
    cfg = trial_config(spec, overrides)
    if not (run_dir / WEIGHTS).is_file():
        adopt_finished_run(cfg, run_dir)
    if (source := main_path_run(run_dir)) is not None:  # copied in just now, or trained there by the main path
        trial.set_user_attr("trained_by", source)
    for k, v in {"run_dir": os.path.relpath(run_dir, workspace_root()), "driver_host": socket.gethostname(),
                 "driver_pid": os.getpid(), "executor": executor}.items():  # fmt: skip
        trial.set_user_attr(k, v)
    tags = {"sweep": spec.name, "cell": key, "seed": params["seed"], "optuna.trial_number": trial.number}
    tracker = open_tracker(cfg, run_dir, run_name=f"{spec.name}/{key}", parent_run_id=parent, tags=tags,
                           run_id=trial.user_attrs.get("mlflow_run_id"), attach_stored=False)  # fmt: skip
    if tracker.run_id:
        trial.set_user_attr("mlflow_run_id", tracker.run_id)
    job = TrialSpec(
        spec=spec,
        storage=storage,
        number=trial.number,
        cell_key=key,
        overrides=overrides,
        run_dir=str(run_dir),
        parent_run_id=parent,
        mlflow_run_id=tracker.run_id,
        env=worker_env(),
        threads=threads,
    )
    return Asked(trial, job, tracker, read_result(run_dir, spec))


def tell_reused(study, asked: Asked) -> None:
    """A cell another study (or an earlier run) already trained: its result, told as this trial's."""
    result = asked.reused
    asked.trial.set_user_attr("reused_cell", True)
    asked.trial.set_user_attr("metrics", result["metrics"])
    asked.tracker.log_metrics(result["metrics"])
    asked.tracker.set_tags({"reused_cell": os.path.relpath(asked.job.run_dir, workspace_root())})
    study.tell(asked.trial, result["value"])
    asked.tracker.close("FINISHED")
