"""The time a sweep announces before it starts: measured costs per evaluation, packed onto the workers."""

from __future__ import annotations

from virtue.config import load_experiment, write_resolved
from virtue.io import write_json
from virtue.orchestrate.plan import estimate, makespan
from virtue.orchestrate.study import load_study


def test_makespan_packs_the_longest_first():
    assert makespan([4, 4, 1, 1, 1], workers=2) == 6  # 4+1+1 | 4+1
    assert makespan([4, 4, 1, 1, 1], workers=1) == 11
    assert makespan([3, 3, 3], workers=8) == 3
    assert makespan([], workers=2) == 0


def _finished_cell(workspace, key: str, steps: int, timing: dict) -> None:
    cell = workspace / "runs" / "cells" / key
    write_resolved(load_experiment("micro", [f"train.steps={steps}"]), cell)
    write_json(cell / "results" / "r.json", {"value": 0.5, "metrics": {}, "timing": timing})


def test_the_estimate_counts_each_evaluation_of_a_study_with_further_evals(workspace, study_file):
    """Two cells measured at 300 steps: training 6 and 10 min (median 8; the study trains 600 steps: 16 min),
    evaluations 2 min each (one result ran 2 of them in 4 min). A study with one further evaluation runs 2 per
    trial: 2 cells to train and 3 to evaluate on 2 workers are 16+4 | 16+4, then 4+4 | 4: 28 min."""
    _finished_cell(workspace, "a", 300, {"train_s": 360, "eval_s": 240, "evaluations": 2})
    _finished_cell(workspace, "b", 300, {"train_s": 600, "eval_s": 120, "evaluations": 1})
    plain = load_study(study_file(name="plain", overrides=["train.steps=600"]))
    more = load_study(study_file(name="more", overrides=["train.steps=600"],
                                 evals=[{"name": "unprompted", "overrides": ["data.prompt=none"]}]))  # fmt: skip
    assert estimate(more, 2, 3, workers=2) == (
        "about 28 min (16.0 min to train a cell, 2.0 for each of 2 evaluation(s))"
    )
    assert estimate(plain, 2, 3, workers=2).startswith("about 22 min")  # 16+2+2 | 16+2
    assert estimate(plain, 0, 0, workers=2) == "nothing to run"
