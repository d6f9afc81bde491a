"""`virtue ui`: browse the experiments (MLflow server on the workspace's tracking database), or with
`--optuna STUDY` a sweep study (optuna-dashboard on its Optuna storage)."""

from __future__ import annotations

import argparse
import signal
import sys

from ..errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ui", help="start the MLflow UI on this workspace's tracking database (or optuna-dashboard)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=None, help="default: 5000 (MLflow), 8080 (--optuna)")
    p.add_argument(
        "--optuna", metavar="STUDY", default=None, help="serve optuna-dashboard on this sweep study's storage instead"
    )
    p.add_argument(
        "--storage",
        default=None,
        help="with --optuna: an Optuna RDB URL or journal file (default: runs/sweeps/<STUDY>/journal.log)",
    )
    p.set_defaults(func=_ui)


def _ui(args: argparse.Namespace) -> int:
    if args.optuna is not None:
        return _optuna(args)
    if args.storage is not None:
        raise UserError("--storage: only with --optuna STUDY (the MLflow UI reads the workspace database)")
    from ..orchestrate.server import start_server, stop_server

    proc, url = start_server(args.host, 5000 if args.port is None else args.port)
    print(f"MLflow UI: {url}  (Ctrl-C stops it)", flush=True)
    # SIGTERM (e.g. from a job scheduler) stops the server the same way Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        return proc.wait() and 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop_server(proc)


def _optuna(args: argparse.Namespace) -> int:
    from ..report.dashboard import DEFAULT_PORT, dashboard_server, open_study_storage

    storage = open_study_storage(args.optuna, args.storage)
    server, url = dashboard_server(storage, args.host, DEFAULT_PORT if args.port is None else args.port)
    print(f"Optuna dashboard ({args.optuna}): {url}/dashboard  (Ctrl-C stops it)", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
