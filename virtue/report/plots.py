"""Plots (matplotlib, Agg backend, PNG): grouped bars of a results table, training curves, one plot per sweep."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from ..io import write_bytes  # noqa: E402
from .tables import Table  # noqa: E402


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    # no Software stamp: identical numbers give identical bytes whatever matplotlib version wrote them
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    write_bytes(path, buf.getvalue())
    return path


def grouped_bars(table: Table, path: Path, *, ylabel: str = "precision@1 x 100") -> Path:
    """One group of bars per numeric column, one bar per row (run)."""
    label_col = table.frame.columns[0]
    cols = [c for c, t in table.frame.schema.items() if c != label_col and t.is_numeric()]
    labels = table.frame[label_col].to_list()
    x = np.arange(len(cols))
    width = 0.8 / max(len(labels), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(cols) + 2), 3.6))
    for i, label in enumerate(labels):
        values = [table.frame[c][i] for c in cols]
        ax.bar(
            x + (i - (len(labels) - 1) / 2) * width, [np.nan if v is None else v for v in values], width, label=label
        )
    ax.set_xticks(x, cols, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    ax.set_title(table.title.split(":")[0])
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def training_curves(curves: dict[str, pl.DataFrame], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for label, df in curves.items():
        ax.plot(df["step"].to_list(), df["loss"].to_list(), label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title("Training curves")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def sweep_plot(study: str, data: dict, frame: pl.DataFrame, path: Path) -> Path | None:
    """Metric against the ablated axis, with error bars over seeds when the summary has a `std` column."""
    axis = data.get("axis") if data.get("axis") in frame.columns else frame.columns[0]
    metric = next((m for m in (data.get("metric"), "mean", "value") if m in frame.columns), None)
    if metric is None or not frame[metric].dtype.is_numeric():
        return None
    x = [str(v) for v in frame[axis].to_list()]
    y = frame[metric].to_list()
    err = frame["std"].to_list() if "std" in frame.columns and frame["std"].dtype.is_numeric() else None
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ax.errorbar(x, y, yerr=err, marker="o", capsize=4)
    ax.set_xlabel(str(axis))
    ax.set_ylabel(str(data.get("metric", metric)))
    ax.set_title(f"Sweep: {study}")
    ax.grid(alpha=0.3)
    return _save(fig, path)
