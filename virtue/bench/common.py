"""Shared pieces of the benchmarks: a throw-away workspace with micro synthetic data, configs on the tiny
model with untrained backbones saved as the pipeline saves its own, and the record every comparison is
reported in."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ExperimentConfig, load_experiment

# Costs do not depend on the weights' values, so untrained backbones measure the same work as the pre-trained
# ones. They come from `virtue pretrain` with no steps: the tokenizer is then trained on the workspace's texts
# as the pipeline's is (the presets' byte tokenizer makes 2.5x the query tokens and 5x the caption tokens).
UNTRAINED = ("pretrain.sam.steps=0", "pretrain.sam.eval_scenes=1", "pretrain.vlm.steps=0", "pretrain.vlm.eval_images=2")


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


@dataclass
class Side:
    """One side of a comparison: every repeat's value and their median."""

    label: str
    unit: str
    values: list[float] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"label": self.label, "unit": self.unit, "median": median(self.values), "values": self.values}


def comparison(name: str, a: Side, b: Side, *, target: float | None, higher_is_better: bool, method: str, **extra):
    """ratio = median(a) / median(b); a is the optimised side. `met` compares the ratio with the target
    (ratio <= target when lower is better, ratio >= target when higher is better)."""
    ratio = median(a.values) / median(b.values) if median(b.values) else float("nan")
    met = None
    if target is not None:
        met = ratio >= target if higher_is_better else ratio <= target
    return {
        "name": name,
        "status": "measured",
        "optimised": a.as_dict(),
        "baseline": b.as_dict(),
        "ratio": ratio,
        "target": None if target is None else f"{'>=' if higher_is_better else '<='} {target}",
        "met": met,
        "method": method,
        **extra,
    }


def skipped(name: str, reason: str) -> dict:
    return {"name": name, "status": "skipped", "reason": reason}


@dataclass
class BenchWorkspace:
    """A folder with micro SCaR-synth data; every config points its data, runs and caches into it."""

    root: Path
    train_per_subset: int
    eval_per_subset: int

    def prepare(self) -> None:
        from ..data.synth.build import synthesize
        from ..train.pretrain import pretrain

        cfg = self.config()
        synthesize(cfg.data, self.root, progress=False)
        pretrain(self.config(*UNTRAINED), root=self.root)

    def config(self, *overrides: str) -> ExperimentConfig:
        return load_experiment(
            "tiny",
            [
                f"model.vlm.path={self.root / 'backbones' / 'qwen2vl'}",
                f"model.sam.path={self.root / 'backbones' / 'sam2'}",
                f"pretrain.output_dir={self.root / 'backbones'}",
                f"pretrain.scenes_dir={self.root / 'scar'}",
                f"data.scar_dir={self.root / 'scar'}",
                f"data.synth.scar_train_per_subset={self.train_per_subset}",
                f"data.synth.scar_eval_per_subset={self.eval_per_subset}",
                f"data.mmeb_dir={self.root / 'mmeb'}",
                "data.synth.mmeb_train_per_task=1",
                f"data.synth.mmeb_eval_per_task={self.eval_per_subset}",
                "tracking.enabled=false",
                "train.resume=never",
                "train.checkpoint_every=0",
                "train.warmup_steps=1",
                f"train.output_dir={self.root / 'runs' / '{name}'}",
                f"train.feature_cache_dir={self.root / 'cache'}",
                *overrides,
            ],
        )
