#!/usr/bin/env bash
# The horizon experiment's memory arm (results/README.md, "When does a longer inner loop pay off?"): peak memory
# and time of one meta-gradient of Conv-4 on a 5-way 1-shot episode (float32, reg 0, Euler steps of 0.1, Omniglot's
# inner step) at N = 10, 100, 1000, 3000 inner steps, for unrolled maml (every state kept), the stored adjoint and
# the checkpointed adjoint (sqrt(N) states).  Unrolled maml is refused where its peak, extrapolated from its two
# largest measured N, would pass a 2,048 MB budget (what a laptop or a small GPU spares); the adjoint carries on.
# Each row in a fresh process; one timed run after the memory run (times are for scale, not for ratios).
#   usage: results/run_horizon_memory.sh, from the project root (about 10 minutes on one core).
set -euo pipefail
export OMP_NUM_THREADS=1
PYTHON=${PYTHON:-python}
mkdir -p results/horizon
$PYTHON -m amaml_lab.bench --steps 10,100,1000,3000 --methods conv4-maml,conv4-adjoint,conv4-adjoint-sqrt \
  --solver euler --step-size 0.1 --repeat 1 --memory-budget 2048 --out results/horizon/memory-conv4.json \
  | tee results/horizon/memory-conv4.md
