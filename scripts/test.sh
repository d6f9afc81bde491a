#!/usr/bin/env bash
# The README's test command (via `make test`). Runs ruff, brings up the single-node Slurm cluster when this
# machine can (root + Debian packages), then pytest over everything: slow tests included, GPU tests skip
# without CUDA, Slurm tests skip only if the cluster could not be started.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

$BIN/ruff check .

if [ -x scripts/slurm-cluster.sh ] && [ "${VIRTUE_NO_SLURM:-0}" != 1 ]; then
  if scripts/slurm-cluster.sh up; then
    trap 'scripts/slurm-cluster.sh down || true' EXIT
    export VIRTUE_SLURM=1
  else
    echo "test.sh: could not start the local Slurm cluster; slurm-marked tests will be skipped" >&2
  fi
fi

# headless Chromium for the demo's browser test (installed when missing and root; the test skips without it)
scripts/browser.sh

# -m "": every marker (pyproject.toml's addopts leave the slow tests out of a plain `pytest`)
$BIN/python -m pytest -m "" "$@"
