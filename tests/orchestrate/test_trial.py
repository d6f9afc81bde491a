"""The real objective (train + evaluate the tiny model) through the sweep machinery, and its signal hand-off."""

from __future__ import annotations

import json
import shutil
import signal

import pytest

from virtue.config import load_experiment
from virtue.orchestrate.study import load_study
from virtue.orchestrate.sweep import run_sweep
from virtue.orchestrate.trial import TrialInterrupted, hand_back_signal

ROOT_TINY = __import__("pathlib").Path(__file__).resolve().parents[2] / "experiments" / "tiny.yaml"


def test_hand_back_signal_gives_the_signal_to_the_previous_handler():
    got = []
    previous = signal.signal(signal.SIGUSR2, lambda s, f: got.append(s))
    try:
        with pytest.raises(TrialInterrupted):
            hand_back_signal(signal.SIGUSR2)
        assert got == [signal.SIGUSR2]
        signal.signal(signal.SIGUSR2, signal.SIG_DFL)  # nobody to hand it to (in-process): do not die
        with pytest.raises(TrialInterrupted):
            hand_back_signal(signal.SIGUSR2)
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert not issubclass(TrialInterrupted, Exception)  # the worker must not mark the trial FAILED


@pytest.mark.slow
def test_run_trial_trains_and_evaluates_one_cell(workspace, study_file):
    from virtue.data.synth.build import synthesize

    shutil.copy(ROOT_TINY, workspace / "experiments" / "tiny.yaml")
    micro = [
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
    synthesize(load_experiment("tiny", micro).data, workspace, progress=False)
    path = study_file(
        name="real",
        experiment="tiny",
        overrides=micro,
        cells=[{"label": "2", "overrides": ["model.connector_depth=2"]}],
        objective="virtue.orchestrate.trial:run_trial",
        metric="scar.overall.hit@1",
        extra_metrics=["mmeb.overall"],
    )
    res = run_sweep(load_study(path), executor="debug")
    assert res.completed == 1 and not res.failed, res.failed
    trial_dir = workspace / "runs" / "sweeps" / "real" / "trials" / "2-s0"
    assert (trial_dir / "trainable.safetensors").is_file()
    metrics = json.loads((trial_dir / "eval" / "metrics.json").read_text())
    report = json.loads((workspace / "reports" / "sweeps" / "real.json").read_text())
    assert report["rows"][0]["mean"] == pytest.approx(metrics["scar"]["overall"]["hit@1"])
    assert report["rows"][0]["mmeb.overall mean"] == pytest.approx(metrics["mmeb"]["overall"])
