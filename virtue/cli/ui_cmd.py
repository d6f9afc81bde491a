"""`virtue ui`: browse the experiments (MLflow server on the workspace's tracking database)."""

from __future__ import annotations

import argparse
import signal
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ui", help="start the MLflow UI on this workspace's tracking database")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=5000)
    p.set_defaults(func=_ui)


def _ui(args: argparse.Namespace) -> int:
    from ..orchestrate.server import start_server, stop_server

    proc, url = start_server(args.host, args.port)
    print(f"MLflow UI: {url}  (Ctrl-C stops it)", flush=True)
    # SIGTERM (e.g. from a job scheduler) stops the server the same way Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        return proc.wait() and 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop_server(proc)
