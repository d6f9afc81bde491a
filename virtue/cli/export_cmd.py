"""`virtue export EVAL_RUN_DIR --out DIR`: shareable scores of an evaluation, the VLM2Vec score files of every
MMEB task and SCaR subset and an MMEB-leaderboard-style submission JSON."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="VLM2Vec score files and an MMEB-style submission from an evaluation folder")
    p.add_argument("eval_dir", metavar="EVAL_RUN_DIR", help="an evaluation folder (runs/eval/<name>)")
    p.add_argument("--out", required=True, help="folder to write the score files and the submission into")
    p.add_argument("--model-name", default=None, help="the submission's model name (default: the run's experiment)")
    p.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from ..report.export import export_scores

    done = export_scores(args.eval_dir, args.out, model_name=args.model_name)
    print(json.dumps({"out": args.out, "submission": str(done.submission), "score_files": len(done.score_files)}))
    return 0
