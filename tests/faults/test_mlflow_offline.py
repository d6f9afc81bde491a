"""MLflow unreachable (a loopback port nobody listens on): training and sweeps still finish, say so once,
and keep every metric in the run folders."""

from __future__ import annotations

import json
import socket
import warnings
from pathlib import Path

import pytest
import yaml

from . import objectives
from .conftest import PRESETS


def closed_port_uri() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.slow
def test_training_finishes_offline_warns_once_keeps_metrics(micro_data, tmp_path, run_cli):
    run = tmp_path / "run"
    r = run_cli(
        "train",
        "tiny",
        *PRESETS,
        f"data.scar_dir={micro_data / 'scar'}",
        "train.steps=2",
        "train.batch_size=2",
        "train.warmup_steps=1",
        "train.hard_negatives=1",
        "train.checkpoint_every=1",
        f"train.output_dir={run}",
        f"train.feature_cache_dir={tmp_path / 'cache'}",
        "tracking.enabled=true",
        env={"MLFLOW_TRACKING_URI": closed_port_uri(), "OMP_NUM_THREADS": "1"},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    warned = [line for line in r.stderr.splitlines() if "unreachable" in line]
    assert len(warned) == 1, r.stderr[-3000:]
    assert (run / "trainable.safetensors").is_file()
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in rows if "loss" in x] == [1, 2]


@pytest.fixture
def sweep_workspace(tmp_path, monkeypatch) -> Path:
    (tmp_path / "experiments").mkdir()
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "experiments" / "micro.yaml").write_text("name: micro\n")
    monkeypatch.setenv("VIRTUE_ROOT", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", closed_port_uri())
    monkeypatch.chdir(tmp_path)
    study = {
        "name": "offline",
        "experiment": "micro",
        "axis": "connector_depth",
        "cells": [{"label": str(d), "overrides": [f"model.connector_depth={d}"]} for d in (1, 2, 3)],
        "metric": "score",
        "objective": f"{objectives.__name__}:bowl",
    }
    path = tmp_path / "sweeps" / "studies" / "offline.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(study))
    return tmp_path


def _sweep_offline(workspace: Path) -> list[str]:
    from virtue.orchestrate.study import load_study
    from virtue.orchestrate.sweep import run_sweep

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = run_sweep(load_study("offline"), executor="debug")
    assert res.completed == 3 and not res.failed, res.failed
    report = json.loads((workspace / "reports" / "sweeps" / "offline.json").read_text())
    assert [r["connector_depth"] for r in report["rows"]] == ["1", "2", "3"]
    # Every trial's curve is in its own run folder (its cell's, runs/cells/<digest>).
    curves = sorted((workspace / "runs" / "cells").rglob("metrics.jsonl"))
    trial_curves = [c for c in curves if any("train.loss" in line for line in c.read_text().splitlines())]
    assert len(trial_curves) == 3
    for c in trial_curves:
        assert [json.loads(x)["step"] for x in c.read_text().splitlines() if "train.loss" in x] == [0, 1, 2]
    return [str(w.message) for w in caught if "unreachable" in str(w.message)]


def test_sweep_finishes_offline_and_keeps_metrics(sweep_workspace):
    assert _sweep_offline(sweep_workspace)  # said so


def test_sweep_offline_warns_once(sweep_workspace):
    said = _sweep_offline(sweep_workspace)
    assert len(said) == 1, said  # failed once in a full run (session 11): the messages say which way
