"""A sweep worker process killed mid-trial (SIGKILL, local executor; the driver survives): the sweep reports
that cell as failed, the next run re-enqueues it, and the study ends with every cell complete exactly once.

The case where the driver itself dies mid-trial (debug executor) is tests/orchestrate/test_sweep.py::
test_dead_worker_trial_is_reenqueued_and_reattaches_its_mlflow_run."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import warnings
from pathlib import Path

import pytest
import yaml
from timelimits import JOB_TIME_MIN, WAIT_S

from . import objectives


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    (tmp_path / "experiments").mkdir()
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "experiments" / "micro.yaml").write_text("name: micro\n")
    monkeypatch.setenv("VIRTUE_ROOT", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    # The worker subprocess imports the objective by the module name pytest gave it.
    folder = Path(objectives.__file__).resolve().parent
    for _ in objectives.__name__.split(".")[:-1]:
        folder = folder.parent
    monkeypatch.setenv("PYTHONPATH", f"{folder}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("VIRTUE_TEST_LOG", str(tmp_path / "attempts.jsonl"))
    monkeypatch.setenv("VIRTUE_TEST_ONCE", str(tmp_path / "victim.pid"))
    monkeypatch.setenv("VIRTUE_TEST_VICTIM", "2")
    study = {
        "name": "killed",
        "experiment": "micro",
        "axis": "connector_depth",
        "cells": [{"label": str(d), "overrides": [f"model.connector_depth={d}"]} for d in (1, 2, 3)],
        "metric": "score",
        "objective": f"{objectives.__name__}:killable_bowl",
        "slurm": {"kind": "local", "time_min": JOB_TIME_MIN, "cpus_per_task": 1, "mem_gb": 1, "log_dir": "runs/logs"},
    }
    path = tmp_path / "sweeps" / "studies" / "killed.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(study))
    return tmp_path


@pytest.mark.slow
def test_killed_worker_cell_is_rerun_once_and_nothing_is_lost(workspace):
    import optuna
    from optuna.trial import TrialState

    from virtue.orchestrate.study import load_study
    from virtue.orchestrate.sweep import run_sweep, storage_url
    from virtue.orchestrate.worker import open_storage

    spec = load_study("killed")
    marker = workspace / "victim.pid"
    killed: list[int] = []

    def killer() -> None:
        deadline = time.monotonic() + WAIT_S
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if marker.exists():
            time.sleep(0.2)  # the pid is written before the sleep starts
            pid = int(marker.read_text())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    first = run_sweep(spec, executor="local", workers=1)
    thread.join(timeout=WAIT_S)
    assert killed, "the victim trial never started"
    assert first.completed == 2 and len(first.failed) == 1 and first.failed[0].startswith("2-"), first.failed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the re-enqueue warning is asserted through res.requeued
        again = run_sweep(spec, executor="local", workers=1)
    assert again.completed == 3 and not again.failed, again.failed

    study = optuna.load_study(study_name=spec.name, storage=open_storage(storage_url(spec, None)))
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert sorted(t.user_attrs["cell_key"] for t in complete) == ["1-s0", "2-s0", "3-s0"]  # none lost, none twice
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in study.get_trials())
    attempts = [json.loads(x)["depth"] for x in (workspace / "attempts.jsonl").read_text().splitlines()]
    assert sorted(attempts) == [1, 2, 2, 3]  # only the killed cell ran again
    report = json.loads((workspace / "reports" / "sweeps" / "killed.json").read_text())
    assert [(r["connector_depth"], r["n"]) for r in report["rows"]] == [("1", 1), ("2", 1), ("3", 1)]
