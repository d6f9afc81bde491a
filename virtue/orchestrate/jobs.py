"""The main path's heavy jobs (pretrain, train, eval) as submitit Checkpointable callables.

On Slurm a job near its time limit gets SIGUSR2 (submitit's `--signal`), a preempted one SIGTERM and, after
the partition's grace period, SIGKILL. Training takes either signal at a step boundary, saves a checkpoint and
hands the signal back to submitit (hand_back_signal): on SIGUSR2 submitit calls checkpoint() and requeues the
same call; on SIGTERM the process ends without a result and Slurm requeues the preempted job. The requeued
call resumes from the checkpoints. With `in_cells` (`virtue train --in-cells`, the DVC pipeline) training runs
in runs/cells/<key>, outside the stage's outputs, so a rerun of the stage after a killed driver resumes there
too; the finished run is then copied into the run folder. Pre-training and evaluation keep no checkpoints:
requeued, they start again (minutes on the embedded default)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from pathlib import Path

import submitit

from ..config import ExperimentConfig, with_overrides, write_resolved
from ..errors import TrainingInterrupted
from ..io import atomic_path, write_text
from ..paths import workspace_root
from ..tracker import METRICS_FILE
from .tracking import RUN_FILE


class JobInterrupted(BaseException):
    """Training stopped on a signal after saving a checkpoint. Not an Exception: submitit writes no result for
    it (the job is requeued, not failed) and a sweep worker leaves its trial RUNNING, not FAILED."""


# How long a preempted Slurm job waits, checkpoint saved, for what follows SIGTERM (at most).
PREEMPT_WAIT_S = 600.0


def hand_back_signal(signum: int) -> None:
    """Training's own SIGTERM/SIGUSR2 handler took the signal and checkpointed; now give it to the handler
    that was there before (under submitit: USR2 -> checkpoint the call -> `scontrol requeue` -> exit).
    SIGTERM in a Slurm job is a preemption (or a cancel): what follows is SIGKILL at the end of the grace
    period, the job then requeued by Slurm, or submitit's USR2, whose handler requeues it. The job waits for
    either: ending on its own first would end it without a result, as a failure."""
    if signum == signal.SIGTERM and os.environ.get("SLURM_JOB_ID"):
        deadline = time.monotonic() + PREEMPT_WAIT_S
        while time.monotonic() < deadline:
            time.sleep(0.2)  # a USR2 meanwhile runs submitit's handler, which requeues and exits
    handler = signal.getsignal(signum)
    if callable(handler):
        signal.raise_signal(signum)
    raise JobInterrupted(f"interrupted by signal {signum}; the job resumes from its checkpoint")


# What a finished run folder holds besides its checkpoints; the weights last: they mark it finished.
RESULT_FILES = (METRICS_FILE, RUN_FILE)


def training_lines(log: str) -> str:
    """The lines of a cell's metrics.jsonl that training wrote (an integer step). A study that evaluates the
    cell appends its evaluation there (step null); the published run's log is the training's, whichever
    studies have used the cell since."""
    kept = []
    for line in log.splitlines():
        with contextlib.suppress(ValueError, AttributeError):
            if isinstance(json.loads(line).get("step"), int):
                kept.append(line + "\n")
    return "".join(kept)


def publish_run(cfg: ExperimentConfig, cell: Path, out: Path) -> None:
    """Copy a finished run from its cell folder into the run folder `out`: config.yaml (cfg's, naming `out`),
    the metrics, the MLflow run id, then the final weights, each written whole; cell.txt names the cell."""
    from ..train.checkpoint import WEIGHTS

    out.mkdir(parents=True, exist_ok=True)
    (out / WEIGHTS).unlink(missing_ok=True)  # a run published before (another config's) is unfinished from here
    write_resolved(cfg, out)
    for name in (*RESULT_FILES, WEIGHTS):
        if not (cell / name).is_file():
            (out / name).unlink(missing_ok=True)
        elif name == METRICS_FILE:
            write_text(out / name, training_lines((cell / name).read_text(encoding="utf-8")))
        else:
            with atomic_path(out / name) as tmp:
                shutil.copyfile(cell / name, tmp)
    write_text(out / "cell.txt", os.path.relpath(cell, workspace_root()) + "\n")


def train_in_folder(cfg: ExperimentConfig) -> Path:
    """One training process in cfg's run folder: the main rank opens the tracker (re-attached on resume),
    every rank trains. Returns the run folder."""
    from ..train.loop import run_dir_of, train
    from ..train.rundir import check_run_folder

    is_main = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0"))) == 0
    if not (is_main and cfg.tracking.enabled):
        return train(cfg)  # other ranks log nothing; without MLflow the loop keeps metrics in the folder
    from ..tracker import tracked_run
    from .tracking import open_tracker, system_metrics

    check_run_folder(cfg, run_dir_of(cfg))  # before the tracker logs this config into the run's MLflow run
    with tracked_run(open_tracker(cfg, run_dir_of(cfg))) as tracker, system_metrics(tracker):
        return train(cfg, tracker=tracker)


def training_dir(cfg: ExperimentConfig, in_cells: bool) -> Path:
    """Where cfg's run trains: its cell folder with `in_cells`, else its run folder."""
    from ..train.loop import run_dir_of
    from .cells import cell_dir

    return cell_dir(cfg) if in_cells else run_dir_of(cfg)


def run_training(cfg: ExperimentConfig, in_cells: bool = False) -> str:
    """Train cfg; returns its run folder. With `in_cells` the run trains (or resumes, or is found finished) in
    its cell folder runs/cells/<key> (virtue.orchestrate.cells: named by a digest of what decides the weights,
    shared with the sweeps), under the cell's lock, and is then published into the run folder. Checkpoints
    then live outside the run folder: a rerun of the DVC stage, which deletes the stage's outputs first,
    resumes from them, and another config's run never lands in the same folder."""
    from ..train.checkpoint import WEIGHTS
    from ..train.loop import run_dir_of
    from ..train.rundir import check_run_folder
    from .cells import cell_lock, mark_main_path_run

    if not in_cells:
        return str(train_in_folder(cfg))
    out = run_dir_of(cfg)
    check_run_folder(cfg, out)  # the folder must not hold another config's run
    cell = training_dir(cfg, in_cells)
    in_cell = with_overrides(cfg, [f"train.output_dir={os.path.relpath(cell, workspace_root())}"])
    with cell_lock(cell):
        if not (cell / WEIGHTS).is_file():
            train_in_folder(in_cell)
        publish_run(cfg, cell, out)
        mark_main_path_run(cell, out)
    return str(out)


class TrainJob(submitit.helpers.Checkpointable):
    """`virtue train`'s unit of work. Requeued (timeout, preemption), it resumes from its checkpoints."""

    def __init__(self, in_cells: bool = False):
        self.in_cells = in_cells

    def __call__(self, cfg: ExperimentConfig) -> str:
        try:
            return run_training(cfg, self.in_cells)
        except TrainingInterrupted as e:
            hand_back_signal(e.signum)
            raise  # not reached: hand_back_signal exits or raises


class PretrainJob(submitit.helpers.Checkpointable):
    """`virtue pretrain`'s unit of work; requeued, it pre-trains again from the start."""

    def __call__(self, cfg: ExperimentConfig) -> dict:
        from ..train.pretrain import pretrain_job

        return pretrain_job(cfg)


class EvalJob(submitit.helpers.Checkpointable):
    """`virtue eval`'s unit of work; requeued, it evaluates again from the start."""

    def __call__(self, cfg: ExperimentConfig, checkpoint: str | None, out_dir: str) -> dict:
        from ..eval.run import evaluate_job

        return evaluate_job(cfg, checkpoint, out_dir)
