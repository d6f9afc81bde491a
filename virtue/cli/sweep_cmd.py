"""`virtue sweep --study NAME` (same as `python sweeps/run.py --study NAME`): run or continue an ablation
study from sweeps/studies/*.yaml through Optuna, MLflow and the chosen executor."""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..orchestrate.sweep import EXECUTORS

    p.add_argument("--study", required=True, help="name under sweeps/studies/ or a YAML path")
    p.add_argument("--executor", choices=EXECUTORS, default="local", help="debug: in this process")
    p.add_argument("--workers", type=int, default=1, help="trials at once (Slurm: slurm_array_parallelism)")
    p.add_argument("--storage", help="Optuna storage: an RDB URL or a journal file (default: the study's journal)")
    p.add_argument("--seeds", type=int, help="repeats of each grid cell (default: the study's)")
    p.add_argument("--partition", help="Slurm partition (overrides the study's)")
    p.add_argument("--gpus", type=int, help="GPUs per node (overrides the study's)")
    p.add_argument("--time", type=int, dest="time_min", help="time limit per trial, minutes (overrides the study's)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run or continue an ablation study (sweeps/studies/*.yaml)")
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Raises UserError on bad input; returns 1 when some trial failed."""
    from ..orchestrate.study import load_study
    from ..orchestrate.sweep import run_sweep

    spec = load_study(args.study)
    slurm = {k: v for k, v in (("partition", args.partition), ("gpus_per_node", args.gpus),
                               ("time_min", args.time_min)) if v is not None}  # fmt: skip
    if slurm:
        spec = spec.model_copy(update={"slurm": spec.slurm.model_copy(update=slurm)})
    res = run_sweep(spec, executor=args.executor, workers=args.workers, storage=args.storage, seeds=args.seeds)
    print(f"{res.study}: {res.completed} trials complete in {res.wall_s:.1f} s; report {res.report}")
    if res.requeued:
        print(f"re-enqueued trials left RUNNING by a dead worker: {res.requeued}")
    for line in res.failed:
        print(f"failed: {line}", file=sys.stderr)
    return 1 if res.failed else 0
