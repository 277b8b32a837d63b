#!/usr/bin/env bash
# The CPU results tables in results/README.md: the paper's settings with 100 meta-steps (not 5000) and
# 1000 Adam fine-tuning steps (not 5000) on this 2-core machine, one thread (OMP_NUM_THREADS=1). Run from the project root.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
DATA_ROOT=${DATA_ROOT:-../shared/data}
for setting in "Alpine2D 50 50" "Alpine2D 100 100" "CosMixture2D 50 50" "CosMixture2D 100 100" \
               "MovieLens100K 10 15" "MovieLens100K 20 30"; do
  set -- $setting
  amaml-lab compare "$1" "$2" "$3" 100 cpu --maml-steps 10 --meta-steps 100 --eval-steps 1000 --checkpoint-every 20 \
    --data-root "$DATA_ROOT" --out "results/cpu/$1-$2-$3" --quiet
done
