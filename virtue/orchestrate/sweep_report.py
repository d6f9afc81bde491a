"""A study's summary: reports/sweeps/<study>.json (rows the report page tabulates: the axis value, mean and
std over seeds of the metric, the same for extra metrics) and reports/sweeps/<study>.png, both atomic."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from ..io import atomic_path, write_json
from ..paths import workspace_root
from .study import StudySpec


def report_path(spec: StudySpec) -> Path:
    return workspace_root() / "reports" / "sweeps" / f"{spec.name}.json"


def _stats(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def summarise(spec: StudySpec, study) -> dict[str, Any]:
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    rows: list[dict[str, Any]] = []
    if spec.sampler == "grid":
        by_cell: dict[str, dict[int, Any]] = {}
        for t in complete:  # the latest completion of a (cell, seed) wins; a cell is never counted twice
            by_cell.setdefault(t.params["cell"], {})[t.params["seed"]] = t
        for cell in spec.cells:
            trials = [by_cell.get(cell.label, {})[s] for s in sorted(by_cell.get(cell.label, {}))]
            if not trials:
                continue
            values = [t.value for t in trials]
            mean, std = _stats(values)
            row: dict[str, Any] = {spec.axis: cell.label, "mean": mean, "std": std, "n": len(values)}
            row["seeds"] = [t.params["seed"] for t in trials]
            row["values"] = values
            for m in spec.extra_metrics:
                xs = [t.user_attrs.get("metrics", {}).get(m) for t in trials]
                xs = [x for x in xs if isinstance(x, int | float)]
                if xs:
                    row[f"{m} mean"], row[f"{m} std"] = _stats(xs)
            rows.append(row)
        ranked = sorted(rows, key=lambda r: r["mean"], reverse=spec.direction == "maximize")
        best = {spec.axis: ranked[0][spec.axis], "mean": ranked[0]["mean"]} if ranked else None
    else:
        for t in sorted(complete, key=lambda t: t.number):
            rows.append({spec.axis: f"t{t.number}", "mean": t.value, "std": 0.0, "n": 1, **t.params})
        best = {"trial": study.best_trial.number, "value": study.best_value, **study.best_params} if complete else None
    return {
        "study": spec.name,
        "description": spec.description,
        "axis": spec.axis,
        "metric": spec.metric,
        "direction": spec.direction,
        "sampler": spec.sampler,
        "experiment": spec.experiment,
        "rows": rows,
        "best": best,
        "completed_trials": len(complete),
        "failed_trials": len(failed),
    }


def plot(summary: dict[str, Any], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["rows"]
    if not rows:
        return None
    axis = summary["axis"]
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    x = [str(r[axis]) for r in rows]
    if summary["sampler"] == "grid":
        ax.errorbar(x, [r["mean"] for r in rows], yerr=[r["std"] for r in rows], marker="o", capsize=4, label="mean")
        for i, r in enumerate(rows):  # each seed's value, so the spread is visible and not only its summary
            ax.scatter([i] * len(r["values"]), r["values"], s=10, alpha=0.5, color="gray")
        ax.set_xlabel(axis)
    else:
        ys = [r["mean"] for r in rows]
        better = max if summary["direction"] == "maximize" else min
        best = [better(ys[: i + 1]) for i in range(len(ys))]
        ax.plot(range(len(ys)), ys, "o", alpha=0.6, label="trial")
        ax.plot(range(len(ys)), best, "-", label="best so far")
        ax.set_xlabel("trial")
        ax.legend()
    ax.set_ylabel(summary["metric"])
    ax.set_title(f"Sweep: {summary['study']}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


def write_report(spec: StudySpec, study, seeds: int | None = None) -> Path:
    summary = summarise(spec, study)
    out = report_path(spec)
    plot(summary, out.with_suffix(".png"))
    write_json(out, _finite(summary))
    return out


def _finite(obj):
    """JSON has no NaN/inf: write them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj
