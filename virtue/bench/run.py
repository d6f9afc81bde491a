"""Run every benchmark, write the JSON atomically, and format the table."""

from __future__ import annotations

import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..io import check_writable, write_json
from ..paths import workspace_root
from .common import BenchWorkspace, log


@dataclass(frozen=True)
class Sizes:
    """How big each benchmark is. `quick` is for smoke tests; `full` is the issue's setting (< 10 min)."""

    train_per_subset: int
    eval_per_subset: int
    big_batch: int
    chunk: int
    memory_repeats: int
    sweep_steps: int
    sweep_batch: int
    sweep_repeats: int
    eval_repeats: int
    eval_batch: int
    dvc_repeats: int
    lever_steps: int
    lever_repeats: int
    profile_steps: int


FULL = Sizes(256, 20, 256, 8, 1, 4, 8, 3, 2, 32, 3, 6, 2, 12)
QUICK = Sizes(32, 4, 32, 8, 1, 2, 8, 1, 1, 32, 1, 2, 1, 3)


def run_bench(out: str | os.PathLike, *, quick: bool = False) -> dict:
    sizes = QUICK if quick else FULL
    check_writable(out)  # fail now, not after minutes of measuring; an earlier report stays as it is
    load_at_start = list(os.getloadavg())  # the machine is shared: the other load explains noisy timings
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared: one thread keeps the timings comparable
    start = time.perf_counter()
    from ..orchestrate.budget import read_budget
    from .cache_sweep import cache_sweep
    from .eval_speed import eval_throughput
    from .levers import compile_lever, study_levers
    from .memory import gradcache_memory
    from .pipeline import noop_repro, stage_minutes
    from .step_profile import step_profile

    budget = read_budget(workspace_root() / "params.yaml").__dict__

    try:
        with tempfile.TemporaryDirectory(prefix="virtue-bench-") as tmp:
            ws = BenchWorkspace(Path(tmp), sizes.train_per_subset, sizes.eval_per_subset)
            log(f"micro SCaR-synth in {tmp}")
            ws.prepare()
            memory = dict(big_batch=sizes.big_batch, chunk=sizes.chunk, repeats=sizes.memory_repeats)
            results = _clocked(lambda: [gradcache_memory(ws, **memory)])
            results += _clocked(
                lambda: cache_sweep(ws, steps=sizes.sweep_steps, batch=sizes.sweep_batch, repeats=sizes.sweep_repeats)
            )
            results += _clocked(lambda: [eval_throughput(ws, repeats=sizes.eval_repeats, batch_size=sizes.eval_batch)])
            results += _clocked(
                lambda: study_levers(ws, repeats=sizes.lever_repeats, steps=sizes.lever_steps, budget=budget)
            )
            fast = next(r["fastest"] for r in results if r["name"] == "train_step_dtype")
            profile = dict(repeats=sizes.lever_repeats, steps=sizes.profile_steps, budget=budget, dtype=fast)
            results += _clocked(lambda: step_profile(ws, **profile, quick=quick))
            compile_lever(results, budget)
        root = workspace_root()
        results += _clocked(lambda: [noop_repro(root, sizes.dvc_repeats)])
        results += _clocked(lambda: [stage_minutes(root)])
    finally:
        torch.set_num_threads(threads)
    report = {
        "mode": "quick" if quick else "full",
        "sizes": sizes.__dict__,
        "model": "tiny (experiments/tiny.yaml), untrained backbones from a zero-step `virtue pretrain` on the micro "
        "workspace (its tokenizer trained there, as the pipeline's): costs do not depend on weight values",
        "torch_threads": 1,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "load_average_at_start": load_at_start,
            "load_average_at_end": list(os.getloadavg()),
        },
        "seconds": round(time.perf_counter() - start, 1),
        "results": {r["name"]: r for r in results},
    }
    write_json(out, report)
    return report


def _clocked(fn) -> list[dict]:
    """Run one benchmark group; its wall seconds go into each of its results."""
    t = time.perf_counter()
    out = fn()
    for r in out:
        r["bench_seconds"] = round(time.perf_counter() - t, 1)
    return out


def _num(x: float | None, unit: str = "") -> str:
    if x is None:
        return "-"
    return f"{x:.3g}{(' ' + unit) if unit else ''}"


def format_table(report: dict) -> str:
    rows = [("benchmark", "optimised", "baseline", "ratio", "target", "met")]
    for name, r in report["results"].items():
        if r["status"] == "skipped":
            rows.append((name, f"skipped: {r['reason']}"[:100], "", "", "", ""))
        elif "optimised" in r:
            a, b = r["optimised"], r["baseline"]
            met = {True: "yes", False: "NO", None: "-"}[r["met"]]
            rows.append((name, _num(a["median"], a["unit"]), _num(b["median"], b["unit"]), f"{r['ratio']:.2f}x",
                         r["target"] or "-", met))  # fmt: skip
        elif name == "dvc_repro_noop":
            rows.append((name, _num(r["seconds"]["median"], "s"), "", "", "", ""))
        elif name == "cell_dedup":
            rows.append((name, f"{r['distinct_cells']} cells", f"{r['planned_trials']} trials", f"{r['ratio']:.2f}x",
                         "-", "-"))  # fmt: skip
        elif name == "train_step_profile":
            shares = ", ".join(f"{k} {v:.0%}" for k, v in r["phase_share"].items())
            rows.append((name, f"{_num(r['step_s'], 's')}: {shares}; padding {r['padding_share']:.0%}", "", "", "-",
                         "-"))  # fmt: skip
        elif name == "answered_cell_minutes":
            steps = " -> ".join(f"{x['minutes']:.2g}" for x in r["levers"] if x.get("adopted", True))
            steps += "".join(f" (not adopted here: {x['minutes']:.2g})" for x in r["levers"]
                             if not x.get("adopted", True))  # fmt: skip
            rows.append((name, f"{steps} min", "", f"{r['ratio_all_levers']:.2f}x", "-", "-"))
        else:
            stages = ", ".join(f"{k}: {_num(v, 'min')}" for k, v in r["minutes"].items())
            rows.append((name, f"{r['status']}: {stages}"[:100], "", "", "", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + f"\n({report['mode']} run, {report['seconds']} s, 1 torch thread)"
