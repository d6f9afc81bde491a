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


def _interval(p: dict) -> str:
    return f"{p['delta']:+.3f} [{p['low']:+.3f}, {p['high']:+.3f}]"


def sweep_table(path: Path, data: dict, root: Path) -> Table | None:
    """A study summary written by the sweep runner: per cell the metric over seeds and, where the trials
    left per-query predictions, the paired difference from the reference cell with its 95% interval and a
    verdict (virtue.orchestrate.sweep_report)."""
    rows = data.get("rows") or data.get("cells")
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        return None
    metric = data.get("metric", "metric")
    axis = data.get("axis")
    flat = []
    for r in rows:
        row = {k: v for k, v in r.items() if isinstance(v, int | float | str | bool) or v is None}
        row.pop("reference", None)
        if axis in row and r.get("reference"):
            row[axis] = f"{row[axis]} (reference)"
        paired = (r.get("paired") or {}).get(metric)
        if paired:
            row["difference [95% interval]"] = "reference" if r.get("reference") else _interval(paired)
            row["verdict"] = "-" if r.get("reference") else paired["verdict"]
        flat.append(row)
    study = data.get("study", path.stem)
    frame = pl.DataFrame(flat, infer_schema_length=None)
    first = [c for c in (axis, "n", "mean", "std", "difference [95% interval]", "verdict") if c in frame.columns]
    frame = frame.select(first + [c for c in frame.columns if c not in first])
    notes = []
    variance = (data.get("seed_variance") or {}).get(metric)
    if variance:
        notes.append(
            f"Paired on the same {data.get('queries', {}).get(metric, '?')} eval queries (bootstrap over queries, "
            f"stratified by subset/task) and over seeds (seed std {variance['std']:.3f}, pooled over the cells "
            f"{', '.join(variance['from']) or '-'} with {variance['df']} degrees of freedom)."
        )
    if data.get("omitted"):
        notes.append(f"Cells of the study not run at this budget: {', '.join(data['omitted'])}.")
    if data.get("complete") is False:
        notes.append(f"INCOMPLETE: missing {', '.join(data.get('missing', []))}.")
    if data.get("pruned_trials"):
        notes.append(f"{data['pruned_trials']} trial(s) pruned on the validation split (last report shown).")
    return Table(
        f"Sweep study `{study}` ({metric}: mean and std over seeds, fractions)",
        frame,
        [rel(path, root)],
        note=" ".join(notes),
        digits=3,
    )


def claims_table(studies: list[tuple[Path, dict]], root: Path) -> Table | None:
    """The paper's finding beside each study's verdict on it."""
    rows = []
    for path, data in studies:
        claim = data.get("claim")
        if not claim:
            continue
        checks = "; ".join(
            f"{c['cell']} vs {c['than']}: {c['expect'].replace('_', ' ')}, "
            + (f"{_interval(c)} ({c['state']})" if "delta" in c else c["state"])
            for c in claim["checks"]
        )
        rows.append({"study": data.get("study", path.stem), "paper's claim": claim["text"], "source": claim["source"],
                     "verdict": claim["verdict"], "checks (difference [95% interval])": checks})  # fmt: skip
    if not rows:
        return None
    return Table(
        "The paper's ablation findings on the embedded default",
        pl.DataFrame(rows),
        [rel(p, root) for p, _ in studies],
        note="reproduced: every check holds; contradicted: one is significantly the other way; unresolved: the "
        "intervals cannot tell at this resolution. Why each comes out as it does: docs/research/sweeps.md.",
    )


def spread_table(studies: list[tuple[Path, dict]], runs: list[EvaluatedRun], root: Path) -> Table | None:
    """How much the headline moves with the training seed: the studies' reference cell is the main path's virtue
    configuration (its first seed is the main path's run), trained with several seeds."""
    for path, data in studies:
        ref = next((r for r in data.get("rows", []) if r.get("reference")), None)
        if ref is None or data.get("metric") != "scar.overall.hit@1" or len(ref.get("values", [])) < 2:
            continue
        virtue = next((r for r in runs if r.variant == "virtue"), None)
        main = virtue.metrics["scar"]["overall"]["hit@1"] if virtue else None
        values = ref["values"]
        from ..orchestrate.cells import main_path_run

        # at the main path's budget the first seed is the main path's run
        adopted = bool(ref.get("runs")) and main_path_run(root / ref["runs"][0]) is not None
        rows = [{"SCaR-synth P@1 of the virtue configuration": f"seed {s}", "x 100": f"{100 * v:.1f}"}
                for s, v in zip(ref["seeds"], values, strict=True)]  # fmt: skip
        rows.append({"SCaR-synth P@1 of the virtue configuration": "mean +- std over seeds",
                     "x 100": f"{100 * ref['mean']:.1f} +- {100 * ref['std']:.1f}"})  # fmt: skip
        note = (
            f"Study `{data['study']}`'s reference cell trains the main path's virtue config with {len(values)} seeds"
            + (f"; seed 0 is the main path's own run ({100 * main:.1f} above)" if main is not None and adopted else "")
            + ". Across machines the same seed moves further: see the README (CPU kernels, bfloat16 or float32)."
        )
        return Table("How much the headline moves with the training seed", pl.DataFrame(rows), [rel(path, root)],
                     note=note)  # fmt: skip
    return None


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
        if not opt and isinstance(r.get("phase_share"), dict):  # the step profile: the step and where it goes
            shown = ", ".join(f"{k} {v:.0%}" for k, v in r["phase_share"].items())
            opt = {"median": r["step_s"], "unit": "s", "label": f"a step: {shown}; padding {r['padding_share']:.0%}"}
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
