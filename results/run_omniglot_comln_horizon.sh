#!/usr/bin/env bash
# COMLN with its horizon meta-learned (--learn-horizon), on the same settings as run_omniglot_cpu.sh. Run from the project root.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
DATA_ROOT=${DATA_ROOT:-../shared/data/omniglot}
for shots in 1 5; do
  amaml-lab run Omniglot "$shots" 15 10 cpu --ways 5 --method comln --learn-horizon --solver euler --meta-steps 100 \
    --meta-batch 4 --checkpoint-every 20 --data-root "$DATA_ROOT" \
    --out "results/omniglot-cpu/5way-${shots}shot-comln-learned-horizon" --quiet
done
