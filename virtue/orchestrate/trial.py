"""The real sweep objective: train one configuration, evaluate it, return its metrics.

Studies name it as `virtue.orchestrate.trial:run_trial`. The sweep runner has already pointed
train.output_dir / eval.output_dir at the trial's own folder (so a requeued trial resumes from its own
checkpoints, train.resume: auto) and opened the trial's MLflow child run, passed here as `tracker`."""

from __future__ import annotations

from pathlib import Path

from ..config import ExperimentConfig
from ..paths import workspace_root


def run_trial(cfg: ExperimentConfig, *, tracker=None) -> dict:
    from ..eval.run import evaluate
    from ..train.loop import train

    run_dir = train(cfg, tracker=tracker)
    out_dir = workspace_root() / Path(cfg.eval.output_dir.format(name=cfg.name))
    return evaluate(cfg, run_dir, out_dir=out_dir)
