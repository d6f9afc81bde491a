"""The results tables (polars), each with the files its cells come from. Values are fractions in the metrics
files and precision@1 x 100 (one decimal) on the page, as in the paper."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from . import paper
from .collect import EvaluatedRun, rel

MMEB_META = (("cls", "Cls"), ("vqa", "VQA"), ("ret", "Ret"), ("grd", "Grd"))
KIND_ORDER = ("object_in_image", "object_absent", "relation", "scene")


@dataclass
class Table:
    title: str
    frame: pl.DataFrame  # first column: row label; others: numbers (already x100) or text
    sources: list[str] = field(default_factory=list)
    note: str = ""
    digits: int = 1  # decimals shown for floats (x 100 tables: 1; fractions: 3)


def pct(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(100.0 * value, 1)


def run_label(run: EvaluatedRun) -> str:
    return f"{run.variant} ({run.name})"


def scar_table(runs: list[EvaluatedRun], root: Path) -> Table | None:
    runs = [r for r in runs if "scar" in r.metrics]
    if not runs:
        return None
    subsets = sorted({s for r in runs for s in r.metrics["scar"]["subsets"]})
    rows = []
    for r in runs:
        m = r.metrics["scar"]
        row = {"run": run_label(r)}
        row.update({s: pct(m["subsets"].get(s, {}).get("hit@1")) for s in subsets})
        row["Overall"] = pct(m["overall"]["hit@1"])
        row["hit@5"] = pct(m["overall"]["hit@5"])
        row["MRR"] = pct(m["overall"]["mrr"])
        rows.append(row)
    return Table(
        "SCaR-synth: precision@1 x 100 per subset (Overall = mean of subsets; hit@5 and MRR x 100 likewise)",
        pl.DataFrame(rows),
        [rel(r.metrics_path, root) + " (scar.subsets.*.hit@1, scar.overall)" for r in runs],
    )


def kinds_table(runs: list[EvaluatedRun], root: Path) -> Table | None:
    runs = [r for r in runs if r.metrics.get("scar", {}).get("kinds")]
    if not runs:
        return None
    present = {k for r in runs for k in r.metrics["scar"]["kinds"]}
    kinds = [k for k in KIND_ORDER if k in present] + sorted(present - set(KIND_ORDER))
    rows = []
    for r in runs:
        m = r.metrics["scar"]
        row = {"run": run_label(r)}
        row.update({k: pct(m["kinds"].get(k, {}).get("accuracy")) for k in kinds})
        row["Overall P@1"] = pct(m["overall"]["hit@1"])
        rows.append(row)
    return Table(
        "SCaR-synth per distractor kind: % of queries whose ground truth beats every distractor of that kind",
        pl.DataFrame(rows),
        [rel(r.metrics_path, root) + " (scar.kinds.*.accuracy)" for r in runs],
    )


def mmeb_table(runs: list[EvaluatedRun], root: Path) -> Table | None:
    runs = [r for r in runs if "mmeb" in r.metrics]
    if not runs:
        return None
    rows = []
    for r in runs:
        m = r.metrics["mmeb"]
        row = {"run": run_label(r)}
        row.update({label: pct(m["meta_tasks"].get(key)) for key, label in MMEB_META})
        row.update({"IND": pct(m.get("IND")), "OOD": pct(m.get("OOD")), "Overall": pct(m["overall"])})
        rows.append(row)
    return Table(
        "MMEB-synth: precision@1 x 100 per meta-task, in-distribution, out-of-distribution, overall (means over tasks)",
        pl.DataFrame(rows),
        [rel(r.metrics_path, root) + " (mmeb.meta_tasks, mmeb.IND, mmeb.OOD, mmeb.overall)" for r in runs],
    )


def mmeb_tasks_table(runs: list[EvaluatedRun], root: Path) -> Table | None:
    runs = [r for r in runs if "mmeb" in r.metrics]
    if not runs:
        return None
    tasks = sorted({t for r in runs for t in r.metrics["mmeb"]["tasks"]})
    info = {t: r.metrics["mmeb"]["tasks"][t] for r in runs for t in r.metrics["mmeb"]["tasks"]}
    rows = [
        {
            "task": t,
            "meta-task": info[t]["meta_task"],
            "split": info[t]["split"],
            **{run_label(r): pct(r.metrics["mmeb"]["tasks"].get(t, {}).get("hit@1")) for r in runs},
        }
        for t in tasks
    ]
    return Table(
        "MMEB-synth per task: precision@1 x 100",
        pl.DataFrame(rows),
        [rel(r.metrics_path, root) + " (mmeb.tasks.*.hit@1)" for r in runs],
    )


def paper_tables() -> list[Table]:
    def frame(rows, columns):
        return pl.DataFrame([{"model": name, **dict(zip(columns, values, strict=True))} for name, values in rows])

    label = "Published numbers on the REAL benchmarks (paper), not comparable cell by cell with the synthetic sets"
    return [
        Table(f"{label}: SCaR, precision@1 x 100", frame(paper.SCAR_ROWS, paper.SCAR_COLUMNS), [paper.SOURCE]),
        Table(f"{label}: MMEB, precision@1 x 100", frame(paper.MMEB_ROWS, paper.MMEB_COLUMNS), [paper.SOURCE]),
    ]


def sweep_table(path: Path, data: dict, root: Path) -> Table | None:
    """A study summary written by the sweep runner: its `rows` (or `cells`) list of flat records."""
    rows = data.get("rows") or data.get("cells")
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        return None
    flat = [{k: v for k, v in r.items() if isinstance(v, int | float | str | bool) or v is None} for r in rows]
    study = data.get("study", path.stem)
    metric = data.get("metric", "metric")
    frame = pl.DataFrame(flat, infer_schema_length=None)
    first = [c for c in (data.get("axis"), "mean", "std", "n") if c in frame.columns]  # the metric, then extras
    frame = frame.select(first + [c for c in frame.columns if c not in first])
    return Table(
        f"Sweep study `{study}` ({metric}: mean and std over seeds, fractions)",
        frame,
        [rel(path, root)],
        digits=3,
    )


def bench_table(path: Path, data: dict, root: Path) -> Table | None:
    """`virtue bench`'s results: each comparison as optimised vs baseline, their ratio and its target."""
    results = data.get("results")
    if not isinstance(results, dict) or not results:
        return None
    rows = []
    for name, r in results.items():
        # single measurements (a `seconds` side) and estimates (per-stage `minutes`) go in the first column
        opt = r.get("optimised") or r.get("seconds") or {}
        base = r.get("baseline") or {}
        if not opt and isinstance(r.get("minutes"), dict):
            shown = ", ".join(f"{k} {v:g}" for k, v in r["minutes"].items() if v is not None)
            opt = {"median": r.get("total_minutes_after_first") or 0.0, "unit": "min", "label": shown}
        met = r.get("met")
        rows.append(
            {
                "benchmark": name,
                "optimised": f"{opt['median']:.3g} {opt.get('unit', '')} ({opt.get('label', '')})" if opt else "",
                "baseline": f"{base['median']:.3g} {base.get('unit', '')} ({base.get('label', '')})" if base else "",
                "ratio": round(r["ratio"], 3) if isinstance(r.get("ratio"), int | float) else None,
                "target": r.get("target") or "",
                "status": r.get("reason", "skipped")
                if r.get("status") == "skipped"
                else ("met" if met else "NOT met" if met is False else r.get("status", "measured")),
            }
        )
    return Table(
        "Benchmarks (`virtue bench`: medians, optimised / baseline)",
        pl.DataFrame(rows, infer_schema_length=None),
        [rel(path, root)],
        digits=3,
    )
