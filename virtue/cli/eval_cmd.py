"""`virtue eval EXPERIMENT --checkpoint PATH [overrides] [--export DIR]`: the SCaR and MMEB protocols on a trained
embedder, run through the configured launcher (in this process, local processes or Slurm); with --export, the
shareable scores of the evaluation (virtue/report/export.py) are then written into DIR."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import load_experiment


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a trained embedder on SCaR and MMEB")
    p.add_argument("experiment", help="name under experiments/ (e.g. tiny) or a YAML path")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. model.variant=crop")
    p.add_argument(
        "--checkpoint", required=True, help="training run folder or safetensors file (give it after the overrides)"
    )
    p.add_argument("--out", default=None, help="output folder (default: eval.output_dir)")
    p.add_argument(
        "--export", default=None, metavar="DIR", help="then write its VLM2Vec score files and submission JSON here"
    )
    p.set_defaults(func=_eval)


def _eval(args: argparse.Namespace) -> int:
    from ..eval.run import output_dir
    from ..io import check_writable
    from ..orchestrate.jobs import EvalJob
    from ..orchestrate.launcher import launch
    from ..report.mlflow_eval import log_evaluation
    from ..train.checkpoint import find_weights

    cfg = load_experiment(args.experiment, args.overrides)
    out = Path(args.out) if args.out else output_dir(cfg)
    find_weights(args.checkpoint)  # fail here, not after a Slurm job has queued
    if args.export:
        check_writable(Path(args.export) / "submission.json")
    metrics = launch(EvalJob(), cfg, args.checkpoint, str(out), launcher=cfg.launcher, name=f"eval-{cfg.name}")
    log_evaluation(cfg, out, args.checkpoint, metrics)  # the driver logs: a Slurm job's workers need no MLflow
    headline = {}
    if "scar" in metrics:
        headline["scar_p@1"] = round(metrics["scar"]["overall"]["hit@1"], 4)
    if "mmeb" in metrics:
        headline["mmeb_p@1"] = round(metrics["mmeb"]["overall"], 4)
    if args.export:
        from ..report.export import export_scores

        headline["export"] = str(export_scores(out, args.export).submission)
    print(json.dumps({"out": str(out), **headline}))
    return 0
