"""The MLflow UI/tracking server over the workspace's tracking database (`virtue ui`), and the place Slurm
workers can log to over HTTP."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from ..errors import UserError
from ..paths import workspace_root
from .tracking import SERVED_STORE_ENV, artifact_root, relocate_store, tracking_uri

_DB_SCHEMES = ("sqlite:", "postgresql", "mysql", "mssql")


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def healthy(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=timeout) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def allowed_hosts(host: str, port: int) -> str:
    """The Host headers the server answers (MLflow refuses others against DNS rebinding; its default is
    localhost and private IPs only, so a server bound to a node's name would refuse the workers that use that
    name): loopback, and the name it is bound to, or this machine's names when bound to every interface."""
    names = {"localhost", "127.0.0.1"}
    if host in ("0.0.0.0", "::"):
        names |= {socket.gethostname(), socket.getfqdn()}
    else:
        names.add(host)
    return ",".join(f"{n},{n}:{port}" for n in sorted(names))


def start_server(host: str = "127.0.0.1", port: int = 5000, *, wait_s: float = 90.0) -> tuple[subprocess.Popen, str]:
    """Start `mlflow server` (one worker, no job runner) in its own process group; return it once /health
    answers, with its URL. Raises UserError when the port is taken or the server dies or stays unhealthy."""
    root = workspace_root()
    uri = tracking_uri(None, root)
    if not uri.startswith(_DB_SCHEMES):
        raise UserError(f"MLFLOW_TRACKING_URI={uri}: already a server, open it in a browser instead")
    if not _port_free(host, port):
        raise UserError(f"--port {port}: {host}:{port} is already in use")
    if uri == f"sqlite:///{root / 'mlflow.db'}":
        relocate_store(root)
    log_path = root / "runs" / "mlflow-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    artifacts = artifact_root(root)
    artifacts.mkdir(parents=True, exist_ok=True)
    cmd = [
        *_mlflow_cmd(),
        "server",
        "--backend-store-uri", uri,
        "--artifacts-destination", str(artifacts),
        "--host", host,
        "--port", str(port),
        "--workers", "1",
        "--allowed-hosts", allowed_hosts(host, port),
    ]  # fmt: skip
    # The job runner spawns extra workers and slows start-up ~3x; the UI does not need it.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    deadline = time.monotonic() + wait_s
    while not healthy(url):
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
            raise UserError(f"mlflow server exited with {proc.returncode}: {' | '.join(tail)} (log: {log_path})")
        if time.monotonic() > deadline:
            stop_server(proc)
            raise UserError(f"mlflow server not healthy after {wait_s:.0f} s (log: {log_path})")
        time.sleep(0.2)
    return proc, url


def stop_server(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop the server's whole process group (gunicorn/uvicorn workers included)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def _mlflow_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "mlflow"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "mlflow"]


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served_for_workers(uri: str) -> Iterator[str | None]:
    """A Slurm array's workers log their trials from other nodes. With a SQLite tracking URI (the workspace's
    mlflow.db) they would write one SQLite file over the shared filesystem from several nodes, which loses
    and corrupts runs; so `mlflow server` is started here, bound to this host's name (the address the nodes
    reach it by), and MLFLOW_TRACKING_URI points at it (driver and workers) until the block ends. Another
    URI (a server, a database server) is used as it is. Yields the server's URL, or None."""
    if not uri.startswith("sqlite:"):
        yield None
        return
    host = socket.gethostname()
    try:
        proc, url = start_server(host, _free_port(host))
    except (UserError, OSError) as e:
        raise UserError(
            f"--executor slurm with {uri}: could not serve it to the array's workers on {host} ({e}); start a "
            "tracking server the nodes reach (virtue ui --host 0.0.0.0) and set MLFLOW_TRACKING_URI to it"
        ) from None
    print(f"MLflow: {uri} served at {url} for the array's workers (on {host}; stopped when the study ends)",
          file=sys.stderr, flush=True)  # fmt: skip
    before = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", SERVED_STORE_ENV)}
    os.environ.update({"MLFLOW_TRACKING_URI": url, SERVED_STORE_ENV: uri})
    try:
        yield url
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        stop_server(proc)
