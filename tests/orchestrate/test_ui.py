from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from .conftest import closed_port


@pytest.mark.slow
def test_virtue_ui_serves_the_workspace_database_on_loopback(workspace):
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
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)


def test_virtue_ui_refuses_a_port_in_use(workspace, run_cli):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = run_cli("ui", "--port", str(s.getsockname()[1]), cwd=workspace)
    assert r.returncode == 2 and "already in use" in r.stderr
