from __future__ import annotations

import os

import pytest
from timelimits import JOB_TIME_MIN

from virtue.config.launcher import LauncherConfig
from virtue.orchestrate.launcher import LaunchError, launch, launch_all

from . import objectives


def test_inprocess_runs_here(workspace):
    assert launch(objectives.square_sum, 3.0, 4.0, launcher=LauncherConfig()) == 25.0
    assert launch(objectives.where, launcher=LauncherConfig())["pid"] == os.getpid()
    with pytest.raises(ValueError, match="boom"):
        launch(objectives.fail, "boom", launcher=LauncherConfig())


@pytest.mark.slow
def test_local_runs_in_a_subprocess_and_reports_failures(workspace, importable):
    lc = LauncherConfig(kind="local", time_min=JOB_TIME_MIN, log_dir="logs")
    assert launch(objectives.square_sum, 1.0, 2.0, launcher=lc, name="sq") == 5.0
    assert launch(objectives.where, launcher=lc, name="where")["pid"] != os.getpid()
    with pytest.raises(LaunchError, match=r"bad: job \S+ failed: .*ValueError: no good.*stderr: "):
        launch(objectives.fail, "no good", launcher=lc, name="bad")
    assert list((workspace / "logs" / "sq").rglob("*_log.out"))


def test_launch_all_inprocess_runs_one_after_another_here(workspace):
    calls = [(f"t{i}", (f"t{i}",)) for i in range(3)]
    out = launch_all(objectives.threads_and_where, calls, launcher=LauncherConfig())
    assert [o["tag"] for o in out] == ["t0", "t1", "t2"] and {o["pid"] for o in out} == {os.getpid()}


@pytest.mark.slow
def test_launch_all_local_runs_the_jobs_at_once_with_the_cores_split(workspace, importable):
    lc = LauncherConfig(kind="local", time_min=JOB_TIME_MIN, cpus_per_task=4, log_dir="logs")
    polls = []
    meet = workspace / "meet"
    meet.mkdir()
    calls = [(t, (t, str(meet), ("a", "b"))) for t in ("a", "b")]  # each waits for the other: at once, or never
    out = launch_all(objectives.threads_and_where, calls, launcher=lc, poll=lambda: polls.append(1))
    assert [o["tag"] for o in out] == ["a", "b"] and len({o["pid"] for o in out} | {os.getpid()}) == 3
    cores = len(os.sched_getaffinity(0))
    assert all(o["threads"] == max(1, min(4, cores // 2)) for o in out)  # no oversubscription
    assert polls  # the caller saw progress while waiting
    failing = [("bad", ("no good",)), ("worse", ("no good either",))]
    with pytest.raises(LaunchError, match=r"bad: job \S+ failed: .*ValueError: no good") as e:
        launch_all(objectives.fail, failing, launcher=lc)
    assert "worse: job" in str(e.value)  # every failed job is named, not only the first


@pytest.mark.slurm
def test_slurm_runs_on_the_cluster(workspace, importable):
    lc = LauncherConfig(kind="slurm", time_min=JOB_TIME_MIN, cpus_per_task=1, mem_gb=1, log_dir="logs",
                        slurm_extra={"comment": "virtue-test"})  # fmt: skip
    out = launch(objectives.where, launcher=lc, name="where")
    assert out["slurm_job"] is not None and out["pid"] != os.getpid()
    with pytest.raises(LaunchError, match="ValueError: on slurm"):
        launch(objectives.fail, "on slurm", launcher=lc, name="bad")
    both = launch_all(objectives.threads_and_where, [("a", ("a",)), ("b", ("b",))], launcher=lc)
    assert [o["tag"] for o in both] == ["a", "b"]
    assert all(o["slurm_job"] for o in both) and both[0]["slurm_job"] != both[1]["slurm_job"]  # one job each
