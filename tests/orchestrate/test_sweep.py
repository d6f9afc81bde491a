from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from virtue.config import load_experiment
from virtue.errors import UserError
from virtue.orchestrate.study import load_study
from virtue.orchestrate.sweep import run_sweep, storage_url
from virtue.orchestrate.tracking import tracking_uri
from virtue.orchestrate.worker import open_storage

from . import objectives

# Each sweep opens an MLflow store and runs several trials: seconds to tens of seconds on 2 shared cores.
pytestmark = pytest.mark.slow

RUN_PY = Path(__file__).resolve().parents[2] / "sweeps" / "run.py"


def load(spec):
    return optuna.load_study(study_name=spec.name, storage=open_storage(storage_url(spec, None)))


def expected(depth: int, seed: int) -> float:
    cfg = load_experiment("micro", [f"model.connector_depth={depth}", f"train.seed={seed}"])
    return objectives.quadratic(cfg)["score"]


def children(spec) -> tuple[object, list]:
    client = MlflowClient(tracking_uri())
    exp = client.get_experiment_by_name("sweeps-test")
    sdir = Path(os.environ["VIRTUE_ROOT"]) / "runs" / "sweeps" / spec.name
    parent = json.loads((sdir / "mlflow_run.json").read_text())
    runs = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent['run_id']}'")
    return client.get_run(parent["run_id"]), runs


def test_grid_debug_runs_every_cell_and_seed_and_reports(workspace, study_file):
    spec = load_study(study_file(seeds=2))
    res = run_sweep(spec, executor="debug")
    assert res.completed == 6 and not res.failed
    report = json.loads((workspace / "reports" / "sweeps" / "depth.json").read_text())
    assert (workspace / "reports" / "sweeps" / "depth.png").stat().st_size > 1000
    assert [r["connector_depth"] for r in report["rows"]] == ["1", "2", "3"]
    for row in report["rows"]:
        vals = [expected(int(row["connector_depth"]), s) for s in (0, 1)]
        assert row["values"] == pytest.approx(vals) and row["n"] == 2
        assert row["mean"] == pytest.approx(sum(vals) / 2) and row["std"] > 0
        assert row["nested.hit@1 mean"] == pytest.approx(row["mean"] / 2)
    assert report["best"]["connector_depth"] == "2"
    # MLflow: one parent run, one child per trial, the child's id kept on the trial.
    parent, runs = children(spec)
    assert parent.info.status == "FINISHED" and len(runs) == 6
    assert {r.info.status for r in runs} == {"FINISHED"}
    # Each cell's numbers (here mean and std: no reference cell, so no paired difference) on the parent run.
    on_parent = {k: v for k, v in parent.data.metrics.items() if k.startswith("connector_depth/")}
    assert on_parent == {
        f"connector_depth/{cell}/{key}": pytest.approx(value)
        for cell, numbers in report["cells"].items()
        for key, value in numbers.items()
    }
    assert len(on_parent) == 6
    trials = load(spec).get_trials(states=(TrialState.COMPLETE,))
    assert {t.user_attrs["mlflow_run_id"] for t in trials} == {r.info.run_id for r in runs}
    history = MlflowClient(tracking_uri()).get_metric_history(runs[0].info.run_id, "train.loss")
    assert [m.step for m in history] == [0, 1, 2]


def test_grid_is_deterministic_and_a_rerun_only_does_what_is_missing(workspace, study_file):
    spec = load_study(study_file())
    first = run_sweep(spec, executor="debug")
    rows = json.loads((workspace / "reports" / "sweeps" / "depth.json").read_text())["rows"]
    again = run_sweep(spec, executor="debug")  # nothing missing: no new trial
    assert (first.completed, again.completed) == (3, 3)
    assert len(load(spec).get_trials()) == 3
    assert json.loads((workspace / "reports" / "sweeps" / "depth.json").read_text())["rows"] == rows
    more = run_sweep(spec, executor="debug", seeds=2)  # a new seed: exactly the 3 new cells
    assert more.completed == 6 and len(load(spec).get_trials()) == 6
    _, runs = children(spec)
    assert len(runs) == 6  # the parent run was re-attached, not duplicated


def test_a_failed_cell_is_reported_and_rerun_later(workspace, study_file, monkeypatch):
    spec = load_study(study_file(objective="flaky_quadratic"))
    monkeypatch.setenv("VIRTUE_TEST_FAIL", "1")
    res = run_sweep(spec, executor="debug")
    assert res.completed == 0 and len(res.failed) == 3 and "node was not ready" in res.failed[0]
    assert {t.state for t in load(spec).get_trials()} == {TrialState.FAIL}
    monkeypatch.delenv("VIRTUE_TEST_FAIL")  # the fault is gone: the failed cells are enqueued again
    assert run_sweep(spec, executor="debug").completed == 3


def test_the_parent_run_is_closed_when_the_driver_fails(workspace, study_file, monkeypatch):
    import virtue.orchestrate.sweep as sweep

    def broken(*args, **kwargs):
        raise RuntimeError("the report could not be written")

    spec = load_study(study_file())
    monkeypatch.setattr(sweep, "write_report", broken)  # a driver bug after the trials ran
    with pytest.raises(RuntimeError, match="could not be written"):
        run_sweep(spec, executor="debug")
    parent, runs = children(spec)
    assert parent.info.status == "FAILED" and len(runs) == 3  # not left RUNNING


def test_a_study_whose_metric_changed_is_not_continued(workspace, study_file):
    spec = load_study(study_file(metric="no.such.metric"))
    assert run_sweep(spec, executor="debug").completed == 0
    fixed = load_study(study_file())
    with pytest.raises(UserError, match="changed: study"):
        run_sweep(fixed, executor="debug")
    assert run_sweep(fixed, executor="debug", restart_on_change=True).completed == 3
    assert len(load(fixed).get_trials()) == 3  # the failed trials went with the old study


def test_dead_worker_trial_is_reenqueued_and_reattaches_its_mlflow_run(workspace, study_file, tmp_path, importable):
    spec_path = study_file(objective="slow_quadratic", cells=[{"label": "2", "overrides": []}])
    marker = tmp_path / "started.json"
    env = {**os.environ, "VIRTUE_TEST_ONCE": str(marker), "VIRTUE_TEST_SLEEP": "120"}
    cmd = [sys.executable, str(RUN_PY), "--study", str(spec_path), "--executor", "debug"]
    driver = subprocess.Popen(cmd, env=env, cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert driver.poll() is None, driver.stdout.read()
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        driver.send_signal(signal.SIGKILL)  # the worker (here: the driver itself) dies mid-trial
        driver.wait()
    spec = load_study(spec_path)
    [stuck] = load(spec).get_trials()
    assert stuck.state == TrialState.RUNNING
    run_id = stuck.user_attrs["mlflow_run_id"]
    with pytest.warns(UserWarning, match="dead worker"):
        res = run_sweep(spec, executor="debug")
    assert res.requeued == [0] and res.completed == 1
    trials = load(spec).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].user_attrs["requeued_from"] == 0
    assert trials[1].user_attrs["mlflow_run_id"] == run_id
    assert trials[1].user_attrs["metrics"]["resumed_from"] == 1  # continued from the trial's checkpoint
    _, runs = children(spec)
    assert [r.info.run_id for r in runs] == [run_id] and runs[0].info.status == "FINISHED"


def test_local_executor_runs_trials_in_parallel_subprocesses(workspace, study_file, importable):
    spec = load_study(study_file(objective="quadratic_threads"))
    res = run_sweep(spec, executor="local", workers=2)
    assert res.completed == 3 and not res.failed, res.failed
    trials = load(spec).get_trials()
    pids = {t.user_attrs["local_pid"] for t in trials}
    assert os.getpid() not in pids and len(pids) == 3
    # the machine's cores are split among the workers (one thread each on 2 cores)
    assert {t.user_attrs["metrics"]["threads"] for t in trials} == {max(1, len(os.sched_getaffinity(0)) // 2)}
    assert [r["connector_depth"] for r in json.loads((workspace / "reports/sweeps/depth.json").read_text())["rows"]]
    _, runs = children(spec)
    assert len(runs) == 3 and {r.info.status for r in runs} == {"FINISHED"}


def test_tpe_study_searches_and_continues(workspace, study_file):
    search = {"train.lr": {"low": 1e-5, "high": 1e-1, "log": True}, "model.connector_depth": {"choices": [1, 2, 3]}}
    spec = load_study(study_file(name="hpo", sampler="tpe", cells=[], search=search, n_trials=8, axis="trial"))
    assert run_sweep(spec, executor="debug", workers=2).completed == 8
    study = load(spec)
    assert len(study.trials) == 8 and study.best_value == max(t.value for t in study.trials)
    report = json.loads((workspace / "reports" / "sweeps" / "hpo.json").read_text())
    assert report["best"]["value"] == study.best_value and len(report["rows"]) == 8
    more = spec.model_copy(update={"n_trials": 10})
    assert run_sweep(more, executor="debug").completed == 10


def test_a_search_prunes_poor_trials_and_records_them_as_pruned(workspace, study_file):
    search = {"train.lr": {"low": 1e-6, "high": 1.0, "log": True}, "model.connector_depth": {"choices": [1, 2, 3]}}
    pruning = {"every": 1, "startup_trials": 2, "warmup_steps": 0}
    spec = load_study(study_file(name="hpo", sampler="tpe", cells=[], search=search, n_trials=8, axis="trial",
                                 objective="reporting_quadratic", pruning=pruning))  # fmt: skip
    res = run_sweep(spec, executor="debug")
    study = load(spec)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert pruned and complete and len(pruned) + len(complete) == 8 and not res.failed
    for t in pruned:  # stopped after a report that trailed the median of the earlier trials at that step
        assert max(t.intermediate_values) < 4
    _, runs = children(spec)
    by_id = {r.info.run_id: r for r in runs}
    for t in pruned:
        run = by_id[t.user_attrs["mlflow_run_id"]]
        assert run.data.tags["optuna.state"] == "PRUNED" and int(run.data.tags["pruned_at_step"]) < 4
    for t in complete:
        assert by_id[t.user_attrs["mlflow_run_id"]].data.tags["optuna.state"] == "COMPLETE"
    report = json.loads((workspace / "reports" / "sweeps" / "hpo.json").read_text())
    assert report["pruned_trials"] == len(pruned) and report["complete"]
    assert {r["state"] for r in report["rows"]} == {"PRUNED", "COMPLETE"}


@pytest.mark.slow
def test_an_rdb_search_fails_a_heartbeat_stale_trial_and_runs_it_again(workspace, study_file, tmp_path, importable,
                                                                       monkeypatch):
    """With an RDB storage, Optuna's heartbeat marks a trial whose search worker died as stale; the next worker
    fails it and runs its queued copy (RetryHeartbeatStaleTrialCallback), resuming from the cell's checkpoint."""
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    search = {"model.connector_depth": {"choices": [1, 2, 3]}}
    path = study_file(name="hpo", sampler="tpe", cells=[], search=search, n_trials=1, axis="trial",
                      objective="slow_quadratic")  # fmt: skip
    spec = load_study(path)
    marker, log = tmp_path / "started.json", tmp_path / "attempts.jsonl"
    monkeypatch.setenv("VIRTUE_TEST_LOG", str(log))
    monkeypatch.setenv("VIRTUE_OPTUNA_HEARTBEAT_S", "1")  # grace 3 s
    monkeypatch.setenv("VIRTUE_TEST_ONCE", str(marker))
    monkeypatch.setenv("VIRTUE_TEST_SLEEP", "300")
    code = ("import sys, optuna; from virtue.orchestrate.study import load_study; from virtue.orchestrate.worker "
            "import SearchSpec, open_storage, run_search; spec = load_study(sys.argv[1]); "
            "optuna.create_study(study_name=spec.name, storage=open_storage(sys.argv[2]), direction='maximize'); "
            "run_search(SearchSpec(spec, sys.argv[2], 1, 0))")  # fmt: skip
    worker = subprocess.Popen([sys.executable, "-c", code, str(path), url], cwd=workspace)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert worker.poll() is None and time.monotonic() < deadline, "the trial did not start"
        time.sleep(0.2)
    worker.send_signal(signal.SIGKILL)  # the worker dies mid-trial: its heartbeat stops
    worker.wait()
    time.sleep(4)  # past the grace period
    from virtue.orchestrate.worker import SearchSpec, open_storage, run_search

    assert run_search(SearchSpec(spec, url, 1, 0)) == [1]
    first, retry = optuna.load_study(study_name=spec.name, storage=open_storage(url)).get_trials()
    assert first.state == TrialState.FAIL and retry.state == TrialState.COMPLETE
    assert RetryHeartbeatStaleTrialCallback.retried_trial_number(retry) == 0 and retry.params == first.params
    assert retry.user_attrs["run_dir"] == first.user_attrs["run_dir"]
    assert [json.loads(x)["start"] for x in log.read_text().splitlines()] == [0, 1]  # resumed from its checkpoint
