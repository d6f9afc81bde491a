"""Find the evaluated runs (runs/eval/<name>/metrics.json), their training curves (runs/<name>/metrics.jsonl)
and the sweep summaries (reports/sweeps/*.json). Paths are kept relative to the workspace for the page."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ..config.yamlfile import read_yaml_or_none
from ..errors import UserError
from ..paths import workspace_root

VARIANTS = ("virtue", "global", "crop")


@dataclass(frozen=True)
class EvaluatedRun:
    name: str
    variant: str
    metrics_path: Path
    metrics: dict
    curve_path: Path  # the training run's metrics.jsonl (may not exist)


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: cannot read metrics JSON: {e}") from e


def find_runs(runs_dir: Path, prefix: str | None = None) -> list[EvaluatedRun]:
    """Every runs/eval/*/metrics.json; with a prefix only `<prefix>-<variant>` for the three variants.
    Ordered virtue, global, crop, then others by name."""
    found = []
    for path in sorted((runs_dir / "eval").glob("*/metrics.json")):
        name = path.parent.name
        m = read_json(path)
        variant = m.get("variant", "?")
        if prefix is not None and name != f"{prefix}-{variant}":
            continue
        found.append(EvaluatedRun(name, variant, path, m, training_folder(runs_dir, name, m) / "metrics.jsonl"))
    order = {v: i for i, v in enumerate(VARIANTS)}
    return sorted(found, key=lambda r: (order.get(r.variant, len(order)), r.name))


def training_folder(runs_dir: Path, name: str, metrics: dict) -> Path:
    """The training run folder of an evaluation: where its checkpoint came from (the path in its metrics,
    from the runs folder's parent or the workspace root), else runs/train/<name> (the pipeline's), else
    runs/<name> (a run trained alone)."""
    checkpoint = metrics.get("checkpoint")
    candidates = []
    if checkpoint:
        for base in (runs_dir.parent, workspace_root()):
            path = base / checkpoint
            candidates.append(path.parent if path.suffix else path)
    candidates += [runs_dir / "train" / name, runs_dir / name]
    return next((c for c in candidates if c.is_dir()), candidates[-1])


def loss_key(columns: list[str]) -> str | None:
    for preferred in ("loss", "train/loss"):
        if preferred in columns:
            return preferred
    losses = sorted(c for c in columns if "loss" in c and "val" not in c)
    return losses[0] if losses else None


def read_curve(path: Path) -> pl.DataFrame | None:
    """step and loss from a tracker's metrics.jsonl ({"step": n, "<metric>": value, ...} per line)."""
    if not path.is_file():
        return None
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a killed process; the rest of the record stands
    key = loss_key(sorted({k for r in rows for k in r}))
    points = [(r["step"], float(r[key])) for r in rows if key in r and r.get("step") is not None]
    points = [(s, v) for s, v in points if not math.isnan(v)]
    if not points:
        return None
    steps, values = zip(*points, strict=True)
    return pl.DataFrame({"step": list(steps), "loss": list(values)}).unique("step", keep="last").sort("step")


def find_sweeps(sweeps_dir: Path) -> list[tuple[Path, dict]]:
    return [(p, read_json(p)) for p in sorted(sweeps_dir.glob("*.json"))] if sweeps_dir.is_dir() else []


def rel(path: Path, root: Path) -> str:
    try:
        return os.path.relpath(path, root)
    except ValueError:
        return str(path)


# Settings of the embedded default that depart from the paper's recipe: (dotted key, value, what it means).
DEVIATIONS = (
    (
        "model.sam_box_mask",
        True,
        "a box also reaches SAM-2 as its rectangle, a dense mask prompt (paper: corners only)",
    ),
    ("model.sam_trainable", "decoder", "SAM-2's prompt encoder and decoder are trained (paper: SAM-2 frozen)"),
    (
        "model.seg_rope",
        "grid",
        "the segmentation tokens take the image grid's 2-D rotary positions (paper: not specified)",
    ),
)


def deviations(runs: list[EvaluatedRun]) -> list[str]:
    """One line per evaluated run whose resolved config (config.yaml beside its metrics) departs from the paper."""
    lines = []
    for r in runs:
        path = r.metrics_path.parent / "config.yaml"
        cfg = read_yaml_or_none(path) if path.is_file() else None
        if not isinstance(cfg, dict):
            continue
        if (cfg.get("model") or {}).get("variant") != "virtue":
            continue  # both settings act on the segmentation stream, which only virtue has
        found = []
        for key, value, meaning in DEVIATIONS:
            node = cfg
            for part in key.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node == value:
                found.append(f"`{key}: {value}`: {meaning}")
        if found:
            lines.append(f"{r.name}: " + "; ".join(found))
    return lines


TRAINING_DATA = {
    "scar": "the SCaR training set",
    "mmeb": "the MMEB training set",
    "both": "the SCaR and MMEB training sets, one source per batch (paper: MMEB first, then a SCaR fine-tune)",
}


def training_lines(runs: list[EvaluatedRun]) -> list[str]:
    """One line per evaluated run on how it was trained, from its training run folder's resolved config."""
    lines = []
    for r in runs:
        path = r.curve_path.parent / "config.yaml"
        cfg = read_yaml_or_none(path) if path.is_file() else None
        if not isinstance(cfg, dict):
            continue
        t = cfg.get("train") or {}
        data = TRAINING_DATA.get(t.get("source", "scar"), str(t.get("source")))
        kinds = t.get("hard_negative_kinds") or []
        drawn = f" (drawn from the kinds {', '.join(kinds)})" if kinds else ""
        compiled = "; the LLM's decoder layers under torch.compile (inductor) while training" if (
            t.get("compile") == "inductor"
        ) else ""  # fmt: skip
        lines.append(
            f"{r.name}: {t.get('steps')} steps of {t.get('batch_size')} queries, "
            f"{t.get('hard_negatives', 0)} hard negatives per query that has distractors{drawn}, on {data}{compiled}"
        )
    return lines
