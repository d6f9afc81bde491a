from __future__ import annotations

import os

import pytest

from virtue.config.launcher import LauncherConfig
from virtue.orchestrate.launcher import LaunchError, launch

from . import objectives


def test_inprocess_runs_here(workspace):
    assert launch(objectives.square_sum, 3.0, 4.0, launcher=LauncherConfig()) == 25.0
    assert launch(objectives.where, launcher=LauncherConfig())["pid"] == os.getpid()
    with pytest.raises(ValueError, match="boom"):
        launch(objectives.fail, "boom", launcher=LauncherConfig())


@pytest.mark.slow
def test_local_runs_in_a_subprocess_and_reports_failures(workspace, importable):
    lc = LauncherConfig(kind="local", time_min=2, log_dir="logs")
    assert launch(objectives.square_sum, 1.0, 2.0, launcher=lc, name="sq") == 5.0
    assert launch(objectives.where, launcher=lc, name="where")["pid"] != os.getpid()
    with pytest.raises(LaunchError, match=r"bad: job \S+ failed: .*ValueError: no good.*stderr: "):
        launch(objectives.fail, "no good", launcher=lc, name="bad")
    assert list((workspace / "logs" / "sq").rglob("*_log.out"))


@pytest.mark.slurm
def test_slurm_runs_on_the_cluster(workspace, importable):
    lc = LauncherConfig(kind="slurm", time_min=2, cpus_per_task=1, mem_gb=1, log_dir="logs",
                        slurm_extra={"comment": "virtue-test"})  # fmt: skip
    out = launch(objectives.where, launcher=lc, name="where")
    assert out["slurm_job"] is not None and out["pid"] != os.getpid()
    with pytest.raises(LaunchError, match="ValueError: on slurm"):
        launch(objectives.fail, "on slurm", launcher=lc, name="bad")
