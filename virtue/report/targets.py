"""The result targets of the embedded default, checked against the evaluated runs."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .collect import EvaluatedRun

SCAR_MIN = 0.60
SCAR_MARGIN = 0.10
MMEB_SLACK = 0.01


@dataclass(frozen=True)
class Target:
    name: str
    value: float | None  # the measured quantity (fraction)
    required: str
    met: bool | None  # None: a run it needs is missing
    source: str


def _scar(run: EvaluatedRun | None) -> float | None:
    v = run.metrics.get("scar", {}).get("overall", {}).get("hit@1") if run else None
    return None if v is None or math.isnan(v) else v


def _mmeb(run: EvaluatedRun | None) -> float | None:
    v = run.metrics.get("mmeb", {}).get("overall") if run else None
    return None if v is None or math.isnan(v) else v


def check_targets(runs: list[EvaluatedRun]) -> list[Target]:
    """Uses the first run of each variant (runs come ordered; with a name prefix there is one per variant)."""
    by = {}
    for r in runs:
        by.setdefault(r.variant, r)
    v, g, c = by.get("virtue"), by.get("global"), by.get("crop")

    def src(*rs):
        return ", ".join(r.name for r in rs if r) or "missing runs"

    out = [Target("VIRTUE SCaR-synth P@1", _scar(v), f">= {SCAR_MIN:.2f}", None, src(v))]
    for other, label in ((g, "global"), (c, "crop")):
        diff = None if _scar(v) is None or _scar(other) is None else _scar(v) - _scar(other)
        out.append(Target(f"VIRTUE - {label}, SCaR-synth P@1", diff, f">= {SCAR_MARGIN:+.2f}", None, src(v, other)))
    diff = None if _mmeb(v) is None or _mmeb(g) is None else _mmeb(v) - _mmeb(g)
    out.append(Target("VIRTUE - global, MMEB-synth overall", diff, f">= {-MMEB_SLACK:+.2f}", None, src(v, g)))
    thresholds = (SCAR_MIN, SCAR_MARGIN, SCAR_MARGIN, -MMEB_SLACK)
    # a tiny epsilon keeps "exactly at the threshold" from failing on float noise of the subtraction
    return [
        Target(t.name, t.value, t.required, None if t.value is None else t.value >= th - 1e-12, t.source)
        for t, th in zip(out, thresholds, strict=True)
    ]
