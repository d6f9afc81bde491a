"""`virtue train EXPERIMENT [overrides]`: contrastive training of the embedder, tracked in MLflow, resumable.
Under torchrun every process runs this command; a Slurm or submitit launch goes through the launcher."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..config import ExperimentConfig, load_experiment


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the embedder (InfoNCE, GradCache, LoRA/DoRA; resumable)")
    p.add_argument("experiment", help="name under experiments/ (e.g. tiny) or a YAML path")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. train.steps=100")
    p.set_defaults(func=_train)


def run_training(cfg: ExperimentConfig) -> str:
    """One training process: the main rank opens the tracker (re-attached on resume), every rank trains."""
    from ..train.loop import TrainingInterrupted, run_dir_of, train

    tracker = None
    is_main = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0"))) == 0
    if is_main and cfg.tracking.enabled:
        from ..orchestrate.tracking import open_tracker

        tracker = open_tracker(cfg, run_dir_of(cfg))
    try:
        run_dir = train(cfg, tracker=tracker)
    except TrainingInterrupted:
        if tracker is not None:
            tracker.close("KILLED")
        raise
    except BaseException:
        if tracker is not None:
            tracker.close("FAILED")
        raise
    if tracker is not None:
        tracker.close("FINISHED")
    return str(run_dir)


def _train(args: argparse.Namespace) -> int:
    from ..train.loop import TrainingInterrupted

    cfg = load_experiment(args.experiment, args.overrides)
    try:
        if cfg.launcher.kind == "inprocess":
            run_dir = run_training(cfg)
        else:
            from ..orchestrate.launcher import launch

            run_dir = launch(run_training, cfg, launcher=cfg.launcher, name=f"train-{cfg.name}")
    except TrainingInterrupted as e:
        print(f"virtue: {e}", file=sys.stderr)
        return 128 + e.signum
    print(Path(run_dir) / "trainable.safetensors")
    return 0
