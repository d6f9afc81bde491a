"""The sweep driver: `python sweeps/run.py --study NAME` lands here.

Optuna holds the state (journal file by default, an RDB with --storage); the driver
1. recovers trials left RUNNING by a dead worker (the journal has no heartbeat): marks them FAIL and
   enqueues the same parameters again, carrying the MLflow run id so the new attempt re-attaches;
2. grid: enqueues every (cell, seed) not yet complete or queued, so reruns only do what is missing;
   tpe: asks the sampler in waves of `workers` trials until n_trials are complete (seed 0);
3. asks Optuna for each trial (fixing its parameters), runs them through the executor (debug: here;
   local: subprocesses, at most `workers` at once; slurm: one job array, slurm_array_parallelism=workers),
   and waits;
4. writes reports/sweeps/<study>.json and .png (atomically) and logs them to the study's MLflow parent run.
Only one driver per study should run at a time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..errors import UserError
from ..paths import workspace_root
from .backbones import pretrain_backbones
from .inputs import changed_inputs, record_inputs, study_inputs
from .launcher import failure_reason, make_executor
from .study import StudySpec, trial_config, trial_overrides
from .sweep_report import write_report
from .tracking import open_tracker
from .worker import TrialJob, TrialSpec, open_storage, run_one

EXECUTORS = ("debug", "local", "slurm")
SEED_RANGE = (0, 1_000_000)


@dataclass
class SweepResult:
    study: str
    completed: int
    failed: list[str] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)
    report: Path | None = None
    wall_s: float = 0.0


def sweep_dir(spec: StudySpec) -> Path:
    return workspace_root() / "runs" / "sweeps" / spec.name


def storage_url(spec: StudySpec, storage: str | None) -> str:
    if storage:
        return storage if "://" in storage or storage.startswith("journal:") else f"journal:{Path(storage).resolve()}"
    return f"journal:{sweep_dir(spec) / 'journal.log'}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _slurm_job_active(job_id: str) -> bool | None:
    """True/False from squeue; None when squeue cannot answer (no Slurm here)."""
    try:
        out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        # squeue errors for ids it has forgotten ("Invalid job id"): that job is long gone.
        return False if "Invalid job id" in out.stderr else None
    states = {s.strip() for s in out.stdout.split()}
    return bool(states & {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING"})


def worker_alive(attrs: dict[str, Any]) -> bool:
    """Whether the worker recorded on a RUNNING trial may still be working on it."""
    job = attrs.get("slurm_job_id") or (attrs.get("job_id") if attrs.get("executor") == "slurm" else None)
    if job:
        active = _slurm_job_active(str(job))
        return bool(active)  # unknown (squeue missing) counts as dead: this driver cannot wait for it
    here = socket.gethostname()
    for host_key, pid_key in (("worker_host", "worker_pid"), ("driver_host", "job_pid"), ("driver_host", "driver_pid")):
        pid = attrs.get(pid_key)
        if pid and attrs.get(host_key) == here:
            return int(pid) != os.getpid() and _pid_alive(int(pid))
    return False


def recover_dead_trials(study, spec: StudySpec) -> list[int]:
    """RUNNING trials whose worker is gone -> FAIL, and the same parameters enqueued again."""
    from optuna.trial import TrialState

    requeued = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if worker_alive(t.user_attrs):
            continue
        study._storage.set_trial_user_attr(t._trial_id, "dead_worker", True)
        study.tell(t.number, state=TrialState.FAIL)
        attrs = {"cell_key": t.user_attrs.get("cell_key"), "requeued_from": t.number}
        if t.user_attrs.get("mlflow_run_id"):
            attrs["mlflow_run_id"] = t.user_attrs["mlflow_run_id"]
        study.enqueue_trial(dict(t.params), user_attrs=attrs, skip_if_exists=False)
        requeued.append(t.number)
    return requeued


def _cell_key(cell: str, seed: int) -> str:
    return f"{cell}-s{seed}"


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
    for seed in range(seeds):
        for cell in spec.cells:
            key = _cell_key(cell.label, seed)
            if key not in have:
                study.enqueue_trial({"cell": cell.label, "seed": seed}, user_attrs={"cell_key": key})
                n += 1
    return n


def _suggest(trial, spec: StudySpec) -> dict[str, Any]:
    """Grid: the queued cell and seed come back as they were enqueued. TPE: sampled values; the seed stays 0
    (repeating a sampled point over seeds would only blur what the sampler learns)."""
    if spec.sampler == "grid":
        labels = [c.label for c in spec.cells]
        return {"cell": trial.suggest_categorical("cell", labels), "seed": trial.suggest_int("seed", *SEED_RANGE)}
    params: dict[str, Any] = {}
    for key, p in spec.search.items():
        if p.choices is not None:
            params[key] = trial.suggest_categorical(key, p.choices)
        elif p.integer:
            params[key] = trial.suggest_int(key, int(p.low), int(p.high), log=p.log)
        else:
            params[key] = trial.suggest_float(key, p.low, p.high, log=p.log)
    return params


def _ask(study, spec: StudySpec, storage: str, executor: str, parent: str | None, threads: int | None) -> TrialSpec:
    from optuna.trial import TrialState

    trial = study.ask()
    params = _suggest(trial, spec)
    key = trial.user_attrs.get("cell_key")
    if spec.sampler == "grid" and key is None:
        # Not one of ours (someone else popped the queued trial first): never run an unplanned cell.
        study.tell(trial, state=TrialState.FAIL)
        raise RuntimeError("grid study asked for a trial with nothing queued (is another driver running?)")
    key = key or f"t{trial.number}"
    trial.set_user_attr("cell_key", key)
    trial.set_user_attr("driver_host", socket.gethostname())
    trial.set_user_attr("driver_pid", os.getpid())
    trial.set_user_attr("executor", executor)
    run_dir = sweep_dir(spec) / "trials" / key
    overrides = trial_overrides(spec, params, params.get("seed", 0), run_dir)
    return TrialSpec(
        spec=spec,
        storage=storage,
        trial_id=trial._trial_id,
        number=trial.number,
        cell_key=key,
        overrides=overrides,
        run_dir=str(run_dir),
        parent_run_id=parent,
        mlflow_run_id=trial.user_attrs.get("mlflow_run_id"),
        env=_worker_env(),
        threads=threads,
    )


def _worker_env() -> dict[str, str]:
    """What a worker on another node must see like the driver: the workspace and the tracking server."""
    env = {"VIRTUE_ROOT": str(workspace_root())}
    for k in ("MLFLOW_TRACKING_URI", "PYTHONPATH"):
        if os.environ.get(k):
            env[k] = os.environ[k]
    return env


def _run_jobs(specs: list[TrialSpec], spec: StudySpec, executor: str, workers: int, study) -> list[str]:
    """Run the trials; return a message per failed trial."""
    from optuna.trial import TrialState

    failed: list[str] = []
    bar = tqdm(total=len(specs), desc=spec.name, unit="trial", disable=not sys.stderr.isatty())
    if executor == "debug":
        for t in specs:
            try:
                run_one(t)
            except Exception as e:  # noqa: BLE001 - one failed cell does not stop the sweep
                failed.append(f"{t.cell_key}: {type(e).__name__}: {e}")
            bar.update()
        bar.close()
        return failed
    launcher = spec.slurm if executor == "slurm" else spec.slurm.model_copy(update={"kind": "local"})
    folder = sweep_dir(spec) / "logs"
    if executor == "slurm":
        ex = make_executor(launcher, f"sweep-{spec.name}", folder=folder, slurm_array_parallelism=workers)
        try:
            jobs = ex.map_array(TrialJob(), specs)
        except Exception as e:  # sbatch refused (partition, limits): the asked trials must not stay RUNNING
            for t in specs:
                study.tell(t.number, state=TrialState.FAIL)
            raise UserError(f"{spec.name}: sbatch refused the job array: {failure_reason(e)}") from e
        for t, job in zip(specs, jobs, strict=True):
            study._storage.set_trial_user_attr(t.trial_id, "job_id", str(job.job_id))
        pending = list(zip(specs, jobs, strict=True))
    else:  # submitit's local executor has no array parallelism: keep `workers` processes in flight
        ex = make_executor(launcher, f"sweep-{spec.name}", folder=folder)
        queue, pending = list(specs), []
    done: list[tuple[TrialSpec, Any]] = []
    while pending or (executor == "local" and queue):
        if executor == "local":
            while queue and len(pending) < workers:
                t = queue.pop(0)
                job = ex.submit(TrialJob(), t)
                study._storage.set_trial_user_attr(t.trial_id, "job_id", str(job.job_id))
                study._storage.set_trial_user_attr(t.trial_id, "job_pid", int(job.job_id))
                pending.append((t, job))
        finished = [(t, j) for t, j in pending if j.done()]
        for item in finished:
            pending.remove(item)
            done.append(item)
            bar.update()
        if not finished:
            time.sleep(0.5)
    bar.close()
    for t, job in done:
        try:
            job.result()
        except Exception as e:  # noqa: BLE001
            failed.append(f"{t.cell_key}: job {job.job_id} failed: {failure_reason(e)} (log: {job.paths.stderr})")
    return failed


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

    if executor not in EXECUTORS:
        raise UserError(f"--executor {executor}: expected one of {', '.join(EXECUTORS)}")
    if workers < 1:
        raise UserError(f"--workers {workers}: must be at least 1")
    seeds = seeds or spec.seeds
    threads = threads or default_threads(spec, executor, workers)
    start = time.monotonic()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = storage_url(spec, storage)
    check_inputs(spec, url, restart_on_change)
    if spec.backbones:
        pretrain_backbones(spec, executor=executor, workers=workers, threads=threads, folder=sweep_dir(spec) / "logs")
    sampler = (
        optuna.samplers.TPESampler(seed=spec.sampler_seed)
        if spec.sampler == "tpe"
        else optuna.samplers.RandomSampler(seed=spec.sampler_seed)  # never used: every grid trial is enqueued
    )
    study = optuna.create_study(
        study_name=spec.name,
        storage=open_storage(url),
        sampler=sampler,
        pruner=optuna.pruners.NopPruner(),
        direction=spec.direction,
        load_if_exists=True,
    )
    # The parent MLflow run: created (and the experiment with it) here, once, before any worker starts.
    base = trial_config(spec, list(spec.overrides))
    sdir = sweep_dir(spec)
    parent = open_tracker(base, sdir, run_name=f"sweep:{spec.name}", tags={"sweep": spec.name}, log_config=False)
    parent.log_params({"sweep.study": spec.name, "sweep.metric": spec.metric, "sweep.sampler": spec.sampler})
    if parent.run_id:
        study.set_user_attr("mlflow_parent_run_id", parent.run_id)

    requeued = recover_dead_trials(study, spec)
    if requeued:
        warnings.warn(f"{spec.name}: trials {requeued} were left RUNNING by a dead worker; re-enqueued", stacklevel=2)
    failed: list[str] = []
    if spec.sampler == "grid":
        enqueue_grid(study, spec, seeds)
        waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        specs = [_ask(study, spec, url, executor, parent.run_id, threads) for _ in range(waiting)]
        failed += _run_jobs(specs, spec, executor, workers, study)
    else:
        while True:
            states = (TrialState.COMPLETE, TrialState.RUNNING)
            left = spec.n_trials - len(study.get_trials(deepcopy=False, states=states))
            if left <= 0:
                break
            specs = [_ask(study, spec, url, executor, parent.run_id, threads) for _ in range(min(workers, left))]
            wave_failed = _run_jobs(specs, spec, executor, workers, study)
            failed += wave_failed
            if len(wave_failed) == len(specs):
                break  # everything failing: stop asking instead of looping forever
    report = write_report(spec, study, seeds)
    for p in (report, report.with_suffix(".png")):
        if p.exists():
            parent.log_artifact(p)
    parent.close("FAILED" if failed else "FINISHED")
    completed = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    return SweepResult(spec.name, completed, failed, requeued, report, time.monotonic() - start)
