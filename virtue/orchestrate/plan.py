"""`virtue sweep --dry-run`: what a sweep would run, where, and for about how long, before anything is
submitted. Reads the study's Optuna storage (if it exists), the trained cells in runs/cells and the main path's
runs; writes nothing (no trial is enqueued, no MLflow run opened, no backbone trained)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config.launcher import LauncherConfig
from ..train.checkpoint import WEIGHTS
from .backbones import missing_backbones
from .cells import cell_dir, finished_run_for
from .queue import cell_key
from .study import StudySpec, cell_seeds, trial_config, trial_overrides
from .worker import read_result

# What a planned trial needs: nothing (done, or its result is in runs/cells), an evaluation (trained weights
# are there, or the main path trained the same cell), or training and evaluation.
NEEDS = {"done": "nothing (complete in the study)", "found": "nothing (result found in runs/cells)",
         "evaluate": "evaluation (weights in runs/cells)", "adopt": "evaluation (trained by the main path)",
         "train": "training + evaluation"}  # fmt: skip


@dataclass(frozen=True)
class PlannedTrial:
    cell: str
    seed: int
    state: str  # a key of NEEDS
    run_dir: Path


def _finished_trials(url: str, spec: StudySpec) -> list:
    """The study's COMPLETE and PRUNED trials; none when the storage or the study does not exist yet."""
    import optuna
    from optuna.trial import TrialState

    from .worker import open_storage

    if url.startswith("journal:") and not Path(url.removeprefix("journal:")).is_file():
        return []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=spec.name, storage=open_storage(url))
    except KeyError:  # the storage holds no study of this name yet
        return []
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def plan_grid(spec: StudySpec, url: str, seeds: int, fresh: bool = False) -> list[PlannedTrial]:
    """Every (cell, seed) of a grid study and what it needs, in the driver's seed-major order. `fresh`: the
    study would start over (its inputs changed), so its own trials count for nothing."""
    done = set() if fresh else {t.user_attrs.get("cell_key") for t in _finished_trials(url, spec)}
    out = []
    for seed in range(max(cell_seeds(spec, c.label, seeds) for c in spec.cells)):
        for cell in spec.cells:
            if seed >= cell_seeds(spec, cell.label, seeds):
                continue
            params = {"cell": cell.label, "seed": seed}
            run_dir = cell_dir(trial_config(spec, trial_overrides(spec, params, seed, Path("cell"))))
            if cell_key(cell.label, seed) in done:
                state = "done"
            elif read_result(run_dir, spec) is not None:
                state = "found"
            elif (run_dir / WEIGHTS).is_file():
                state = "evaluate"
            else:
                state = "adopt" if finished_run_for(run_dir.name) is not None else "train"
            out.append(PlannedTrial(cell.label, seed, state, run_dir))
    return out


def resources(executor: str, workers: int, threads: int | None, slurm: LauncherConfig) -> str:
    """Where the jobs run, in one line."""
    if executor != "slurm":
        each = f", {threads} torch threads each" if threads else ""
        return f"{executor} executor on this machine, {workers} at once{each}"
    mem = f", {slurm.mem_gb} GB" if slurm.mem_gb else ""
    extra = "".join(f" --{k}={v}" for k, v in slurm.slurm_extra.items())
    task = f"{slurm.gpus_per_node} GPU, {slurm.cpus_per_task} CPUs{mem}, time limit {slurm.time_min} min{extra}"
    return f"Slurm array, partition {slurm.partition or '(default)'}, {workers} at once; each task {task}"


def estimate(spec: StudySpec, to_train: int, to_eval: int, workers: int) -> str:
    """Wall time from measured costs (sweep.trial_minutes), or why there is none: each trial trains (or not)
    and runs the study's evaluations (the plain one and its `evals`), longest first onto the free worker.
    Cells with prompts the frozen-feature cache has not seen train slower (their first pass computes SAM-2
    and the vision tower): the estimate does not know which."""
    from .sweep import trial_minutes

    train_min, eval_min = trial_minutes(spec)
    if not to_train + to_eval:
        return "nothing to run"
    if to_train and train_min is None:
        return "time unknown until a first trial has trained (no measured step cost yet)"
    eval_min = eval_min if eval_min is not None else 1.0
    evaluations = 1 + len(spec.evals)
    trials = [(train_min or 0.0) + evaluations * eval_min] * to_train + [evaluations * eval_min] * to_eval
    return (f"about {makespan(trials, workers):.0f} min ({train_min or 0:.1f} min to train a cell, "
            f"{eval_min:.1f} for each of {evaluations} evaluation(s))")  # fmt: skip


def makespan(durations: list[float], workers: int) -> float:
    """Finish time of `durations` on `workers` workers, longest first, each to the first free worker."""
    free = [0.0] * max(1, workers)
    for d in sorted(durations, reverse=True):
        i = free.index(min(free))
        free[i] += d
    return max(free)


def _changed(spec: StudySpec) -> list[str]:
    """What changed since the study's trials ran (sweep.check_inputs' test), without recording anything."""
    from .inputs import changed_inputs, study_inputs
    from .sweep import cell_configs, sweep_dir

    sdir = sweep_dir(spec)
    return changed_inputs(sdir / "inputs.json", study_inputs(spec, cell_configs(spec), sdir))


def describe(spec: StudySpec, *, url: str, executor: str, workers: int, threads: int | None, seeds: int,
             restart_on_change: bool = False) -> str:  # fmt: skip
    """The dry run's text: one line per planned trial, the backbone jobs, resources and the time estimate."""
    lines = [f"{spec.name}: dry run, nothing submitted"]
    changed = _changed(spec)
    if changed and not restart_on_change:
        lines.append(f"  its trials were made from other inputs (changed: {', '.join(changed)}): the driver "
                     "refuses without --restart-on-change")  # fmt: skip
        return "\n".join(lines)
    if changed:
        lines.append(f"  inputs changed ({', '.join(changed)}): the study starts over; cells keep their results")
    backbones = missing_backbones(spec)
    if backbones:
        lines.append(f"  first {len(backbones)} SAM-2 pre-training job(s): " + ", ".join(b.path for b in backbones))
    if spec.sampler == "grid":
        plan = plan_grid(spec, url, seeds, fresh=bool(changed))
        width = max(len(p.cell) for p in plan)
        lines += [f"  {p.cell:<{width}}  seed {p.seed}  {NEEDS[p.state]}" for p in plan]
        to_train = sum(p.state == "train" for p in plan)
        to_eval = sum(p.state in ("evaluate", "adopt") for p in plan)
    else:
        left = spec.n_trials if changed else max(0, spec.n_trials - len(_finished_trials(url, spec)))
        lines.append(f"  {spec.sampler} search: {spec.n_trials} trials, up to {left} to run")
        to_train, to_eval = left, 0
    jobs = to_train + to_eval
    lines.append(f"  jobs: {jobs} ({to_train} to train, {to_eval} to evaluate only)")
    lines.append(f"  resources: {resources(executor, workers, threads, spec.slurm)}")
    lines.append(f"  time: {estimate(spec, to_train, to_eval, workers)}")
    return "\n".join(lines)
