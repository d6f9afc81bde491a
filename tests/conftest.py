"""Shared test set-up: markers that skip what this machine cannot run, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    # Two cores, many tests: one intra-op thread keeps timings stable and results identical run to run.
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    has_slurm = os.environ.get("VIRTUE_SLURM") == "1"
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs CUDA"))
        if "slurm" in item.keywords and not has_slurm:
            item.add_marker(pytest.mark.skip(reason="needs the local Slurm cluster (scripts/slurm-cluster.sh up)"))


@pytest.fixture
def run_cli():
    """Run the real `virtue` entry point in a subprocess; returns CompletedProcess (text)."""

    def run(*args: str, cwd: str | Path = ROOT, env: dict | None = None, timeout: float = 600):
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "virtue.cli.main", *map(str, args)],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture
def cli(capsys, monkeypatch):
    """The real `virtue` entry point called in this process: what run_cli checks, without an interpreter
    start-up and torch import per call. Returns a CompletedProcess (exit code, stdout, stderr). Warnings go
    to pytest, not stderr: tests that read warnings from stderr use run_cli."""
    from virtue.cli.main import main

    def run(*args: str, env: dict | None = None, timeout: float | None = None):
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        capsys.readouterr()
        try:
            code = main(list(map(str, args)))
        except SystemExit as e:  # argparse's own errors
            code = e.code if isinstance(e.code, int) else 2
        out = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out.out, out.err)

    return run
