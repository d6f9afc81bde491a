#!/usr/bin/env bash
# The README's main job (via `make repro`): `dvc repro` of the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f dvc.yaml ]; then
  echo "repro.sh: the DVC pipeline (dvc.yaml) is not there yet; see the open issues." >&2
  exit 1
fi
# The stages in dvc.yaml call `virtue`: the workspace's own, whether or not the venv is activated.
export PATH="$PWD/.venv/bin:$PATH"
[ -d .dvc ] || dvc init -q
exec dvc repro "$@"
