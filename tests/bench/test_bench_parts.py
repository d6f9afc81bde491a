"""The benchmark's own logic, on inputs with known answers (no timing is asserted: the machine is shared)."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
import torch

from virtue.bench.common import Side, comparison, median
from virtue.bench.eval_speed import score_without_dedup
from virtue.bench.pipeline import noop_repro, stage_minutes
from virtue.bench.run import format_table
from virtue.data.types import EvalQuery
from virtue.data.types import Side as DataSide
from virtue.eval.encode import score_queries


def test_comparison_ratio_and_target():
    a, b = Side("opt", "MiB", [10.0, 30.0, 20.0]), Side("base", "MiB", [40.0, 50.0, 45.0])
    r = comparison("m", a, b, target=0.5, higher_is_better=False, method="x")
    assert r["ratio"] == pytest.approx(20.0 / 45.0) and r["met"] is True and r["target"] == "<= 0.5"
    r = comparison("t", b, a, target=2.5, higher_is_better=True, method="x")
    assert r["ratio"] == pytest.approx(45.0 / 20.0) and r["met"] is False and r["target"] == ">= 2.5"
    assert comparison("n", a, b, target=None, higher_is_better=True, method="x")["met"] is None
    assert r["optimised"]["values"] == [40.0, 50.0, 45.0] and median([3.0, 1.0, 2.0]) == 2.0


class WordEncoder:
    """Bag of words over a fixed vocabulary, L2-normalised; remembers every side it was asked to encode."""

    def __init__(self, words: list[str]):
        self.axis = {w: i for i, w in enumerate(words)}
        self.encoded: list[DataSide] = []

    def __call__(self, sides: list[DataSide]) -> torch.Tensor:
        self.encoded += sides
        out = torch.full((len(sides), len(self.axis) + 1), 0.0)
        out[:, -1] = 1e-3
        for row, side in enumerate(sides):
            for w in side.text.split():
                out[row, self.axis[w]] += 1.0
        return torch.nn.functional.normalize(out, dim=-1)


def test_baseline_without_dedup_scores_like_the_protocol():
    """The no-deduplication baseline encodes every side (duplicates too) and gives the protocol's scores."""
    words = ["red", "blue", "green", "circle", "square", "star", "left", "right"]
    cands = tuple(DataSide(t) for t in ("red circle", "blue circle", "green star"))
    queries = [EvalQuery(DataSide("red circle left"), cands, "t", "q0"),
               EvalQuery(DataSide("blue circle"), cands[::-1], "t", "q1")]  # fmt: skip
    enc = WordEncoder(words)
    base = score_without_dedup(queries, enc, batch_size=2)
    assert len(enc.encoded) == 8  # 2 queries + 2 x 3 candidates, the 3 shared ones twice
    enc2 = WordEncoder(words)
    ref = score_queries(queries, enc2, batch_size=2)
    assert len(enc2.encoded) == 4  # each distinct side once (query 1 is also a candidate)
    for x, y in zip(base, ref, strict=True):
        assert np.allclose(x, y.scores, atol=1e-6)


def test_dvc_benchmarks_skip_with_a_reason(tmp_path):
    r = noop_repro(tmp_path, 1)
    assert r["status"] == "skipped" and "no dvc.yaml" in r["reason"]
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    r = noop_repro(tmp_path, 1)
    assert r["status"] == "skipped" and "no dvc.lock" in r["reason"]
    assert stage_minutes(tmp_path)["status"] == "skipped"


def test_stage_minutes_from_output_times(tmp_path):
    lock = {"schema": "2.0", "stages": {s: {"cmd": s, "outs": [{"path": f"out/{s}"}]} for s in ("a", "b", "c")}}
    (tmp_path / "dvc.lock").write_text(json.dumps(lock))  # JSON is YAML
    now = time.time()
    for i, s in enumerate(("a", "b", "c")):
        p = tmp_path / "out" / s
        p.mkdir(parents=True)
        (p / "f").write_text(s)
        os.utime(p / "f", (now + 60 * i * i, now + 60 * i * i))  # ends at 0, 1, 4 minutes
    r = stage_minutes(tmp_path)
    assert r["status"] == "estimated" and r["minutes"] == {"a": None, "b": 1.0, "c": 3.0}


def test_table_lists_every_result():
    report = {
        "mode": "quick",
        "seconds": 1.0,
        "results": {
            "m": comparison(
                "m", Side("a", "MiB", [1.0]), Side("b", "MiB", [2.0]), target=1.3, higher_is_better=False, method=""
            ),
            "dvc_repro_noop": {"name": "dvc_repro_noop", "status": "skipped", "reason": "no dvc.lock"},
        },
    }
    text = format_table(report)
    assert "0.50x" in text and "<= 1.3" in text and "yes" in text and "skipped: no dvc.lock" in text


def test_step_peak_counts_batch_dependent_memory():
    """The profiler tally sees a larger batch's tensors as a larger peak (and returns to ~0 after)."""
    from torch.profiler import ProfilerActivity, profile

    def peak(n: int) -> int:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            x = torch.ones(n, 1024)
            y = (x * 2).sum()
            del x, y
        ev = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
        held = top = 0
        for _, b in ev:
            held += b
            top = max(top, held)
        return top

    small, big = peak(64), peak(640)
    assert small >= 64 * 1024 * 4 and big >= 640 * 1024 * 4 and big > 5 * small


@pytest.mark.slow  # 13 s: the micro benchmark and a zero-step `virtue pretrain`
def test_bench_workspace_tokenizes_like_the_pipeline(tmp_path):
    """The benchmarks' untrained backbones carry a tokenizer trained on the workspace's texts, as `virtue pretrain`
    makes the pipeline's: the costs are of the pipeline's token counts, not of the presets' byte tokenizer."""
    from virtue.bench.common import BenchWorkspace
    from virtue.data.corpus import corpus_texts
    from virtue.models.backbones import load_tokenizer

    ws = BenchWorkspace(tmp_path, 8, 2)
    ws.prepare()
    tokenizer = load_tokenizer(ws.config().model.vlm, root=tmp_path)
    texts = list(corpus_texts(tmp_path / "scar"))[:50]
    tokens = sum(len(tokenizer(t, add_special_tokens=False).input_ids) for t in texts)
    assert tokens < 0.5 * sum(len(t.encode()) for t in texts)  # a byte tokenizer: one token per byte
