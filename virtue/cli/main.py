"""Entry point of the `virtue` command. Every module `virtue/cli/*_cmd.py` is a command group that
registers itself; errors meant for users (UserError) become one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

from .. import __version__
from ..errors import UserError
from .stage_clock import stage_clock


def command_modules() -> list[str]:
    """Modules named *_cmd in this package; each defines `register(subparsers)` and sets `func`."""
    found = pkgutil.iter_modules([str(Path(__file__).parent)])
    return sorted(m.name for m in found if m.name.endswith("_cmd"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="virtue", description="VIRTUE Lab: visual-prompt-aware embeddings.")
    parser.add_argument("--version", action="version", version=f"virtue {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in command_modules():
        importlib.import_module(f"{__package__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    with stage_clock() as clocked:
        clocked["exit"] = _run(args)
        return clocked["exit"]


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"virtue: error: {e}", file=sys.stderr)
        return UserError.exit_code
    except KeyboardInterrupt:
        print("virtue: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
