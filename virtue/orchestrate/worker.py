"""Trials, run wherever the executor put them (this process, a local subprocess, a Slurm array task).

Grid studies: the driver has asked Optuna for the trial (it is RUNNING with its parameters fixed) and opened
its MLflow child run; `run_one` re-attaches to that run and calls the objective, and the driver tells Optuna.
Searches: `run_search` asks Optuna itself, trial after trial, so the sampler sees every finished trial and a
pruner can stop a trial between its intermediate evaluations (Optuna's own distributed pattern).
Every result is also kept in the cell's folder (results/<objective digest>.json), where another study that
needs the same cell finds it. TrialJob and SearchJob are Checkpointable: on timeout or preemption submitit
requeues the same call, which resumes from the checkpoints in the cell's folder.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit

from ..io import write_json
from ..paths import workspace_root
from ..tracker import tracked_run
from .study import StudySpec, flat_numbers, load_objective, pick_metric, trial_config
from .tracking import open_tracker, system_metrics


@dataclass(frozen=True)
class TrialSpec:
    spec: StudySpec
    storage: str
    number: int
    cell_key: str  # <cell label>-s<seed>: the trial's name in the study
    overrides: list[str]
    run_dir: str  # the cell's folder (runs/cells/<digest>)
    parent_run_id: str | None = None
    mlflow_run_id: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    threads: int | None = None  # torch threads of the trial process (None: torch's default)


# An RDB storage's heartbeat: every $VIRTUE_OPTUNA_HEARTBEAT_S seconds (default 60) while a search trial runs; a
# trial without one for 3 times that is stale, and the next search worker fails it and queues it again (up to
# HEARTBEAT_RETRIES times).
HEARTBEAT_RETRIES = 3


def open_storage(url: str):
    """`journal:<path>` (the default: a journal file on the shared filesystem; no heartbeat, so the driver asks
    the liveness module whether a RUNNING trial's worker lives) or an RDB URL, with Optuna's heartbeat and
    RetryHeartbeatStaleTrialCallback: a search trial whose worker died is failed and run again, its queued copy
    keeping the parameters and attributes (cell folder, MLflow run) the retry resumes from."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    beat = int(os.environ.get("VIRTUE_OPTUNA_HEARTBEAT_S", "60"))
    with warnings.catch_warnings():  # Optuna marks the heartbeat "experimental" (since v2.8): one note per use
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=HEARTBEAT_RETRIES)
        return optuna.storages.RDBStorage(url, heartbeat_interval=beat, grace_period=3 * beat,
                                          heartbeat_stale_trial_callback=retry)  # fmt: skip


def result_path(run_dir: str | os.PathLike, spec: StudySpec) -> Path:
    """Where a cell keeps what one objective (with its study's further evaluations) made of it."""
    what = json.dumps({"objective": spec.objective, "evals": [e.model_dump() for e in spec.evals]}, sort_keys=True)
    return Path(run_dir) / "results" / f"{hashlib.sha256(what.encode()).hexdigest()[:12]}.json"


def read_result(run_dir: str | os.PathLike, spec: StudySpec) -> dict | None:
    path = result_path(run_dir, spec)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _context(spec: StudySpec, report=None):
    from .trial import TrialContext

    pr = spec.pruning
    return TrialContext(
        evals=[(e.name, e.overrides) for e in spec.evals],
        report=report,
        report_every=pr.every if pr and report else 0,
        validation=pr.validation if pr else (),
        metric=spec.metric,
    )


def call_objective(spec: StudySpec, cfg, tracker, run_dir: str, report=None) -> tuple[dict, float]:
    """Run the study's objective; keep its metrics (and how long it took) in the cell's folder."""
    fn = load_objective(spec.objective)
    context = _context(spec, report)
    start = time.perf_counter()
    accepts_context = "context" in inspect.signature(fn).parameters
    metrics = fn(cfg, tracker=tracker, context=context) if accepts_context else fn(cfg, tracker=tracker)
    value = pick_metric(metrics, spec.metric)
    numbers = flat_numbers(metrics)
    timing = {"seconds": time.perf_counter() - start, **context.timings}
    write_json(result_path(run_dir, spec), {"value": value, "metrics": numbers, "timing": timing})
    return numbers, value


def _threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


def run_one(t: TrialSpec) -> dict:
    """Train and evaluate one grid trial's cell; returns {value, metrics}. The driver tells Optuna (it holds
    the trial); a cell whose result is already in its folder (a requeue after the objective finished, or the
    same cell of another study) is not run again."""
    from ..train.rundir import check_run_folder

    os.environ.update(t.env)
    _threads(t.threads)
    done = read_result(t.run_dir, t.spec)
    if done is not None:
        return done
    cfg = trial_config(t.spec, t.overrides)
    check_run_folder(cfg, t.run_dir)  # before the tracker logs this config into the trial's MLflow run
    tags = {"sweep": t.spec.name, "cell": t.cell_key, "optuna.trial_number": t.number}
    tracker = open_tracker(cfg, t.run_dir, run_name=f"{t.spec.name}/{t.cell_key}", parent_run_id=t.parent_run_id,
                           tags=tags, run_id=t.mlflow_run_id, attach_stored=False)  # fmt: skip
    with tracked_run(tracker), system_metrics(tracker):  # a signal (requeue) closes KILLED: the trial stays RUNNING
        numbers, value = call_objective(t.spec, cfg, tracker, t.run_dir)
        tracker.log_metrics(numbers)
    return {"value": value, "metrics": numbers}


class TrialJob(submitit.helpers.Checkpointable):
    """The callable submitted per grid trial. checkpoint() (inherited) resubmits the same TrialSpec."""

    def __call__(self, t: TrialSpec) -> dict:
        return run_one(t)


# ---------------------------------------------------------------- searches


@dataclass(frozen=True)
class SearchSpec:
    spec: StudySpec
    storage: str
    n_trials: int
    worker: int  # index among the search's workers (its sampler's seed offset)
    parent_run_id: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    threads: int | None = None


def sampler_and_pruner(spec: StudySpec, worker: int = 0):
    import optuna

    # Each worker samples with its own seed (the same seed in two workers would propose the same points).
    sampler = optuna.samplers.TPESampler(seed=spec.sampler_seed + worker, multivariate=True, constant_liar=True)
    pr = spec.pruning
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=pr.startup_trials, n_warmup_steps=pr.warmup_steps)
        if pr
        else optuna.pruners.NopPruner()
    )
    return sampler, pruner


def suggest(trial, spec: StudySpec) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, p in spec.search.items():
        if p.choices is not None:
            params[key] = trial.suggest_categorical(key, p.choices)
        elif p.integer:
            params[key] = trial.suggest_int(key, int(p.low), int(p.high), log=p.log)
        else:
            params[key] = trial.suggest_float(key, p.low, p.high, log=p.log)
    return params


def search_done(study, n_trials: int) -> bool:
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return len(study.get_trials(deepcopy=False, states=states)) >= n_trials


def run_search(s: SearchSpec) -> list[int]:
    """Optuna's study.optimize until the study holds n_trials that are complete, pruned or running (two
    workers may both start the last one: at most workers - 1 more); with an RDB storage its heartbeat runs
    beside each trial. Returns the numbers this worker ran."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    os.environ.update(s.env)
    _threads(s.threads)
    sampler, pruner = sampler_and_pruner(s.spec, s.worker)
    study = optuna.load_study(study_name=s.spec.name, storage=open_storage(s.storage), sampler=sampler, pruner=pruner)
    ran: list[int] = []
    optuna.storages.fail_stale_trials(study)  # RDB: trials of dead workers, queued again; journal: nothing
    if search_done(study, s.n_trials):
        return ran

    def objective(trial) -> float:
        ran.append(trial.number)
        return search_trial(trial, s)

    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    study.optimize(objective, callbacks=[MaxTrialsCallback(s.n_trials, states=states)], gc_after_trial=False)
    return ran


def _search_cell(trial, s: SearchSpec):
    """The trial's configuration and cell folder from its suggested parameters; its bookkeeping attributes."""
    from .cells import cell_dir
    from .study import trial_overrides

    params = suggest(trial, s.spec)
    for k, v in {"worker_host": socket.gethostname(), "worker_pid": os.getpid(),
                 "slurm_job_id": os.environ.get("SLURM_JOB_ID")}.items():  # fmt: skip
        trial.set_user_attr(k, v)
    key = trial.user_attrs.get("cell_key") or f"t{trial.number}"
    placeholder = trial_config(s.spec, trial_overrides(s.spec, params, 0, Path("cell")))
    run_dir = cell_dir(placeholder)
    cfg = trial_config(s.spec, trial_overrides(s.spec, params, 0, run_dir))
    trial.set_user_attr("cell_key", key)
    trial.set_user_attr("run_dir", os.path.relpath(run_dir, workspace_root()))
    return cfg, run_dir, key


def search_trial(trial, s: SearchSpec) -> float:
    """One search trial in its own MLflow child run, as study.optimize's objective: returns its value
    (COMPLETE), raises TrialPruned (PRUNED; the run FINISHED, tagged with the step), an error (FAIL); a
    signal leaves it RUNNING (the run KILLED) for the requeued job or the next driver."""
    import optuna

    cfg, run_dir, key = _search_cell(trial, s)
    tags = {"sweep": s.spec.name, "cell": key, "optuna.trial_number": trial.number}
    tracker = open_tracker(cfg, run_dir, run_name=f"{s.spec.name}/{key}", parent_run_id=s.parent_run_id,
                           tags=tags, run_id=trial.user_attrs.get("mlflow_run_id"), attach_stored=False)  # fmt: skip
    if tracker.run_id:
        trial.set_user_attr("mlflow_run_id", tracker.run_id)
    pruned_at: list[int] = []

    def report(step: int, value: float) -> None:
        trial.report(value, step)
        tracker.log_metrics({f"intermediate.{s.spec.metric}": value}, step=step)
        if trial.should_prune():
            pruned_at.append(step)
            raise optuna.TrialPruned(f"trial {trial.number} pruned at step {step} ({value:.4f})")

    pruned: optuna.TrialPruned | None = None
    with tracked_run(tracker), system_metrics(tracker):
        try:
            numbers, value = call_objective(s.spec, cfg, tracker, str(run_dir), report=report)
        except optuna.TrialPruned as e:  # raised below, once the run is closed FINISHED
            tracker.set_tags({"optuna.state": "PRUNED", "pruned_at_step": pruned_at[-1]})
            pruned = e
        else:
            tracker.log_metrics(numbers)
            tracker.set_tags({"optuna.state": "COMPLETE"})
    if pruned is not None:
        raise pruned
    return value


class SearchJob(submitit.helpers.Checkpointable):
    """One search worker. A requeued worker asks for new trials; its interrupted one is failed and enqueued
    again by the next driver (recover_dead_trials), resuming from the cell's checkpoints."""

    def __call__(self, s: SearchSpec) -> list[int]:
        return run_search(s)
