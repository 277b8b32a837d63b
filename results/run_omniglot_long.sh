#!/usr/bin/env bash
# The image experiment past its warm-up (issue 34): Omniglot 5-way 1-shot on the official small subsets, Conv-4,
# MAML's inner loop (10 gradient-descent steps of 0.1, reg 0), Adam 1e-3, meta-batch 8 (results/omniglot-cpu ran 4),
# each run until its meta-validation accuracy stops rising, by the rule fixed before any of these runs
# (amaml_lab/studies/stopping.py): 20 of small1's 136 meta-train characters held out with their rotations
# (--validation-characters 20), 200 of their episodes scored every 250 meta-steps; a run stops at the first
# evaluation where its best validation accuracy is 1,000 meta-steps old, or at 10,000 meta-steps.  Its θ there is
# scored on the 600 meta-test episodes of small2 (eval.csv, each episode: every run on the same episodes, so they
# pair), and every evaluation along the way scores them too (evals.csv: accuracy against meta-steps).
#
#   Runs: maml-10 and the continuous adjoint (A-MAML's scheme) with seeds 0-2; the exact discrete adjoint (maml's
#   gradient to rounding: the check that the two train alike), fomaml and reptile with seed 0.  5-shot: not run on
#   this CPU (results/omniglot-cpu keeps its 100-meta-step runs).  The memory arm stays as it is.
#   Resumable: each run continues from its checkpoint; a stopped one is skipped.
#
#   usage: results/run_omniglot_long.sh [list|all] (default all), from the project root.  DATA_ROOT (default
#   ../shared/data/omniglot), AMAML_LAB, PYTHON, JOBS (default 2) as results/run_directions.sh.
set -euo pipefail
export OMP_NUM_THREADS=1
ROOT=${ROOT:-results/omniglot-long}
AMAML_LAB=${AMAML_LAB:-amaml-lab}
PYTHON=${PYTHON:-python}
JOBS=${JOBS:-2}
DATA_ROOT=${DATA_ROOT:-../shared/data/omniglot}

jobs_list() {  # NAME SEED METHOD-FLAGS...: the seeds 0 of every method first, then the other seeds
  local seed
  for seed in 0 1 2; do
    echo "one maml-10 $seed --method maml"
    echo "one adjoint-10 $seed --method adjoint"
    if [ "$seed" = 0 ]; then
      echo "one adjoint-discrete-10 $seed --method adjoint --scheme discrete"
      echo "one fomaml-10 $seed --method fomaml"
      echo "one reptile-10 $seed --method reptile"
    fi
  done
}

one() {  # NAME SEED METHOD-FLAGS...: trained in chunks to the rule's stop
  local name=$1 seed=$2; shift 2
  local out="$ROOT/5way-1shot/$name/seed$seed" target
  mkdir -p "$out"
  exec 9>"$out/.lock"
  flock -n 9 || return 0
  while :; do
    target=$($PYTHON -m amaml_lab.studies.stopping next "$out") || { echo "failed: $out (the rule)" >&2; return 0; }
    [ "$target" = stop ] && break
    $AMAML_LAB run Omniglot 1 15 10 cpu --ways 5 --subset small --data-root "$DATA_ROOT" --seed "$seed" \
      --meta-batch 8 --meta-steps "$target" --eval-interval 250 --validation-characters 20 --checkpoint-every 50 \
      --out "$out" --resume --quiet "$@" >>"$out/log.txt" 2>&1 || { echo "failed: $out (see $out/log.txt)" >&2; return 0; }
  done
  echo "done: $name seed $seed"
}
export -f one
export ROOT AMAML_LAB PYTHON DATA_ROOT

case "${1:-all}" in
  list) jobs_list ;;
  all) jobs_list | xargs -P "$JOBS" -L 1 bash -c '"$@"' _ ;;
  *) echo "usage: $0 [list|all]" >&2; exit 2 ;;
esac
