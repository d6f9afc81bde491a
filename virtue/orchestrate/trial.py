"""The real sweep objective: train one configuration, evaluate it, return its metrics.

Studies name it as `virtue.orchestrate.trial:run_trial`. The sweep runner has already pointed
train.output_dir / eval.output_dir at the trial's own folder (so a requeued trial resumes from its own
checkpoints, train.resume: auto) and opened the trial's MLflow child run, passed here as `tracker`."""

from __future__ import annotations

import signal
from pathlib import Path

from ..config import ExperimentConfig
from ..paths import workspace_root


class TrialInterrupted(BaseException):
    """Training stopped on a signal after saving a checkpoint. Not an Exception: the sweep worker leaves the
    trial RUNNING (not FAILED) so that the requeued job, or the next driver, resumes it."""


def hand_back_signal(signum: int) -> None:
    """Training's own SIGTERM/SIGUSR2 handler took the signal and checkpointed; now give it to the handler
    that was there before (under submitit: USR2 -> checkpoint the trial -> `scontrol requeue` -> exit)."""
    handler = signal.getsignal(signum)
    if callable(handler):
        signal.raise_signal(signum)
    raise TrialInterrupted(f"trial interrupted by signal {signum}; it resumes from its checkpoint")


def run_trial(cfg: ExperimentConfig, *, tracker=None) -> dict:
    from ..eval.run import evaluate
    from ..train.loop import TrainingInterrupted, train

    try:
        run_dir = train(cfg, tracker=tracker)
    except TrainingInterrupted as e:
        hand_back_signal(e.signum)
        raise  # not reached: hand_back_signal exits or raises
    out_dir = workspace_root() / Path(cfg.eval.output_dir.format(name=cfg.name))
    return evaluate(cfg, run_dir, out_dir=out_dir)
