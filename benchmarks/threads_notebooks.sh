#!/usr/bin/env bash
# A notebook under papermill (FAST = True) with the kit's threads (one, the default) and with PyTorch's own choice
# (AMAML_LAB_THREADS=0: every core), one after the other, OMP_NUM_THREADS unset; prints seconds and exit status.
# Run it beside the machine's other work: that is the condition it measures.
#   usage: benchmarks/threads_notebooks.sh [NOTEBOOK ...]   (default: 03_why_not_backward), from the project root
set -uo pipefail
cd "$(dirname "$0")/../notebooks"
PAPERMILL=${PAPERMILL:-../.venv/bin/papermill}
out=$(mktemp -d)
for nb in "${@:-03_why_not_backward}"; do
  for setting in kit torch; do
    extra=(); [ "$setting" = torch ] && extra=(AMAML_LAB_THREADS=0)
    start=$(date +%s.%N)
    env -u OMP_NUM_THREADS -u MKL_NUM_THREADS "${extra[@]}" timeout 900 "$PAPERMILL" "$nb.ipynb" "$out/$nb.ipynb" \
      -p FAST True --no-progress-bar >/dev/null 2>&1
    rc=$?
    end=$(date +%s.%N)
    echo "$nb $setting rc=$rc seconds=$(python3 -c "print(round($end - $start, 1))")"
  done
done
