"""`virtue ui --optuna STUDY`: optuna-dashboard on a real Optuna journal, bound to loopback, stopped by SIGTERM;
a storage that is not there (or holds no such study) is one line naming it, exit code 2."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest
from faults.conftest import user_error  # tests/ is on sys.path (rootdir import mode)

from virtue.report.dashboard import open_study_storage

from .conftest import closed_port

STUDY_YAML = "sampler: grid\ncells: [{label: a}, {label: b}]\nmetric: score\n"


def journal_study(path: Path, name: str = "demo", n_trials: int = 3) -> optuna.Study:
    """A study with finished trials in a journal file, through Optuna's public API only."""
    from optuna.storages.journal import JournalFileBackend

    path.parent.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(lambda t: -((t.suggest_float("lr", 0.0, 1.0) - 0.3) ** 2), n_trials=n_trials)
    return study


def get_json(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        assert r.status == 200
        return json.loads(r.read().decode())


def other_address() -> str | None:
    """An address of this machine other than loopback (UDP connect sends nothing), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            ip = s.getsockname()[0]
        except OSError:
            return None
    return None if ip.startswith("127.") else ip


@pytest.mark.slow  # over 3 s on 2 cores: runs in make test, not in a plain pytest
def test_dashboard_serves_the_study_on_loopback_and_stops_on_sigterm(workspace):
    journal = workspace / "elsewhere" / "journal.log"
    study = journal_study(journal)
    port = closed_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "virtue.cli.main", "ui", "--optuna", "demo", "--storage", str(journal),
         "--port", str(port)],
        cwd=workspace, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()  # printed once the socket is bound
        assert f"http://127.0.0.1:{port}/dashboard" in line, (line, proc.stderr.read() if proc.poll() else "")
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                listed = get_json(f"{base}/api/studies")
                break
            except (urllib.error.URLError, OSError):
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.2)
        [summary] = listed["study_summaries"]
        assert summary["study_name"] == "demo" and summary["directions"] == ["maximize"]
        detail = get_json(f"{base}/api/studies/{summary['study_id']}")
        assert [t["values"] for t in detail["trials"]] == [[t.value] for t in study.trials]
        assert [t["state"] for t in detail["trials"]] == ["Complete"] * 3
        with urllib.request.urlopen(f"{base}/dashboard", timeout=5) as r:
            assert r.status == 200 and b"<html" in r.read().lower()
        ip = other_address()
        if ip is not None:  # loopback only: another interface of this machine is refused
            with pytest.raises(OSError):
                socket.create_connection((ip, port), timeout=2).close()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
    assert code == 0, proc.stderr.read()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_default_storage_is_the_sweep_journal_of_the_study(workspace, cli):
    spec = workspace / "sweeps" / "studies" / "demo.yaml"
    spec.parent.mkdir(parents=True)
    spec.write_text(STUDY_YAML)
    journal = workspace / "runs" / "sweeps" / "demo" / "journal.log"
    user_error(cli("ui", "--optuna", "demo"), str(journal), "no such Optuna journal", "sweeps/run.py --study demo")
    assert not journal.exists()
    study = journal_study(journal, n_trials=2)
    storage = open_study_storage("demo", None)
    loaded = optuna.load_study(study_name="demo", storage=storage)
    assert [t.params for t in loaded.trials] == [t.params for t in study.trials]
    user_error(cli("ui", "--optuna", "nostudy"), "nostudy.yaml", "no such study", "demo")


def test_storage_that_is_missing_unreadable_or_without_the_study(workspace, cli):
    missing = workspace / "missing.log"
    user_error(cli("ui", "--optuna", "demo", "--storage", missing), str(missing), "no such Optuna journal")
    assert not missing.exists()
    db = workspace / "none.db"
    user_error(cli("ui", "--optuna", "demo", "--storage", f"sqlite:///{db}"), str(db), "no such Optuna SQLite")
    assert not db.exists()  # an RDB storage would have created an empty database
    journal = workspace / "journal.log"
    journal_study(journal, name="other", n_trials=1)
    user_error(cli("ui", "--optuna", "demo", "--storage", journal), str(journal), "no study named 'demo'", "other")
    broken = workspace / "broken.log"
    broken.write_text('{"op_code": 0, "worker_id": "x"\nnot json\n{}\n')
    user_error(cli("ui", "--optuna", "demo", "--storage", broken), str(broken), "cannot read the Optuna storage")


def test_port_in_use_and_storage_without_optuna(workspace, cli):
    journal = workspace / "journal.log"
    journal_study(journal, n_trials=1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        user_error(cli("ui", "--optuna", "demo", "--storage", journal, "--port", port), f"--port {port}", "in use")
    user_error(cli("ui", "--storage", journal), "--storage", "--optuna")
