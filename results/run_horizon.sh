#!/usr/bin/env bash
# The horizon experiment behind results/README.md's "When does a longer inner loop pay off?" (issue 20).
# Sinusoid 10/10 and CosMixture 50/50; the inner loop is Euler steps of 0.01 (T = N x 0.01); the meta-gradient
# exact through those steps (maml: back-propagation through the loop; on this MLP every horizon fits in memory),
# with first-order controls (fomaml, reptile) at N = 1000; reg 0 (no proximal term, as the paper's abstract says)
# at N = 10, 30, 100, 300, 1000 and reg 1 (the reference code's setting) at N = 10, 100, 1000; Adam 1e-3 (the
# reference's SGD 0.01 barely moves theta in 1,000 meta-steps with reg 0: see results/README.md), meta-batch 5,
# 1,000 meta-steps, seeds 0, 1, 2.  Each run is evaluated on the same 100 meta-test tasks: after its own inner
# loop, after N_test = 0 ... 3000 steps of it (the cross-evaluation), and after 5,000 Adam iterations.
# Every run resumes from its checkpoint (written every 50 meta-steps) and a finished run is skipped, so the
# script continues where it stopped.  JOBS runs at once (default 2), each on one thread; several runners may
# share the grid (each run is locked while one runs it).
#   usage: results/run_horizon.sh [list|run] (default run), from the project root.
#   AMAML_LAB overrides the command (e.g. a frozen copy of the package while the tree changes under it).
set -euo pipefail
export OMP_NUM_THREADS=1
OUT=${OUT:-results/horizon}
AMAML_LAB=${AMAML_LAB:-amaml-lab}
JOBS=${JOBS:-2}
SEEDS=${SEEDS:-"0 1 2"}
TEST_HORIZONS=0,10,30,100,300,1000,3000

jobs() {  # one line a run, most informative first: seed by seed, cheap horizons first within a seed
  for seed in $SEEDS; do
    for setting in "Sinusoid 10 10" "CosMixture 50 50"; do
      for n in 10 30 100 300 1000; do echo "$setting 0 maml $n $seed"; done
      echo "$setting 0 fomaml 1000 $seed"; echo "$setting 0 reptile 1000 $seed"
      for n in 10 100 1000; do echo "$setting 1 maml $n $seed"; done
    done
  done
}

one() {  # DOMAIN SHOTS QUERY REG METHOD N SEED
  local domain=$1 shots=$2 query=$3 reg=$4 method=$5 n=$6 seed=$7
  local out="$OUT/$domain-$shots-$query/reg$reg/$method-$n/seed$seed"
  if [ -f "$out/summary.json" ] && grep -q '"status": "done"' "$out/summary.json"; then return 0; fi
  mkdir -p "$out"
  exec 9>"$out/.lock"  # a run another runner holds is left to it (the lock goes with its process)
  flock -n 9 || return 0
  $AMAML_LAB run "$domain" "$shots" "$query" "$n" cpu --method "$method" --seed "$seed" --solver euler \
    --step-size 0.01 --reg "$reg" --optimizer adam --meta-lr 1e-3 --meta-batch 5 --meta-steps 1000 \
    --eval-steps 5000 --test-horizons "$TEST_HORIZONS" --checkpoint-every 50 --out "$out" --resume --quiet \
    >"$out/log.txt" 2>&1 || { echo "failed: $*  (see $out/log.txt)" >&2; return 0; }
  echo "done: $*"
}
export -f one
export OUT AMAML_LAB TEST_HORIZONS

case "${1:-run}" in
  list) jobs ;;
  run) jobs | xargs -P "$JOBS" -L 1 bash -c 'one "$@"' _ ;;
  *) echo "usage: $0 [list|run]" >&2; exit 2 ;;
esac
