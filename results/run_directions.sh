#!/usr/bin/env bash
# Exact or first-order through a long loop? (issue 33): the horizon experiment's reg-0 cells to 5,000 meta-steps,
# each method at its own meta-learning rate.  Three phases, each resumable (a run resumes from its checkpoint, written
# every 50 meta-steps; a finished one is skipped; each run is locked while one runs it):
#
#   lr    The rule, fixed before any run: for maml, fomaml and reptile at N = 1,000 on Sinusoid 10/10 and CosMixture
#         50/50, seed 0, Adam at 1e-3 (the committed runs of results/horizon), 3e-3 and 1e-2, 1,000 meta-steps; the
#         rate chosen is the one with the lowest mean nRMSE after the run's own loop on 100 meta-validation functions
#         (task seed 102: neither meta-train nor meta-test; `amaml-lab validate`); a diverged run counts as worst.
#         When the best is at an edge of the grid the grid grows by one rate that way (3e-4 or 3e-2) and the rule
#         is applied again.  The shorter horizons keep 1e-3.  Runs: lr/SETTING/METHOD-1000/lr<RATE>/seed0.
#   long  The 12 reg-0 cells (maml at N = 10, 100, 300, 1,000; fomaml-1000 and reptile-1000; both settings) x seeds
#         0-2 to 5,000 meta-steps at their chosen rate, into long/SETTING/METHOD-N/lr<RATE>/seed<S>.  A run at 1e-3
#         continues the committed 1,000-meta-step run of results/horizon (its checkpoint copied, not retrained); at
#         another rate it continues the 1,000-meta-step run of lr/ (seeds 1 and 2 are trained there first, with the
#         same full evaluation).  Along the way every 500 meta-steps: theta, the own loop and N_test = 1,000
#         (evals.csv); at 5,000 the full evaluation (tasks.csv: the cross-evaluation and 5,000 Adam iterations);
#         the full evaluation at 1,000 stays in the 1,000-meta-step folder; theta and Adam's state are kept every
#         1,000 meta-steps (snapshots/, for the diagnosis).  --compile from N = 100 on.
#   remedy  Seed 0 after the headline pair's seed 0, seeds 1-2 after the pair, before the other cells: exact maml-1000 on CosMixture 50/50 with each meta-step's
#         gradient divided by its norm before Adam (--normalize-grad), at maml's chosen rate, seeds 0-2, from scratch
#         to 5,000 meta-steps (evaluated as the long runs, from meta-step 0), into
#         long/CosMixture-50-50/maml-normalized-1000/lr<RATE>/seed<S>.  Why this remedy: the diagnosis found the
#         exact gradient's norm heavy-tailed over meta-batches at N = 1,000 and Adam's second moment several times
#         the gradients it sees (results/diagnose_directions.py, "scale").
#
#   usage: results/run_directions.sh [list|lr|long|all] (default all), from the project root.
#   AMAML_LAB overrides the command (a frozen copy of the package while the tree changes under it); JOBS runs at
#   once (default 2), each on one thread.
set -euo pipefail
export OMP_NUM_THREADS=1
ROOT=${ROOT:-results/horizon}
AMAML_LAB=${AMAML_LAB:-amaml-lab}
PYTHON=${PYTHON:-python}
JOBS=${JOBS:-2}
SEEDS=${SEEDS:-"0 1 2"}
TEST_HORIZONS=0,10,30,100,300,1000,3000
SETTINGS=("CosMixture 50 50" "Sinusoid 10 10")

lr_jobs() {  # SETTING... METHOD RATE SEED
  for setting in "${SETTINGS[@]}"; do
    for method in maml reptile fomaml; do
      for rate in $($PYTHON -m amaml_lab.studies.directions grid "$ROOT" "${setting// /-}" "$method"); do
        echo "$setting $method $rate 0"
      done
    done
  done
}

long_jobs() {  # FUNCTION SETTING... [METHOD N] SEED: the headline pair (exact maml-1000, reptile-1000) for every seed
  # first, so that the verdict is reached before the other cells, with the remedy's first seed after the pair's
  # (a remedy that fails shows it before its other seeds run); then the remedy's other seeds; then the other cells
  local seed setting cell first=${SEEDS%% *}
  for seed in $SEEDS; do
    for setting in "${SETTINGS[@]}"; do
      for cell in "maml 1000" "reptile 1000"; do echo "long_one $setting $cell $seed"; done
    done
    [ "$seed" = "$first" ] && echo "remedy_one CosMixture 50 50 $seed"
  done
  for seed in $SEEDS; do [ "$seed" = "$first" ] || echo "remedy_one CosMixture 50 50 $seed"; done
  for seed in $SEEDS; do
    for setting in "${SETTINGS[@]}"; do
      for cell in "fomaml 1000" "maml 300" "maml 100" "maml 10"; do echo "long_one $setting $cell $seed"; done
    done
  done
}

train() {  # OUT DOMAIN SHOTS QUERY METHOD N RATE SEED META_STEPS [more options]: one locked, resumable run
  local out=$1 domain=$2 shots=$3 query=$4 method=$5 n=$6 rate=$7 seed=$8 steps=$9; shift 9
  if [ -f "$out/summary.json" ] && grep -q '"status": "done"' "$out/summary.json" \
     && grep -q "\"meta_steps\": $steps," "$out/summary.json"; then return 0; fi
  mkdir -p "$out"
  exec 9>"$out/.lock"
  flock -n 9 || return 1
  local speed=(); [ "$n" -ge 100 ] && speed=(--compile)
  $AMAML_LAB run "$domain" "$shots" "$query" "$n" cpu --method "$method" --seed "$seed" --solver euler \
    --step-size 0.01 --reg 0 --optimizer adam --meta-lr "$rate" --meta-batch 5 --meta-steps "$steps" \
    --eval-steps 5000 --test-horizons "$TEST_HORIZONS" --checkpoint-every 50 --out "$out" --resume --quiet \
    "${speed[@]}" "$@" >>"$out/log.txt" 2>&1 || { echo "failed: $out (see $out/log.txt)" >&2; return 1; }
}

lr_one() {  # DOMAIN SHOTS QUERY METHOD RATE SEED (1e-3: the committed run, validated only)
  local out="$ROOT/lr/$1-$2-$3/$4-1000/lr$5/seed$6"
  if [ "$5" = 1e-3 ]; then out="$ROOT/$1-$2-$3/reg0/$4-1000/seed$6"
  else train "$out" "$1" "$2" "$3" "$4" 1000 "$5" "$6" 1000 || return 0; fi
  [ -f "$out/validation.json" ] || $AMAML_LAB validate "$out" >/dev/null
  echo "done: lr $*"
}

long_one() {  # DOMAIN SHOTS QUERY METHOD N SEED
  local setting="$1-$2-$3" method=$4 n=$5 seed=$6 rate=1e-3 first
  [ "$n" = 1000 ] && rate=$($PYTHON -m amaml_lab.studies.directions chosen "$ROOT" "$setting" "$method")
  [ -n "$rate" ] || { echo "skipped: $* (no rate chosen yet: run the lr phase)" >&2; return 0; }
  if [ "$rate" = 1e-3 ]; then first="$ROOT/$setting/reg0/$method-$n/seed$seed"
  else first="$ROOT/lr/$setting/$method-$n/lr$rate/seed$seed"
       train "$first" "$1" "$2" "$3" "$method" "$n" "$rate" "$seed" 1000 || return 0; fi
  local out="$ROOT/long/$setting/$method-$n/lr$rate/seed$seed"
  mkdir -p "$out"
  [ -f "$out/checkpoint.pt" ] || cp "$first/checkpoint.pt" "$out/checkpoint.pt"
  train "$out" "$1" "$2" "$3" "$method" "$n" "$rate" "$seed" 5000 --eval-interval 500 --interval-horizons 1000 \
    --keep-every 1000 || return 0
  echo "done: long $*"
}
remedy_one() {  # DOMAIN SHOTS QUERY SEED
  local setting="$1-$2-$3" seed=$4 rate
  rate=$($PYTHON -m amaml_lab.studies.directions chosen "$ROOT" "$setting" maml)
  [ -n "$rate" ] || { echo "skipped: remedy $* (no rate chosen yet: run the lr phase)" >&2; return 0; }
  train "$ROOT/long/$setting/maml-normalized-1000/lr$rate/seed$seed" "$1" "$2" "$3" maml 1000 "$rate" "$seed" 5000 \
    --normalize-grad --eval-interval 500 --interval-horizons 1000 --keep-every 1000 || return 0
  echo "done: remedy $*"
}
export -f train lr_one long_one remedy_one
export ROOT AMAML_LAB PYTHON TEST_HORIZONS

case "${1:-all}" in
  list) lr_jobs; long_jobs ;;
  lr) lr_jobs | xargs -P "$JOBS" -L 1 bash -c 'lr_one "$@"' _ ;;
  long) long_jobs | xargs -P "$JOBS" -L 1 bash -c '"$@"' _ ;;
  all) for pass in 1 2 3; do "$0" lr; done; "$0" long ;;  # a best rate at the grid's edge adds one, run next pass
  *) echo "usage: $0 [list|lr|long|all]" >&2; exit 2 ;;
esac
