#!/usr/bin/env bash
# The paper's experiments at their own length (issue 34): its headline pair, adjoint-100 (A-MAML: the adjoint through
# 100 rk4 steps of 0.01) and maml-10, in its five synthetic settings, seeds 0-2, to 5,000 meta-steps; then the other
# methods (maml-100, fomaml, reptile, imaml) with seed 0.  Resumable: a run resumes from its checkpoint (every 50
# meta-steps), a finished one is skipped, each run is locked while one runs it.
#
#   Each run: the reference code's reg (1) and SGD meta-steps of 0.01, meta-batch 5 (the kit's defaults), and the kit's
#   protocol (fresh episodes, meta-train scaling), not --protocol reference: the committed CosMixture runs it extends
#   are the kit's, and the reference's scaling fits meta-test statistics into training (results/README, "protocol").
#   First to 1,000 meta-steps into SETTING/NAME/seedS/1000, then on to 5,000 into SETTING/NAME/seedS/5000 (the
#   checkpoint copied), each evaluated along the way every 500 meta-steps at theta and after the run's own loop
#   (evals.csv) and at its end by the paper's 5,000 Adam fine-tuning iterations and the own loop on the same 100
#   meta-test tasks (tasks.csv).  The committed runs are extended, not repeated: CosMixture 50/50's seeds 1 and 2 at
#   1,000 (results/cpu-long/CosMixture-50-50-seeds) go on to 5,000 here; its seed 0 of adjoint-100, maml-10 and
#   maml-100 went to 5,000 already (results/cpu-long/CosMixture-50-50, evaluated every 100); Alpine2D 50/50's seed 0
#   and CosMixture 50/50's other methods at 1,000 (results/cpu-long) go on to 5,000.  adjoint-100, maml-10 and maml-100 run compiled (--compile), the first-order methods and imaml
#   eager: `measure` found the compiled path faster for a 5,000-meta-step run, compile included, for the three it
#   measured compiled (results/paper/speeds.md).
#
#   usage: results/run_paper_length.sh [list|plan|measure|pair|others|all] (default all), from the project root.
#   AMAML_LAB overrides the command (a frozen copy of the package while the tree changes under it); JOBS runs at
#   once (default 2), each on one thread.
set -euo pipefail
export OMP_NUM_THREADS=1
ROOT=${ROOT:-results/paper}
AMAML_LAB=${AMAML_LAB:-amaml-lab}
PYTHON=${PYTHON:-python}
JOBS=${JOBS:-2}
SETTINGS=("CosMixture 50 50" "CosMixture2D 50 50" "CosMixture2D 100 100" "Alpine2D 50 50" "Alpine2D 100 100")

pair_jobs() {  # seed by seed, so that a verdict over seeds builds up across every setting
  local seed setting
  for seed in 0 1 2; do
    for setting in "${SETTINGS[@]}"; do
      echo "one $setting adjoint 100 $seed"
      echo "one $setting maml 10 $seed"
    done
  done
}

other_jobs() {
  local setting spec
  for setting in "${SETTINGS[@]}"; do
    for spec in "maml 100" "fomaml 100" "reptile 100" "imaml 100"; do echo "one $setting $spec 0"; done
  done
}

train() {  # OUT DOMAIN SHOTS QUERY METHOD N SEED META_STEPS: one locked, resumable run
  local out=$1 domain=$2 shots=$3 query=$4 method=$5 n=$6 seed=$7 steps=$8
  if [ -f "$out/summary.json" ] && grep -q '"status": "done"' "$out/summary.json" \
     && grep -q "\"meta_steps\": $steps," "$out/summary.json"; then return 0; fi
  mkdir -p "$out"
  exec 9>"$out/.lock"
  flock -n 9 || return 1
  local speed=(); case "$method-$n" in adjoint-100|maml-10|maml-100) speed=(--compile) ;; esac
  $AMAML_LAB run "$domain" "$shots" "$query" "$n" cpu --method "$method" --seed "$seed" --meta-steps "$steps" \
    --eval-steps 5000 --eval-interval 500 --interval-horizons 0 --checkpoint-every 50 --out "$out" --resume --quiet \
    "${speed[@]}" >>"$out/log.txt" 2>&1 || { echo "failed: $out (see $out/log.txt)" >&2; return 1; }
}

committed() {  # SETTING NAME SEED: the committed run this one extends and its meta-steps (nothing if none): seed 0
  # in results/cpu-long/SETTING (its first-order and imaml runs named without their -100), other seeds in -seeds
  local setting=$1 name=$2 seed=$3 dir
  local dirs=("results/cpu-long/$setting-seeds/$name/seed$seed")
  [ "$seed" = 0 ] && dirs=("results/cpu-long/$setting/$name" "results/cpu-long/$setting/${name%-100}" "${dirs[@]}")
  for dir in "${dirs[@]}"; do
    if [ -f "$dir/summary.json" ]; then
      echo "$dir $($PYTHON -c 'import json, sys; print(json.load(open(sys.argv[1]))["meta_steps"])' "$dir/summary.json")"
      return 0
    fi
  done
}

one() {  # DOMAIN SHOTS QUERY METHOD N SEED
  local setting="$1-$2-$3" name="$4-$5" seed=$6 first steps=0
  read -r first steps <<< "$(committed "$setting" "$name" "$seed")" || true
  if [ "${steps:-0}" = 5000 ]; then echo "committed: $* ($first)"; return 0; fi
  if [ -z "${first:-}" ]; then
    first="$ROOT/$setting/$name/seed$seed/1000"
    train "$first" "$1" "$2" "$3" "$4" "$5" "$seed" 1000 || return 0
  fi
  local out="$ROOT/$setting/$name/seed$seed/5000"
  mkdir -p "$out"
  [ -f "$out/checkpoint.pt" ] || cp "$first/checkpoint.pt" "$out/checkpoint.pt"
  train "$out" "$1" "$2" "$3" "$4" "$5" "$seed" 5000 || return 0
  echo "done: $*"
}
plan() {  # every run, then the meta-step it starts from (that of the committed run it extends, or 0)
  { pair_jobs; other_jobs; } | while read -r _ domain shots query method n seed; do
    local found=() && read -ra found <<< "$(committed "$domain-$shots-$query" "$method-$n" "$seed")"
    echo "$domain $shots $query $method $n $seed ${found[1]:-0}"
  done
}
export -f train committed one
export ROOT AMAML_LAB PYTHON

case "${1:-all}" in
  list) pair_jobs; other_jobs ;;
  plan) plan ;;
  measure) $PYTHON results/paper_speeds.py "$ROOT/speeds.md" ;;
  pair) pair_jobs | xargs -P "$JOBS" -L 1 bash -c '"$@"' _ ;;
  others) other_jobs | xargs -P "$JOBS" -L 1 bash -c '"$@"' _ ;;
  all) "$0" pair; "$0" others ;;
  *) echo "usage: $0 [list|plan|measure|pair|others|all]" >&2; exit 2 ;;
esac
