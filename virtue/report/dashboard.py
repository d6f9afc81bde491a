"""optuna-dashboard on a sweep study's Optuna storage (`virtue ui --optuna STUDY`): the journal file the sweep
driver keeps under runs/sweeps/<study>/ (virtue/orchestrate/sweep.py says where), or the storage given with
--storage (an RDB URL or a journal file). Served by the standard library's WSGI server in this process."""

from __future__ import annotations

import errno
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from ..errors import UserError

DEFAULT_PORT = 8080  # optuna-dashboard's own default; the MLflow UI keeps 5000


def storage_location(study: str, storage: str | None) -> str:
    """The Optuna storage URL of `study`: --storage as given (a path becomes `journal:<path>`), else the sweep
    driver's journal of sweeps/studies/<study>.yaml."""
    from ..orchestrate.study import load_study
    from ..orchestrate.sweep import storage_url

    spec = load_study(study) if storage is None else None
    return storage_url(spec, storage)  # the spec is read only for the default journal


def open_study_storage(study: str, storage: str | None):
    """The storage holding `study`, opened; a missing file, an unreadable storage or a storage without that
    study is a UserError (the dashboard would otherwise start on an empty, newly created storage)."""
    from ..orchestrate.worker import open_storage

    url = storage_location(study, storage)
    for prefix, what in (("journal:", "Optuna journal"), ("sqlite:///", "Optuna SQLite database")):
        if url.startswith(prefix) and not Path(url.removeprefix(prefix)).is_file():
            hint = f" (run the study first: python sweeps/run.py --study {study})" if storage is None else ""
            raise UserError(f"{url.removeprefix(prefix)}: no such {what}{hint}")
    import sqlalchemy.exc

    try:
        opened = open_storage(url)
        names = [s.study_name for s in opened.get_all_studies()]
    except (ValueError, KeyError, TypeError, ImportError, sqlalchemy.exc.SQLAlchemyError) as e:
        raise UserError(f"{url}: cannot read the Optuna storage: {e}") from e
    if study not in names:
        raise UserError(f"{url}: no study named {study!r} (it holds: {', '.join(sorted(names)) or 'none'})")
    return opened


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a browser's open connection does not keep a stopped server alive


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):  # no access log on the terminal
        pass


def dashboard_server(storage, host: str, port: int) -> tuple[WSGIServer, str]:
    """optuna-dashboard's WSGI app on `storage`, bound to host:port (not yet serving), and its URL."""
    import optuna_dashboard

    app = optuna_dashboard.wsgi(storage)
    try:
        server = make_server(host, port, app, server_class=_Server, handler_class=_QuietHandler)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UserError(f"--port {port}: {host}:{port} is already in use") from e
        raise UserError(f"--host {host} --port {port}: cannot listen: {e.strerror or e}") from e
    return server, f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
