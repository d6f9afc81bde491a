#!/usr/bin/env bash
# The paper-scale path on real GPUs, for the day a GPU machine is available (about 15 minutes of it):
#   1. the CUDA-only tests (pytest -m gpu),
#   2. paper-2b at random init from the presets (no hub access, no download): 20 training steps at the
#      release's 32 rows per GPU with GradCache chunks of 2, through the real `virtue train`; with 2 or more
#      GPUs also 2 ranks under torchrun,
#   3. the meta-device estimate beside it, so that measured and estimated memory and step time can be compared.
# Writes $OUT_DIR/gpu-check.json (peak memory, step time, samples/s per run) and paper-scale-estimate.json.
# Usage: scripts/gpu-check.sh [OUT_DIR]   (default: runs/gpu-check; PYTHON overrides the interpreter)
# Target: under 8 minutes on one H100-class GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-runs/gpu-check}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p "$OUT_DIR"

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
gpus=$("$PY" -c 'import torch; print(torch.cuda.device_count())')
if [ "$gpus" -lt 1 ]; then
  echo "gpu-check: no CUDA device visible to $PY" >&2
  exit 2
fi
ranks=$(( gpus >= 2 ? 2 : 1 ))
start=$(date +%s)

echo "== 1/3 CUDA tests"
"$PY" -m pytest -m gpu -q -p no:cacheprovider tests 2>&1 | tee "$OUT_DIR/pytest-gpu.log"

echo "== 2/3 paper-2b: 20 steps on $ranks GPU(s), random init"
"$PY" -m virtue.bench.paper_scale gpu-check --out "$OUT_DIR" --gpus "$ranks" --steps 20

echo "== 3/3 meta-device estimate"
"$PY" -m virtue.bench.paper_scale estimate --out "$OUT_DIR/paper-scale-estimate.json" >/dev/null

echo "gpu-check: done in $(( $(date +%s) - start )) s; results in $OUT_DIR/gpu-check.json"
