from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import warnings

import pytest
from mlflow.tracking import MlflowClient

from virtue.orchestrate.tracking import open_tracker

from .conftest import closed_port


@pytest.mark.slow
def test_virtue_ui_serves_the_workspace_database_on_loopback(workspace, cfg, monkeypatch):
    """The UI answers /health; a tracker logging over HTTP (as Slurm workers do) lands in the workspace
    database; when the server goes away mid-run the tracker warns once and keeps the metrics locally."""
    port = closed_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "virtue.cli.main", "ui", "--port", str(port)],
        cwd=workspace,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        start = time.monotonic()
        line = proc.stdout.readline()  # printed only once /health answered
        assert f"http://127.0.0.1:{port}" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        print(f"mlflow server healthy after {time.monotonic() - start:.1f} s")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
            assert r.status == 200
        assert (workspace / "mlflow.db").is_file()
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
        run_dir = workspace / "runs" / "http"
        tracker = open_tracker(cfg, run_dir)
        tracker.log_metrics({"loss": 1.0}, step=0)
        assert tracker.run_id
        run = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}").get_run(tracker.run_id)
        assert run.data.metrics == {"loss": 1.0} and run.data.params["model.variant"] == "virtue"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in (1, 2, 3):
            tracker.log_metrics({"loss": 1.0 / step}, step=step)
        tracker.close()
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 1
    assert [json.loads(x)["step"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2, 3]


def test_virtue_ui_refuses_a_port_in_use(workspace, run_cli):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = run_cli("ui", "--port", str(s.getsockname()[1]), cwd=workspace)
    assert r.returncode == 2 and "already in use" in r.stderr
