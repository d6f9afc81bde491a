"""The real objective (train + evaluate the tiny model) through the sweep machinery, and its signal hand-off."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import optuna
import pytest

from virtue.config import load_experiment
from virtue.orchestrate.jobs import JobInterrupted, hand_back_signal
from virtue.orchestrate.study import load_study
from virtue.orchestrate.sweep import run_sweep
from virtue.orchestrate.worker import open_storage

ROOT_TINY = Path(__file__).resolve().parents[2] / "experiments" / "tiny.yaml"


def test_hand_back_signal_gives_the_signal_to_the_previous_handler():
    got = []
    previous = signal.signal(signal.SIGUSR2, lambda s, f: got.append(s))
    try:
        with pytest.raises(JobInterrupted):
            hand_back_signal(signal.SIGUSR2)
        assert got == [signal.SIGUSR2]
        signal.signal(signal.SIGUSR2, signal.SIG_DFL)  # nobody to hand it to (in-process): do not die
        with pytest.raises(JobInterrupted):
            hand_back_signal(signal.SIGUSR2)
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert not issubclass(JobInterrupted, Exception)  # the worker must not mark the trial FAILED


MICRO = [
        "model.vlm={preset: qwen2vl-tiny}",
        "model.sam={preset: sam2-tiny}",
        "data.synth.scar_train_per_subset=8",
        "data.synth.scar_eval_per_subset=4",
        "data.synth.mmeb_train_per_task=4",
        "data.synth.mmeb_eval_per_task=4",
        "train.steps=2",
        "train.batch_size=4",
        "train.warmup_steps=1",
        "train.hard_negatives=1",
        "train.checkpoint_every=1",
        "tracking.experiment=sweeps-test",
]
DEPTH = {d: {"label": str(d), "overrides": [f"model.connector_depth={d}"]} for d in (1, 2)}


@pytest.fixture
def tiny_workspace(workspace):
    from virtue.data.synth.build import synthesize

    shutil.copy(ROOT_TINY, workspace / "experiments" / "tiny.yaml")
    synthesize(load_experiment("tiny", MICRO).data, workspace, progress=False)
    return workspace


def real_study(study_file, name, cells, **fields):
    return load_study(study_file(name=name, experiment="tiny", overrides=MICRO, cells=cells,
                                 objective="virtue.orchestrate.trial:run_trial", metric="scar.overall.hit@1",
                                 extra_metrics=["mmeb.overall"], **fields))  # fmt: skip


def load(study: str):
    journal = Path(os.environ["VIRTUE_ROOT"]) / "runs" / "sweeps" / study / "journal.log"
    return optuna.load_study(study_name=study, storage=open_storage(f"journal:{journal}"))


def trained_cells(workspace) -> dict[str, int]:
    """Each cell folder under runs/cells and how many training steps were logged into it."""
    cells = workspace / "runs" / "cells"
    steps = {p.name: [json.loads(x) for x in (p / "metrics.jsonl").read_text().splitlines()] for p in cells.iterdir()
             if p.is_dir()}  # fmt: skip
    return {name: sum("loss" in r for r in rows) for name, rows in steps.items()}


@pytest.mark.slow
def test_run_trial_trains_and_evaluates_one_cell(tiny_workspace, study_file):
    res = run_sweep(real_study(study_file, "real", [DEPTH[2]]), executor="debug")
    assert res.completed == 1 and not res.failed, res.failed
    [cell] = (tiny_workspace / "runs" / "cells").glob("*/trainable.safetensors")
    metrics = json.loads((cell.parent / "eval" / "metrics.json").read_text())
    report = json.loads((tiny_workspace / "reports" / "sweeps" / "real.json").read_text())
    assert report["rows"][0]["mean"] == pytest.approx(metrics["scar"]["overall"]["hit@1"])
    assert report["rows"][0]["mmeb.overall mean"] == pytest.approx(metrics["mmeb"]["overall"])


@pytest.mark.slow
def test_two_studies_with_an_identical_cell_train_it_once(tiny_workspace, study_file):
    first = run_sweep(real_study(study_file, "first", [DEPTH[2]]), executor="debug")
    assert first.completed == 1 and first.reused == 0
    before = trained_cells(tiny_workspace)
    assert list(before.values()) == [2]  # one cell, 2 steps
    second = run_sweep(real_study(study_file, "second", [DEPTH[1], DEPTH[2]], reference="2"), executor="debug")
    assert second.completed == 2 and second.reused == 1 and not second.failed, second.failed
    after = trained_cells(tiny_workspace)
    assert len(after) == 2 and all(after[k] == v for k, v in before.items())  # the shared cell was not retrained
    report = json.loads((tiny_workspace / "reports" / "sweeps" / "second.json").read_text())
    one, two = report["rows"]
    assert two["reference"] and two["paired"]["scar.overall.hit@1"]["delta"] == 0.0
    earlier = json.loads((tiny_workspace / "reports" / "sweeps" / "first.json").read_text())
    assert two["mean"] == pytest.approx(earlier["rows"][0]["mean"])
    p = one["paired"]["scar.overall.hit@1"]
    assert p["low"] <= p["delta"] <= p["high"] and p["delta"] == pytest.approx(one["mean"] - two["mean"])
    assert report["queries"]["scar.overall.hit@1"] == 20  # 4 per subset, paired query by query


@pytest.mark.slow
def test_a_main_path_run_of_the_same_config_is_a_cell_and_is_not_trained_again(tiny_workspace, study_file):
    from virtue.train.loop import train

    main = load_experiment("tiny", [*MICRO, "name=tiny-virtue", "train.output_dir=runs/train/{name}"])
    run = train(main)  # what the main path's train stage leaves in runs/train
    res = run_sweep(real_study(study_file, "adopts", [DEPTH[2]]), executor="debug")
    assert res.completed == 1 and not res.failed, res.failed
    [trial] = load(res.study).get_trials()
    assert trial.user_attrs["trained_by"] == "runs/train/tiny-virtue"
    [cell] = trained_cells(tiny_workspace)
    cell_dir = tiny_workspace / "runs" / "cells" / cell
    assert (cell_dir / "trainable.safetensors").read_bytes() == (run / "trainable.safetensors").read_bytes()
    assert not (cell_dir / "checkpoints").exists()  # evaluated, not trained
