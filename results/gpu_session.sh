#!/usr/bin/env bash
# A GPU lent for a few minutes, in one command: the CUDA tests, then run_gpu.sh for what time is left (every run
# resumes from its last checkpoint, so the next session continues), then everything packed into one file.
#   usage: results/gpu_session.sh SECONDS BACK_DIR [run_gpu.sh options]
#   env:   PYTHON (default: the first python3 on PATH, or under /opt/*/.venv, that imports torch), DATA_ROOT, JOBS,
#          DEVICE, MLP_DEVICE, OUT (run_gpu.sh's; default results/gpu)
# BACK_DIR gets env.txt, pytest-cuda.log, run_gpu.log and gpu.tgz (run_gpu.sh's OUT, checkpoints included):
# unpack gpu.tgz in the repository's root and commit it.
set -uo pipefail
if [ $# -lt 2 ] || ! [[ "$1" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 SECONDS BACK_DIR [run_gpu.sh options]" >&2; exit 2
fi
BUDGET=$1; BACK=$2; shift 2
start=$(date +%s)
mkdir -p "$BACK"
cd "$(dirname "$0")/.."
# a symlink to a virtual environment's python loses the environment: call it through a small script instead
if [ -z "${PYTHON:-}" ]; then
  for PYTHON in "$(command -v python3)" /opt/*/.venv/bin/python3 /usr/local/bin/python3 /usr/bin/python3; do
    [ -x "$PYTHON" ] && "$PYTHON" -c "import torch" 2>/dev/null && break
  done
fi
"$PYTHON" -c "import torch" || { echo "$0: no python with torch found; set PYTHON" >&2; exit 1; }
BIN=$(mktemp -d); for n in python python3; do printf '#!/bin/sh\nexec %s "$@"\n' "$PYTHON" > "$BIN/$n"; chmod +x "$BIN/$n"; done
export PATH="$BIN:$PATH" PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
{ nvidia-smi -L 2>&1; python -c "import sys, torch, torchdiffeq; print(sys.version.split()[0], torch.__version__, torchdiffeq.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')"; } | tee "$BACK/env.txt"
timeout $((BUDGET / 3)) python -m pytest -m cuda -p no:cacheprovider -rA tests/integration/test_cuda.py > "$BACK/pytest-cuda.log" 2>&1
tail -15 "$BACK/pytest-cuda.log"
OUT=${OUT:-results/gpu}
left=$((BUDGET - ($(date +%s) - start) - 20))
echo "$0: run_gpu.sh for $left s"
if [ "$left" -gt 0 ]; then
  OUT="$OUT" AMAML_LAB="python -m amaml_lab" timeout -s TERM "$left" bash results/run_gpu.sh "$@" > "$BACK/run_gpu.log" 2>&1
  echo "$0: run_gpu.sh stopped with status $? after $(($(date +%s) - start)) s"; tail -3 "$BACK/run_gpu.log"
fi
nvidia-smi --query-gpu=name,memory.used --format=csv >> "$BACK/env.txt" 2>&1
tar czf "$BACK/gpu.tgz" "$OUT" && ls -la "$BACK"
