"""`virtue bench [--out reports/bench.json] [--quick]`: the cost benchmarks (GradCache memory, feature
cache, throughput, DVC no-op), side by side with ratios; writes the JSON and prints a table."""

from __future__ import annotations

import argparse

from ..paths import in_workspace


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure what GradCache, the feature cache and deduplication buy")
    p.add_argument("--out", default="reports/bench.json", help="JSON output (relative to the workspace)")
    p.add_argument("--quick", action="store_true", help="micro sizes, one repeat (a smoke test, not numbers)")
    p.set_defaults(func=_bench)


def _bench(args: argparse.Namespace) -> int:
    from ..bench.run import format_table, run_bench

    out = in_workspace(args.out)
    report = run_bench(out, quick=args.quick)
    print(format_table(report))
    print(f"wrote {out}")
    return 0
