from __future__ import annotations

import json
import os
import shutil
import time
import warnings

import pytest
from mlflow.tracking import MlflowClient

from virtue.orchestrate.tracking import open_tracker, tracking_uri
from virtue.tracker import LocalTracker, tracked_run

from .conftest import closed_port


@pytest.mark.slow  # creates the MLflow schema itself (the other tests copy an initialised database)
def test_sqlite_default_records_params_metrics_tags_artifacts(workspace, cfg):
    run_dir = workspace / "runs" / "micro"
    (run_dir / "note.txt").parent.mkdir(parents=True)
    (run_dir / "note.txt").write_text("hello")
    with tracked_run(open_tracker(cfg, run_dir, tags={"data_hash": "abc123"})) as tr:
        for step in range(3):
            tr.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        tr.log_artifact(run_dir / "note.txt")
        run_id = tr.run_id
    assert tracking_uri() == f"sqlite:///{workspace / 'mlflow.db'}"
    assert (workspace / "mlflow.db").is_file() and not (workspace / "mlruns").exists()
    client = MlflowClient(tracking_uri())
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["train.lr"] == str(cfg.train.lr) and run.data.params["model.variant"] == "virtue"
    assert run.data.tags["data_hash"] == "abc123"
    assert [m.value for m in client.get_metric_history(run_id, "loss")] == pytest.approx([1.0, 0.5, 1 / 3])
    assert [a.path for a in client.list_artifacts(run_id)] == ["note.txt"]
    assert list((workspace / "mlartifacts").rglob("note.txt"))
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [0, 1, 2]


def test_resume_reattaches_to_the_same_run(workspace, cfg, mlflow_template):
    shutil.copy(mlflow_template, workspace / "mlflow.db")
    run_dir = workspace / "runs" / "micro"
    first = open_tracker(cfg, run_dir)
    first.log_metrics({"loss": 2.0}, step=0)
    first.close("KILLED")  # e.g. preempted
    again = open_tracker(cfg, run_dir)  # same config, same folder: resume
    assert again.run_id == first.run_id
    client = MlflowClient(tracking_uri())
    assert client.get_run(again.run_id).info.status == "RUNNING"
    again.log_metrics({"loss": 1.0}, step=1)
    again.close()
    exp = client.get_experiment_by_name(cfg.tracking.experiment)
    runs = client.search_runs([exp.experiment_id])
    assert [r.info.run_id for r in runs] == [first.run_id]
    assert [m.step for m in client.get_metric_history(first.run_id, "loss")] == [0, 1]
    # A fresh folder gets a fresh run, and a child run names its parent.
    child = open_tracker(cfg, workspace / "runs" / "other", parent_run_id=first.run_id)
    assert child.run_id != first.run_id
    assert client.get_run(child.run_id).data.tags["mlflow.parentRunId"] == first.run_id
    child.close()
    # A study's run in the same folder (a shared sweep cell: attach_stored False) is a run of its own and leaves
    # the folder's record naming the training's run.
    study = open_tracker(cfg, run_dir, run_name="study/cell-s0", attach_stored=False)
    assert study.run_id != first.run_id
    study.close()
    assert json.loads((run_dir / "mlflow_run.json").read_text())["run_id"] == first.run_id


def test_env_uri_overrides_default(workspace, cfg, monkeypatch, tmp_path_factory, mlflow_template):
    other = tmp_path_factory.mktemp("elsewhere") / "t.db"
    shutil.copy(mlflow_template, other)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{other}")
    with tracked_run(open_tracker(cfg, workspace / "runs" / "x")) as tr:
        tr.log_metrics({"m": 1.0}, step=0)
    assert not (workspace / "mlflow.db").exists()
    assert MlflowClient(f"sqlite:///{other}").get_run(tr.run_id).data.metrics == {"m": 1.0}


def test_unreachable_server_warns_once_and_keeps_metrics_locally(workspace, cfg, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{closed_port()}")
    run_dir = workspace / "runs" / "micro"
    start = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tr = open_tracker(cfg, run_dir)
        for step in range(5):
            tr.log_metrics({"loss": float(step)}, step=step)
        tr.set_tags({"a": 1})
        tr.log_artifact(__file__)
        tr.close()
    assert time.monotonic() - start < 10
    mine = [w for w in caught if issubclass(w.category, RuntimeWarning) and "unreachable" in str(w.message)]
    assert len(mine) == 1, [str(w.message) for w in caught]
    assert tr.run_id is None
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["loss"] for x in lines] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_disabled_tracking_gives_a_local_tracker(workspace, cfg):
    cfg.tracking.enabled = False
    tr = open_tracker(cfg, workspace / "runs" / "off")
    assert isinstance(tr, LocalTracker) and tr.run_id is None
    tr.log_metrics({"loss": 1.0}, step=0)
    tr.close()
    assert not (workspace / "mlflow.db").exists()
    assert (workspace / "runs" / "off" / "metrics.jsonl").is_file()


def test_metric_names_mlflow_refuses_are_mapped_not_fatal(workspace, cfg, mlflow_template):
    shutil.copy(mlflow_template, workspace / "mlflow.db")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # going offline would warn
        with tracked_run(open_tracker(cfg, workspace / "runs" / "m")) as tr:
            tr.log_metrics({"scar.overall.hit@1": 0.5, "odd name!": 1.0}, step=0)
    run = MlflowClient(tracking_uri()).get_run(tr.run_id)
    assert run.data.metrics == {"scar.overall.hit_at_1": 0.5, "odd name_": 1.0}
    assert "hit@1" in (workspace / "runs" / "m" / "metrics.jsonl").read_text()  # the local record keeps the key


def test_git_sha_of_the_source_checkout():
    from pathlib import Path

    from virtue.orchestrate.tracking import git_sha

    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    sha = git_sha(root)
    assert sha is not None and len(sha) == 40 and int(sha, 16) >= 0


def test_a_copied_workspace_logs_into_its_own_artifacts(workspace, cfg, mlflow_template, monkeypatch):
    """mlflow.db keeps absolute artifact locations: a copy of the workspace used to log into the original's
    mlartifacts/. Opening a tracker in the copy points its store at the copy (and says so)."""
    shutil.copy(mlflow_template, workspace / "mlflow.db")
    first = open_tracker(cfg, workspace / "runs" / "a")
    (workspace / "note.txt").write_text("one")
    first.log_artifact(workspace / "note.txt")
    first.close()
    copy = workspace.parent / f"{workspace.name}-copy"
    shutil.copytree(workspace, copy)
    monkeypatch.setenv("VIRTUE_ROOT", str(copy))
    monkeypatch.chdir(copy)
    with pytest.warns(UserWarning, match="artifact locations pointed into"):
        second = open_tracker(cfg, copy / "runs" / "b")
    (copy / "note.txt").write_text("two")
    second.log_artifact(copy / "note.txt")
    second.close()
    client = MlflowClient(f"sqlite:///{copy / 'mlflow.db'}")
    assert client.get_run(second.run_id).info.artifact_uri.startswith(f"file://{copy}/mlartifacts/")
    assert client.get_run(first.run_id).info.artifact_uri.startswith(f"file://{copy}/mlartifacts/")  # moved too
    assert [p.read_text() for p in (copy / "mlartifacts").rglob("note.txt")].count("two") == 1
    assert not [p for p in (workspace / "mlartifacts").rglob("note.txt") if p.read_text() == "two"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # relocated once: the next tracker has nothing to say
        open_tracker(cfg, copy / "runs" / "c").close()


def test_importing_the_tracking_module_leaves_the_environment_alone(tmp_path):
    import subprocess
    import sys

    code = (
        "import os; before = dict(os.environ); import virtue.orchestrate.tracking as t; "
        "assert dict(os.environ) == before, set(os.environ) ^ set(before); "
        "t.quick_http_failures(); assert os.environ['MLFLOW_HTTP_REQUEST_TIMEOUT'] == '30'"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP_REQUEST")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path)


def test_system_metrics_are_logged_on_the_run_while_it_works(workspace, cfg, mlflow_template):
    from virtue.orchestrate.tracking import system_metrics

    shutil.copy(mlflow_template, workspace / "mlflow.db")
    with tracked_run(open_tracker(cfg, workspace / "runs" / "micro")) as tr, system_metrics(tr, interval_s=0.2):
        time.sleep(1.5)  # a run at work: several samples
        run_id = tr.run_id
    client = MlflowClient(tracking_uri())
    history = client.get_metric_history(run_id, "system/cpu_utilization_percentage")
    assert len(history) >= 2 and all(0 <= m.value <= 100 * os.cpu_count() for m in history)
    assert "system/system_memory_usage_megabytes" in client.get_run(run_id).data.metrics
    with system_metrics(LocalTracker(workspace / "runs" / "offline")):  # no MLflow run: nothing, no error
        pass
