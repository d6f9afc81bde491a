"""Run (or continue) an ablation study: `python sweeps/run.py --study connector_depth --executor local`.
Thin entry point (the same as `virtue sweep`); the studies are data in sweeps/studies/*.yaml."""

from __future__ import annotations

import argparse
import sys

from virtue.cli.sweep_cmd import add_arguments, run
from virtue.errors import UserError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sweeps/run.py", description=__doc__)
    add_arguments(p)
    try:
        return run(p.parse_args(argv))
    except UserError as e:
        print(f"sweeps/run.py: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
