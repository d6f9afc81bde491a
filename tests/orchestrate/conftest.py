"""An isolated workspace per test: its own mlflow.db, runs/ and reports/, no MLFLOW_TRACKING_URI leaking in."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from timelimits import JOB_TIME_MIN

from virtue.config import ExperimentConfig


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch) -> Path:
    (tmp_path / "experiments").mkdir()
    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.setenv("VIRTUE_ROOT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def cfg() -> ExperimentConfig:
    return ExperimentConfig(name="micro")


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def importable(monkeypatch):
    """Jobs run `python -m submitit...` in another process: it must import the objectives module under the
    name pytest gave it (which depends on the rootdir/conftest layout)."""
    from . import objectives

    folder = os.path.dirname(os.path.abspath(objectives.__file__))
    for _ in objectives.__name__.split(".")[:-1]:
        folder = os.path.dirname(folder)
    monkeypatch.setenv("PYTHONPATH", folder + os.pathsep + os.environ.get("PYTHONPATH", ""))


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory) -> Path:
    """An empty, initialised MLflow database: creating the schema costs seconds, copying it nothing."""
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def study_file(workspace, mlflow_template):
    """Write a study YAML into the test workspace (experiment `micro`, objectives from the test module)."""
    import shutil

    import yaml

    from . import objectives

    shutil.copy(mlflow_template, workspace / "mlflow.db")

    (workspace / "experiments" / "micro.yaml").write_text("name: micro\ntracking: {experiment: sweeps-test}\n")

    def make(name: str = "depth", objective: str = "quadratic", **fields) -> Path:
        data = {
            "name": name,
            "experiment": "micro",
            "axis": "connector_depth",
            "cells": [{"label": str(d), "overrides": [f"model.connector_depth={d}"]} for d in (1, 2, 3)],
            "metric": "score",
            "extra_metrics": ["nested.hit@1"],
            "seeds": 1,
            "objective": objective if ":" in objective else f"{objectives.__name__}:{objective}",
            "slurm": {
                "kind": "slurm", "time_min": JOB_TIME_MIN, "cpus_per_task": 1, "mem_gb": 1, "log_dir": "runs/logs"
            },
            **fields,
        }
        path = workspace / "sweeps" / "studies" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return make
