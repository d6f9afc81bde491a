"""`virtue report [--runs runs] [--out reports]`: the results page, tables and plots from the evaluated runs."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="build reports/ (results page, tables, plots) from evaluated runs")
    p.add_argument("--runs", default="runs", help="runs folder holding eval/<name>/metrics.json (default: runs)")
    p.add_argument("--out", default="reports", help="output folder (default: reports)")
    p.add_argument(
        "--prefix", default=None, help="only runs named <prefix>-<variant> (e.g. tiny: tiny-virtue, tiny-global, ...)"
    )
    p.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from ..report.page import build_report

    print(build_report(args.runs, args.out, prefix=args.prefix))
    return 0
