"""A study's summary: reports/sweeps/<study>.json and reports/sweeps/<study>.png, both atomic.

Grid studies: per cell the metric over seeds (mean, std, values) and, when the trials wrote per-query
predictions (the real objective does), the paired comparison with the study's reference cell on the same
eval queries: the difference, its 95% interval over query sampling and seed variance (virtue.eval.paired),
and a verdict; then the paper's claim (the study's `claim`) judged from those comparisons. `cells` repeats
the numbers keyed by cell, which `dvc metrics show/diff` can read (it skips lists). Searches: one row per
trial, pruned trials with the step they stopped at, and the best."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from ..eval.paired import Comparison, compare, seed_spread
from ..io import atomic_path, write_json, write_text
from ..paths import workspace_root
from .study import StudySpec, cell_seeds

PER_QUERY = {"hit@1": lambda r: r <= 1, "hit@5": lambda r: r <= 5, "mrr": lambda r: 1.0 / r}


def report_path(spec: StudySpec) -> Path:
    return workspace_root() / "reports" / "sweeps" / f"{spec.name}.json"


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def per_query(run_dir: Path, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(qids, strata, values) of `metric` from the predictions of the trial's evaluation, for the metrics
    that are means over queries: <eval>.scar.overall.{hit@1,hit@5,mrr}, <eval>.mmeb.overall (hit@1).
    None for anything else, or when the trial wrote no predictions."""
    import pyarrow.parquet as pq

    parts = metric.split(".")
    folder = run_dir / "eval"
    if parts[0] not in ("scar", "mmeb"):
        folder, parts = run_dir / "evals" / parts[0], parts[1:]
    if len(parts) < 2 or parts[0] not in ("scar", "mmeb") or parts[1] != "overall":
        return None
    measure = parts[2] if len(parts) > 2 else "hit@1"
    if measure not in PER_QUERY or (parts[0] == "mmeb" and measure != "hit@1") or len(parts) > 3:
        return None
    path = folder / "predictions.parquet"
    if not path.is_file():
        return None
    t = pq.read_table(path, columns=["protocol", "qid", "task", "gt_rank"]).to_pydict()
    keep = [i for i, p in enumerate(t["protocol"]) if p == parts[0]]
    order = sorted(keep, key=lambda i: t["qid"][i])
    qids = np.array([t["qid"][i] for i in order])
    tasks = [t["task"][i] for i in order]
    names = {name: k for k, name in enumerate(sorted(set(tasks)))}
    strata = np.array([names[x] for x in tasks])
    ranks = np.array([t["gt_rank"][i] for i in order], dtype=np.float64)
    return qids, strata, PER_QUERY[measure](ranks).astype(np.float64)


def trial_metrics(trial, spec: StudySpec) -> dict[str, Any]:
    """A finished trial's flat metrics: on the trial, else in its cell's result (a trial a killed driver left
    RUNNING is told by the next driver, which cannot add attributes to it)."""
    if "metrics" in trial.user_attrs:
        return trial.user_attrs["metrics"]
    from .worker import read_result

    run_dir = trial.user_attrs.get("run_dir")
    result = read_result(workspace_root() / run_dir, spec) if run_dir else None
    return result["metrics"] if result else {}


def _comparison(c: Comparison) -> dict[str, Any]:
    return {"delta": c.delta, "low": c.low, "high": c.high, "half_width": c.half_width, "se_query": c.se_query,
            "se_seed": c.se_seed, "df": c.df if math.isfinite(c.df) else None, "verdict": c.verdict}  # fmt: skip


class Outcomes:
    """Per-query outcomes of every (cell, seed), aligned on the same queries, for one metric."""

    def __init__(self, metric: str, trials_by_cell: dict[str, list]):
        self.metric = metric
        self.runs: dict[str, np.ndarray] = {}
        self.strata: np.ndarray | None = None
        root = workspace_root()
        for label, trials in trials_by_cell.items():
            rows, qids = [], None
            for t in trials:
                got = per_query(root / t.user_attrs.get("run_dir", "-"), metric)
                if got is None:
                    return self._missing()
                q, strata, values = got
                if qids is not None and not np.array_equal(q, qids):
                    return self._missing()
                qids, self.strata = q, strata
                rows.append(values)
            self.runs[label] = np.stack(rows)
        shapes = {r.shape[1] for r in self.runs.values()}
        if len(shapes) != 1:
            self._missing()

    def _missing(self) -> None:
        self.runs, self.strata = {}, None

    @property
    def available(self) -> bool:
        return bool(self.runs)

    def seed_variance(self) -> tuple[float, int]:
        return seed_spread(list(self.runs.values()), self.strata)

    def compare(self, cell: str, than: str, maximize: bool) -> Comparison:
        var, df = self.seed_variance()
        return compare(self.runs[cell], self.runs[than], self.strata, seed_var=var, seed_df=df, maximize=maximize)


def judge_claim(spec: StudySpec, outcomes: dict[str, Outcomes]) -> dict[str, Any] | None:
    """reproduced: every check holds; contradicted: one is significantly the other way (or significantly
    outside the equivalence margin); unresolved: the intervals cannot tell."""
    claim = spec.claim
    if claim is None:
        return None
    checks, states = [], []
    for check in claim.checks:
        metric = check.metric or spec.metric
        o = outcomes.get(metric)
        than = check.than or spec.reference
        if o is None or not o.available or check.cell not in o.runs or than not in o.runs:
            checks.append({**check.model_dump(), "than": than, "state": "no data"})
            states.append("unresolved")
            continue
        c = o.compare(check.cell, than, spec.direction == "maximize" or metric != spec.metric)
        if check.expect == "equivalent":
            holds = -check.margin < c.low and c.high < check.margin
            opposite = c.low > check.margin or c.high < -check.margin
        elif check.expect == "not_better":
            holds, opposite = c.high < check.margin, c.verdict == "better"
        else:
            holds = c.verdict == check.expect
            opposite = c.verdict == ("worse" if check.expect == "better" else "better")
        state = "holds" if holds else "opposite" if opposite else "unresolved"
        states.append(state)
        checks.append({**check.model_dump(), "than": than, "metric": metric, **_comparison(c), "state": state})
    verdict = (
        "reproduced" if all(s == "holds" for s in states) else "contradicted" if "opposite" in states else "unresolved"
    )
    return {"text": claim.text, "source": claim.source, "verdict": verdict, "checks": checks}


def summarise_grid(spec: StudySpec, study, seeds: int | None) -> dict[str, Any]:
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    by_cell: dict[str, dict[int, Any]] = {}
    for t in complete:  # the latest completion of a (cell, seed) wins; a cell is never counted twice
        by_cell.setdefault(t.params["cell"], {})[t.params["seed"]] = t
    trials = {c.label: [by_cell[c.label][s] for s in sorted(by_cell.get(c.label, {}))] for c in spec.cells}
    trials = {k: v for k, v in trials.items() if v}
    planned = {c.label: cell_seeds(spec, c.label, seeds) for c in spec.cells}
    metrics = [spec.metric, *spec.extra_metrics]
    outcomes = {m: Outcomes(m, trials) for m in metrics}
    maximize = spec.direction == "maximize"
    rows: list[dict[str, Any]] = []
    for cell in spec.cells:
        ts = trials.get(cell.label)
        if not ts:
            continue
        values = [t.value for t in ts]
        mean, std = _stats(values)
        row: dict[str, Any] = {spec.axis: cell.label, "reference": cell.label == spec.reference, "mean": mean,
                               "std": std, "n": len(values), "seeds": [t.params["seed"] for t in ts],
                               "values": values, "runs": [t.user_attrs.get("run_dir") for t in ts]}  # fmt: skip
        for m in spec.extra_metrics:
            xs = [x for t in ts if isinstance(x := trial_metrics(t, spec).get(m), int | float)]
            if xs:
                row[f"{m} mean"], row[f"{m} std"] = _stats(xs)
        if spec.reference and spec.reference in trials:
            row["paired"] = {
                m: _comparison(o.compare(cell.label, spec.reference, maximize if m == spec.metric else True))
                for m, o in outcomes.items()
                if o.available and cell.label in o.runs
            }
        rows.append(row)
    missing = [f"{label} ({len(trials.get(label, []))} of {n} seeds)" for label, n in planned.items()
               if len(trials.get(label, [])) < n]  # fmt: skip
    variance = {}
    for m, o in outcomes.items():
        if o.available:
            var, df = o.seed_variance()
            variance[m] = {"std": math.sqrt(var), "df": df, "from": [k for k, r in o.runs.items() if r.shape[0] > 1]}
    ranked = sorted(rows, key=lambda r: r["mean"], reverse=maximize)
    return {
        "rows": rows,
        "cells": {r[spec.axis]: _flat_cell(r, spec.metric) for r in rows},
        "reference": spec.reference,
        "seed_variance": variance,
        "claim": judge_claim(spec, outcomes),
        "best": {spec.axis: ranked[0][spec.axis], "mean": ranked[0]["mean"]} if ranked else None,
        "complete": not missing,
        "missing": missing,
        "omitted": list(spec.omitted),
        "queries": {m: int(o.strata.size) for m, o in outcomes.items() if o.available},
    }


def _flat_cell(row: dict, metric: str) -> dict[str, float]:
    out = {"mean": row["mean"], "std": row["std"]}
    paired = row.get("paired", {}).get(metric)
    if paired:
        out |= {"delta": paired["delta"], "low": paired["low"], "high": paired["high"]}
    return out


def summarise_search(spec: StudySpec, study) -> dict[str, Any]:
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    rows = []
    for t in sorted(done, key=lambda t: t.number):
        last = max(t.intermediate_values) if t.intermediate_values else None
        value = t.value if t.state == TrialState.COMPLETE else (t.intermediate_values[last] if last else None)
        rows.append({spec.axis: f"t{t.number}", "mean": value, "std": 0.0, "n": 1, "state": t.state.name,
                     "stopped_at_step": last if t.state == TrialState.PRUNED else None, **t.params})  # fmt: skip
    complete = [t for t in done if t.state == TrialState.COMPLETE]
    best = None
    if complete:
        b = study.best_trial
        best = {"trial": b.number, "value": b.value, **b.params}
    return {
        "rows": rows,
        "cells": {r[spec.axis]: {"mean": r["mean"]} for r in rows if r["mean"] is not None},
        "best": best,
        "pruned_trials": sum(t.state == TrialState.PRUNED for t in done),
        "complete": len(done) >= spec.n_trials,
        "missing": [] if len(done) >= spec.n_trials else [f"{spec.n_trials - len(done)} trials"],
    }


def summarise(spec: StudySpec, study, seeds: int | None = None) -> dict[str, Any]:
    from optuna.trial import TrialState

    body = summarise_grid(spec, study, seeds) if spec.sampler == "grid" else summarise_search(spec, study)
    return {
        "study": spec.name,
        "description": spec.description,
        "axis": spec.axis,
        "metric": spec.metric,
        "direction": spec.direction,
        "sampler": spec.sampler,
        "experiment": spec.experiment,
        **body,
        "completed_trials": len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))),
        "failed_trials": len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,))),
    }


def plot(summary: dict[str, Any], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["rows"]
    if not rows:
        return None
    axis = summary["axis"]
    paired = summary["sampler"] == "grid" and all(summary["metric"] in r.get("paired", {}) for r in rows)
    fig, axes = plt.subplots(1, 2 if paired else 1, figsize=(10.5 if paired else 5.5, 3.4), squeeze=False)
    ax = axes[0][0]
    x = [str(r[axis]) for r in rows]
    if summary["sampler"] == "grid":
        ax.errorbar(x, [r["mean"] for r in rows], yerr=[r["std"] for r in rows], marker="o", capsize=4)
        for i, r in enumerate(rows):  # each seed's value, so the spread is visible and not only its summary
            ax.scatter([i] * len(r["values"]), r["values"], s=10, alpha=0.5, color="gray")
        ax.set_xlabel(axis)
        ax.set_title(f"{summary['study']}: mean over seeds (dots: seeds)")
    else:
        ys = [np.nan if r["mean"] is None else r["mean"] for r in rows]
        ok = [y for y in ys if not np.isnan(y)]
        best = [max(ok[: i + 1]) for i in range(len(ok))] if summary["direction"] == "maximize" else None
        ax.plot(range(len(ys)), ys, "o", alpha=0.6, label="trial (pruned: last report)")
        if best:
            ax.plot(range(len(best)), best, "-", label="best so far")
        ax.set_xlabel("trial")
        ax.legend(fontsize=8)
        ax.set_title(f"Search: {summary['study']}")
    ax.set_ylabel(summary["metric"])
    ax.grid(alpha=0.3)
    if paired:
        bx = axes[0][1]
        p = [r["paired"][summary["metric"]] for r in rows]
        ys = np.arange(len(rows))[::-1]
        for y, q in zip(ys, p, strict=True):
            colour = {"better": "tab:green", "worse": "tab:red"}.get(q["verdict"], "tab:gray")
            err = [[q["delta"] - q["low"]], [q["high"] - q["delta"]]]
            bx.errorbar([q["delta"]], [y], xerr=err, fmt="o", color=colour, capsize=4)
        bx.axvline(0, color="black", lw=0.8)
        bx.set_yticks(ys, x)
        bx.set_xlabel(f"difference from reference {summary['reference']} (95% interval)")
        bx.set_title("paired on the same eval queries")
        bx.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path


def write_report(spec: StudySpec, study, seeds: int | None = None) -> tuple[Path, dict[str, Any]]:
    summary = _finite(summarise(spec, study, seeds))
    out = report_path(spec)
    plot(summary, out.with_suffix(".png"))
    write_text(out.with_suffix(".csv"), cells_csv(summary))
    write_json(out, summary)
    return out, summary


def cells_csv(summary: dict[str, Any]) -> str:
    """One row per cell (a search: per trial) for `dvc plots show` (dvc.yaml's template): the label, the
    metric's mean and std over seeds, and the paired difference from the reference with its 95% interval."""
    keys = ("mean", "std", "delta", "low", "high")
    lines = [",".join(("cell", *keys))]
    for label, cell in summary.get("cells", {}).items():
        values = ("" if cell.get(k) is None else f"{cell[k]:.6g}" for k in keys)
        lines.append(",".join((str(label), *values)))
    return "\n".join(lines) + "\n"


def _finite(obj):
    """JSON has no NaN/inf: write them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.generic):
        return _finite(obj.item())
    return obj
