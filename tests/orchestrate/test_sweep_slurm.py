"""Sweeps against the real single-node Slurm cluster (scripts/slurm-cluster.sh up; VIRTUE_SLURM=1)."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest
import submitit
from optuna.trial import TrialState
from timelimits import WAIT_S

from virtue.orchestrate.study import load_study
from virtue.orchestrate.sweep import run_sweep, sweep_dir

from .test_sweep import children, load

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def sacct_states(job_ids: list[str]) -> dict[str, str]:
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(job_ids)], capture_output=True, text=True
    ).stdout
    return dict(line.split("|")[:2] for line in out.splitlines() if line)


def in_background(fn, *args, **kwargs):
    """Run the (blocking) driver in a thread; the test pokes at its jobs meanwhile."""
    box: dict = {}

    def target():
        try:
            box["result"] = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001
            box["error"] = e

    th = threading.Thread(target=target, daemon=True)
    th.start()
    return th, box


def wait_for(path, driver: threading.Thread, limit: float = WAIT_S) -> dict:
    deadline = time.monotonic() + limit
    while not path.exists():
        assert driver.is_alive(), "the driver ended before the trial started"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.2)
    time.sleep(0.2)
    return json.loads(path.read_text())


def release_requeued(job_id: str, limit: float = WAIT_S) -> None:
    """Slurm holds a requeued batch job ~2 minutes (Reason=BeginTime); make it eligible now. The job asks for
    its own requeue while still running (its restart count goes up before it stops), so a running job counts
    as requeued only once it has been seen stopped."""
    deadline = time.monotonic() + limit
    stopped = False
    while time.monotonic() < deadline:
        out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T %r"], capture_output=True, text=True).stdout
        if "BeginTime" in out:
            subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True)
            return
        if not out.strip().startswith("RUNNING"):
            stopped = True
        elif stopped and _restarts(job_id) > 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} was not requeued")


def _job_info(job_id: str) -> str:
    return subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout


def _restarts(job_id: str) -> int:
    info = _job_info(job_id)
    return int(info.split("Restarts=")[1].split()[0]) if "Restarts=" in info else 0


def test_two_trial_study_runs_as_a_slurm_array(workspace, study_file, importable):
    spec = load_study(
        study_file(cells=[{"label": str(d), "overrides": [f"model.connector_depth={d}"]} for d in (1, 2)])
    )
    start = time.monotonic()
    res = run_sweep(spec, executor="slurm", workers=2)
    print(f"2-trial Slurm study: {time.monotonic() - start:.1f} s")
    assert res.completed == 2 and not res.failed, res.failed
    trials = load(spec).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    slurm_ids = [t.user_attrs["slurm_job_id"] for t in trials]
    assert all(slurm_ids) and len(set(slurm_ids)) == 2
    array_ids = slurm_ids
    assert all("_" in j for j in array_ids)  # tasks of one array: <array>_<index>
    deadline = time.monotonic() + WAIT_S  # the result is back before the job step has fully ended
    while set(sacct_states(array_ids).values()) != {"COMPLETED"} and time.monotonic() < deadline:
        time.sleep(0.5)
    assert set(sacct_states(array_ids).values()) == {"COMPLETED"}
    parent, runs = children(spec)
    assert parent.info.status == "FINISHED" and len(runs) == 2
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert (workspace / "reports" / "sweeps" / "depth.png").is_file()


def test_the_array_logs_to_a_tracking_server_the_driver_serves_from_the_sqlite_store(workspace, study_file,
                                                                                      importable, capsys):
    import os

    spec = load_study(study_file(objective="quadratic_tracking", cells=[{"label": "2", "overrides": []}]))
    res = run_sweep(spec, executor="slurm", workers=1)
    assert res.completed == 1 and not res.failed, res.failed
    [trial] = load(spec).get_trials()
    assert trial.user_attrs["metrics"]["over_http"] == 1.0  # the worker logged through the server
    assert "served at http://" in capsys.readouterr().err
    assert "MLFLOW_TRACKING_URI" not in os.environ  # the server is gone with the study, and so is the pointer
    _, runs = children(spec)  # in the workspace's SQLite store, which the server wrote
    assert len(runs) == 1 and runs[0].info.status == "FINISHED" and runs[0].data.metrics["over_http"] == 1.0


def test_a_requeued_trial_resumes_from_its_checkpoint(workspace, study_file, importable, tmp_path, monkeypatch):
    spec = load_study(study_file(objective="slow_quadratic", cells=[{"label": "2", "overrides": []}]))
    marker, log = tmp_path / "started.json", tmp_path / "attempts.jsonl"
    monkeypatch.setenv("VIRTUE_TEST_ONCE", str(marker))
    monkeypatch.setenv("VIRTUE_TEST_LOG", str(log))
    monkeypatch.setenv("VIRTUE_TEST_SLEEP", "120")
    driver, box = in_background(run_sweep, spec, executor="slurm", workers=1)
    info = wait_for(marker, driver)
    [trial] = load(spec).get_trials()
    job = submitit.SlurmJob(folder=sweep_dir(spec) / "logs" / "%j", job_id=trial.user_attrs["slurm_job_id"])
    job._interrupt(timeout=True)  # what Slurm does near the time limit: USR2 -> checkpoint -> requeue
    release_requeued(info["slurm_job"])
    driver.join(WAIT_S)
    assert not driver.is_alive() and "error" not in box, box
    res = box["result"]
    assert res.completed == 1 and not res.failed, res.failed
    [trial] = load(spec).get_trials()
    assert trial.state == TrialState.COMPLETE and trial.user_attrs["metrics"]["resumed_from"] == 1
    attempts = [json.loads(x) for x in log.read_text().splitlines()]
    assert [a["start"] for a in attempts] == [0, 1]
    assert _restarts(info["slurm_job"]) == 1  # the same job, requeued
    _, runs = children(spec)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"  # the requeue re-attached to its run


def test_a_killed_workers_trial_is_reenqueued_on_the_next_run(workspace, study_file, importable, tmp_path, monkeypatch):
    spec = load_study(study_file(objective="slow_quadratic", cells=[{"label": "2", "overrides": []}]))
    marker = tmp_path / "started.json"
    monkeypatch.setenv("VIRTUE_TEST_ONCE", str(marker))
    monkeypatch.setenv("VIRTUE_TEST_SLEEP", "300")
    driver, box = in_background(run_sweep, spec, executor="slurm", workers=1)
    info = wait_for(marker, driver)
    subprocess.run(["scancel", "--signal=KILL", "--full", info["slurm_job"]], check=True)  # the node dies
    driver.join(WAIT_S)
    assert not driver.is_alive() and "error" not in box, box
    assert box["result"].completed == 0 and len(box["result"].failed) == 1
    [failed] = load(spec).get_trials()
    assert failed.state == TrialState.FAIL  # the driver saw its job die
    res = run_sweep(spec, executor="slurm", workers=1)  # the failed cell is enqueued again
    assert res.completed == 1 and not res.failed
    old, new = load(spec).get_trials()
    assert old.state == TrialState.FAIL and new.state == TrialState.COMPLETE
    assert new.user_attrs["metrics"]["resumed_from"] == 1  # from the checkpoint the killed job left
    _, runs = children(spec)
    status = {r.info.run_id: r.info.status for r in runs}
    assert status == {old.user_attrs["mlflow_run_id"]: "FAILED", new.user_attrs["mlflow_run_id"]: "FINISHED"}


def test_a_refused_submission_is_one_clear_error_and_leaves_nothing_running(workspace, study_file, importable):
    from virtue.errors import UserError

    spec = load_study(study_file(slurm={"kind": "slurm", "partition": "no-such-partition", "log_dir": "runs/logs"}))
    with pytest.raises(UserError, match="sbatch refused"):
        run_sweep(spec, executor="slurm", workers=2)
    assert {t.state for t in load(spec).get_trials()} == {TrialState.FAIL}


def test_a_killed_drivers_rerun_waits_for_the_live_array_and_its_summary_holds_every_cell(
    workspace, study_file, importable, tmp_path, monkeypatch
):
    import os
    import signal
    import sys

    cells = [{"label": str(d), "overrides": [f"model.connector_depth={d}"]} for d in (1, 2)]
    path = study_file(objective="slow_quadratic", cells=cells)
    spec = load_study(path)
    marker, log = tmp_path / "started.json", tmp_path / "attempts.jsonl"
    monkeypatch.setenv("VIRTUE_TEST_ONCE", str(marker))
    monkeypatch.setenv("VIRTUE_TEST_LOG", str(log))
    monkeypatch.setenv("VIRTUE_TEST_SLEEP", "30")
    code = ("import sys; from virtue.orchestrate.study import load_study; from virtue.orchestrate.sweep import "
            "run_sweep; run_sweep(load_study(sys.argv[1]), executor='slurm', workers=2)")  # fmt: skip
    driver = subprocess.Popen([sys.executable, "-c", code, str(path)], start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + WAIT_S
    while not marker.exists():
        assert driver.poll() is None and time.monotonic() < deadline, "no trial reached its first step"
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver dies; its array runs on in Slurm
    driver.wait(WAIT_S)
    job = json.loads(marker.read_text())["slurm_job"]
    assert subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout.strip()

    res = run_sweep(spec, executor="slurm", workers=2)  # waits for the live job, then reads its result
    assert res.complete and res.completed == 2 and not res.failed and not res.requeued, res
    trials = load(spec).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2  # the killed driver's two trials, nothing rerun
    assert sorted(json.loads(x)["start"] for x in log.read_text().splitlines()) == [0, 0]  # one attempt each
    summary = json.loads((workspace / "reports" / "sweeps" / f"{spec.name}.json").read_text())
    assert summary["complete"] and [r["n"] for r in summary["rows"]] == [1, 1]
