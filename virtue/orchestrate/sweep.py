"""The sweep driver: `python sweeps/run.py --study NAME` lands here.

Optuna holds the state (journal file by default, an RDB with --storage); the driver
1. refuses to continue a study made from other inputs (inputs.py), or starts it over when asked;
2. fails trials left RUNNING by a dead worker and enqueues them again (liveness.py), and waits for trials
   whose worker is still alive (a job a killed driver left behind) before going on;
3. grid: enqueues every (cell, seed) not yet complete (queue.py), asks for them, tells Optuna at once the
   result of every cell some study has already trained (cells.py), and runs the others (executors.py),
   telling each result as its job ends; search: runs `workers` search workers that ask, prune and tell;
4. writes reports/sweeps/<study>.json and .png (sweep_report.py) and logs them to the study's MLflow parent
   run; a summary with a cell missing says so (`complete: false`) and the command exits 1.
Only one driver per study should run at a time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..paths import workspace_root
from ..tracker import end_status
from ..train.checkpoint import WEIGHTS
from .backbones import pretrain_backbones
from .executors import EXECUTORS, progress, run_jobs
from .inputs import changed_inputs, record_inputs, study_inputs
from .liveness import live_trials, recover_dead_trials, running
from .queue import ask_grid, enqueue_grid, tell_reused, worker_env
from .study import StudySpec, trial_config, trial_overrides
from .sweep_report import write_report
from .tracking import metric_name, open_tracker
from .worker import SearchJob, SearchSpec, TrialJob, open_storage, read_result, sampler_and_pruner, search_done

__all__ = ["EXECUTORS", "SweepResult", "run_sweep", "storage_url", "sweep_dir"]


@dataclass
class SweepResult:
    study: str
    completed: int
    failed: list[str] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)
    report: Path | None = None
    wall_s: float = 0.0
    reused: int = 0  # cells found already trained (by another study or an earlier run)
    complete: bool = True  # every planned trial is in the summary


def sweep_dir(spec: StudySpec) -> Path:
    return workspace_root() / "runs" / "sweeps" / spec.name


def storage_url(spec: StudySpec, storage: str | None) -> str:
    if storage:
        return storage if "://" in storage or storage.startswith("journal:") else f"journal:{Path(storage).resolve()}"
    return f"journal:{sweep_dir(spec) / 'journal.log'}"


def default_threads(spec: StudySpec, executor: str, workers: int) -> int | None:
    if executor == "local":  # the trials share this machine: split its cores, no oversubscription
        return max(1, len(os.sched_getaffinity(0)) // workers)
    if executor == "slurm":
        return spec.slurm.cpus_per_task
    return None  # debug: this process, left as it is


def cell_configs(spec: StudySpec) -> list:
    """Every cell's resolved config (seed 0, a placeholder run folder): validates the study before anything
    runs, and is what the study's results depend on."""
    placeholder = Path("trial")
    if spec.sampler == "grid":
        return [trial_config(spec, trial_overrides(spec, {"cell": c.label}, 0, placeholder)) for c in spec.cells]
    return [trial_config(spec, list(spec.overrides))]


def check_inputs(spec: StudySpec, url: str, restart: bool) -> None:
    """Continue only a study made from the same inputs; otherwise start it over (restart) or refuse."""
    import optuna

    sdir = sweep_dir(spec)
    current = study_inputs(spec, cell_configs(spec), sdir)
    changed = changed_inputs(sdir / "inputs.json", current)
    if changed:
        if not restart:
            raise UserError(
                f"{sdir}: its trials were made from other inputs (changed: {', '.join(changed)}); "
                "pass --restart-on-change to discard them and start the study over"
            )
        warnings.warn(f"{spec.name}: inputs changed ({', '.join(changed)}): starting the study over", stacklevel=3)
        if url != storage_url(spec, None):
            with contextlib.suppress(KeyError):  # not in that storage yet
                optuna.delete_study(study_name=spec.name, storage=open_storage(url))
        shutil.rmtree(sdir)
    record_inputs(sdir / "inputs.json", current)


def trial_minutes(spec: StudySpec) -> tuple[float | None, float | None]:
    """Measured minutes of this study's training of a cell and of one evaluation: medians over the cells
    already finished anywhere in the workspace (training scaled to this study's steps; evaluation per
    evaluation run, a trial of a study with further `evals` runs several), else the main path's step time for
    the training. None where nothing has been measured yet."""
    import json

    from ..config import load_resolved
    from .cells import ADOPT_FROM, CELLS

    steps = cell_configs(spec)[0].train.steps
    train, evals = [], []
    for path in (workspace_root() / CELLS).glob("*/results/*.json"):
        try:
            timing = json.loads(path.read_text(encoding="utf-8"))["timing"]
            trained = load_resolved(path.parents[1] / "config.yaml").train.steps
        except (OSError, ValueError, KeyError, UserError):
            continue
        if timing.get("train_s", 0) > 60:  # a cell trained here (not found trained, not a micro objective)
            train.append(timing["train_s"] * steps / max(1, trained))
        if timing.get("evaluations", 1) and "eval_s" in timing:  # (results before the count: one)
            evals.append(timing["eval_s"] / timing.get("evaluations", 1))
    if not train:  # no cell trained yet: the main path's step time (its runs log samples/s per step)
        for log in (p for folder in ADOPT_FROM for p in (workspace_root() / folder).glob("*/metrics.jsonl")):
            with contextlib.suppress(OSError, ValueError, UserError):
                rows = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines()]
                rates = [r["samples_per_s"] for r in rows if r.get("samples_per_s")]
                batch = load_resolved(log.parent / "config.yaml").train.batch_size
                if rates:
                    train.append(steps * batch / statistics.median(rates))
    med = lambda xs: statistics.median(xs) / 60 if xs else None  # noqa: E731
    return med(train), med(evals)


def announce(spec: StudySpec, to_train: int, to_eval: int, reused: int, workers: int) -> None:
    """Before the trials start: how many, how many are done already, and how long the rest should take."""
    from .plan import estimate

    at_once = max(1, min(workers, to_train + to_eval))
    total = to_train + to_eval + reused
    print(f"{spec.name}: {total} trials: {reused} found done, {to_eval} trained already (evaluated only), "
          f"{to_train} to train ({at_once} at once): {estimate(spec, to_train, to_eval, workers)}",
          file=sys.stderr, flush=True)  # fmt: skip


def _wait_for_live(study, spec: StudySpec, poll_s: float = 2.0) -> None:
    """Trials whose worker still runs (a killed driver's jobs): wait until they end, then go on."""
    live = live_trials(study)
    if not live:
        return
    print(f"{spec.name}: waiting for {len(live)} trial(s) a previous driver left running", file=sys.stderr)
    while live_trials(study):
        time.sleep(poll_s)


def _collect_left_running(study, spec: StudySpec) -> list[int]:
    """Grid trials a killed driver left RUNNING while its jobs ran on: wait for the live ones, then tell Optuna
    the result each job left in its cell folder (in grid studies the driver tells, not the job). A trial with
    no result (its worker died) stays for _requeue_dead. Returns the numbers completed here."""
    _wait_for_live(study, spec)
    told = []
    for t in running(study):
        run_dir = t.user_attrs.get("run_dir")
        result = read_result(workspace_root() / run_dir, spec) if run_dir else None
        if result is not None:
            study.tell(t.number, result["value"])  # its metrics stay in the cell's result (trial_metrics)
            told.append(t.number)
    return told


def _run_grid(study, spec, *, url, executor, workers, threads, parent, seeds) -> tuple[list[str], int]:
    from optuna.trial import TrialState

    enqueue_grid(study, spec, seeds)
    waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    asked = [ask_grid(study, spec, storage=url, executor=executor, parent=parent, threads=None)
             for _ in range(waiting)]  # fmt: skip
    reused = [a for a in asked if a.reused is not None]
    for a in reused:
        tell_reused(study, a)
    todo = [a for a in asked if a.reused is None]
    # fewer jobs than workers: each gets more of the machine's cores
    n = threads or default_threads(spec, executor, max(1, min(workers, len(todo))))
    for a in todo:
        a.job = dataclasses.replace(a.job, threads=n)
    evaluated_only = sum((Path(a.job.run_dir) / WEIGHTS).is_file() for a in todo)
    announce(spec, len(todo) - evaluated_only, evaluated_only, len(reused), workers)
    bar = progress(len(todo), spec.name)

    def on_submit(i: int, job) -> None:
        key = "slurm_job_id" if executor == "slurm" else "local_pid"
        todo[i].trial.set_user_attr(key, str(job.job_id) if executor == "slurm" else int(job.job_id))

    def on_done(i: int) -> None:
        a = todo[i]
        result = read_result(a.job.run_dir, spec)
        if result is None:  # the job failed or died: its MLflow run too (a killed worker could not say so)
            study.tell(a.trial, state=TrialState.FAIL)
            a.tracker.close("FAILED")
        else:
            a.trial.set_user_attr("metrics", result["metrics"])
            study.tell(a.trial, result["value"])
        bar.update()

    try:
        failed = run_jobs(
            TrialJob(),
            [a.job for a in todo],
            [a.job.cell_key for a in todo],
            executor=executor,
            workers=workers,
            launcher=spec.slurm,
            folder=sweep_dir(spec) / "logs",
            job_name=f"sweep-{spec.name}",
            on_submit=on_submit,
            on_done=on_done,
        )
    except UserError:  # sbatch refused the array: the asked trials must not stay RUNNING
        for a in todo:
            study.tell(a.trial, state=TrialState.FAIL)
            a.tracker.close("FAILED")
        raise
    finally:
        bar.close()
    return failed, len(reused)


def _run_search(study, spec, *, url, executor, workers, threads, parent) -> list[str]:
    failed: list[str] = []
    left = max(0, spec.n_trials - len(study.get_trials(deepcopy=False)))
    announce(spec, left, 0, spec.n_trials - left, workers)
    threads = threads or default_threads(spec, executor, workers)
    while not search_done(study, spec.n_trials):
        before = len(study.get_trials(deepcopy=False))
        jobs = [SearchSpec(spec, url, spec.n_trials, w, parent, worker_env(), threads) for w in range(workers)]
        failed += run_jobs(SearchJob(), jobs, [f"worker {w}" for w in range(workers)], executor=executor,
                           workers=workers, launcher=spec.slurm, folder=sweep_dir(spec) / "logs",
                           job_name=f"search-{spec.name}")  # fmt: skip
        if len(study.get_trials(deepcopy=False)) == before:
            break  # no worker got anywhere (every one failed at once): stop instead of looping forever
        _wait_for_live(study, spec)
        recover_dead_trials(study)
    return failed


def run_sweep(
    spec: StudySpec,
    *,
    executor: str = "local",
    workers: int = 1,
    storage: str | None = None,
    seeds: int | None = None,
    threads: int | None = None,
    restart_on_change: bool = False,
) -> SweepResult:
    """Run what is missing of a study. `threads`: torch threads per trial (default: local trials share this
    machine's cores, a Slurm trial uses its cpus_per_task). A study whose inputs changed since its trials
    ran (inputs.py) is discarded and started over with `restart_on_change`, else refused."""
    import optuna
    from optuna.trial import TrialState

    check_args(executor, workers)
    seeds = seeds or spec.seeds
    start = time.monotonic()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = storage_url(spec, storage)
    check_inputs(spec, url, restart_on_change)
    if spec.backbones:
        pre = threads or default_threads(spec, executor, workers)
        pretrain_backbones(spec, executor=executor, workers=workers, threads=pre, folder=sweep_dir(spec) / "logs")
    study = _open_study(spec, url)
    with _tracking_for(spec, executor):
        parent = _open_parent_run(spec, study)
        try:  # the parent run is closed however the driver ends: KILLED on Ctrl-C, FAILED on an error
            if spec.sampler == "grid":
                _collect_left_running(study, spec)
            requeued = _requeue_dead(study, spec)
            run = dict(url=url, executor=executor, workers=workers, threads=threads, parent=parent.run_id)
            reused = 0
            if spec.sampler == "grid":
                failed, reused = _run_grid(study, spec, seeds=seeds, **run)
            else:
                failed = _run_search(study, spec, **run)
            report, summary = _finish(spec, study, seeds, parent)
        except BaseException as e:
            parent.close(end_status(e))
            raise
        parent.close("FAILED" if failed else "FINISHED")
    completed = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    wall = time.monotonic() - start
    return SweepResult(spec.name, completed, failed, requeued, report, wall, reused, bool(summary.get("complete")))


def _tracking_for(spec: StudySpec, executor: str):
    """Where the trials log: on Slurm, a tracking server the array's workers reach (server.served_for_workers)
    when the study tracks into the workspace's SQLite file; else as configured."""
    cfg = cell_configs(spec)[0]
    if executor != "slurm" or not cfg.tracking.enabled:
        return contextlib.nullcontext()
    from .server import served_for_workers
    from .tracking import tracking_uri

    return served_for_workers(tracking_uri(cfg))


def check_args(executor: str, workers: int) -> None:
    """Refuse an unknown executor or fewer than one worker before anything runs."""
    if executor not in EXECUTORS:
        raise UserError(f"--executor {executor}: expected one of {', '.join(EXECUTORS)}")
    if workers < 1:
        raise UserError(f"--workers {workers}: must be at least 1")


def _open_study(spec: StudySpec, url: str):
    """The study's Optuna study in the storage at `url` (created on first use, else loaded), with the
    sampler and pruner the study asks for."""
    import optuna

    sampler, pruner = sampler_and_pruner(spec)
    return optuna.create_study(
        study_name=spec.name,
        storage=open_storage(url),
        sampler=sampler,
        pruner=pruner,
        direction=spec.direction,
        load_if_exists=True,
    )


def _open_parent_run(spec: StudySpec, study):
    """The parent MLflow run: created (and the experiment with it) here, once, before any worker starts;
    its id is kept on the Optuna study for the workers' runs to nest under."""
    base = trial_config(spec, list(spec.overrides))
    sdir = sweep_dir(spec)
    parent = open_tracker(base, sdir, run_name=f"sweep:{spec.name}", tags={"sweep": spec.name}, log_config=False)
    parent.log_params({"sweep.study": spec.name, "sweep.metric": spec.metric, "sweep.sampler": spec.sampler})
    if parent.run_id:
        study.set_user_attr("mlflow_parent_run_id", parent.run_id)
    return parent


def _requeue_dead(study, spec: StudySpec) -> list[int]:
    """Wait for trials a previous driver's live workers still run, then fail and re-enqueue those a dead
    worker left RUNNING (with a warning); returns their numbers."""
    _wait_for_live(study, spec)
    requeued = recover_dead_trials(study)
    if requeued:  # stacklevel 3: the warning names run_sweep's caller
        warnings.warn(f"{spec.name}: trials {requeued} were left RUNNING by a dead worker; re-enqueued", stacklevel=3)
    return requeued


def _finish(spec: StudySpec, study, seeds: int, parent) -> tuple[Path, dict]:
    """Write the study's report (.json, and .png where one was drawn) and log both to the parent run, with
    each cell's mean, paired difference and interval as metrics (`<axis>/<cell>/delta`, ...: MLflow's compare
    view shows the ablation); returns the report's path and its summary."""
    report, summary = write_report(spec, study, seeds)
    cells = {
        metric_name(f"{spec.axis}/{cell}/{key}"): value
        for cell, numbers in summary.get("cells", {}).items()
        for key, value in numbers.items()
        if isinstance(value, int | float)
    }
    if cells:
        parent.log_metrics(cells)
    for p in (report, report.with_suffix(".png")):
        if p.exists():
            parent.log_artifact(p)
    return report, summary
