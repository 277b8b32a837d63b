#!/usr/bin/env bash
# What --compile costs a run, beside the eager run: for maml and the adjoint (the paper's setting: CosMixture2D
# 50/50, 100 rk4 steps, meta-batch 5, float64, one thread), runs of META_STEPS meta-steps each:
#   eager: no --compile;
#   cold: --compile-wait with TMPDIR a new, empty folder, so inductor's cache, its precompiled header and its CPU
#         probes are all built in this run (a machine's first compile), every meta-step compiled;
#   warm: --compile-wait again with the cold run's TMPDIR (every later run on that machine);
#   background: --compile with another new TMPDIR: a machine's first compile, in another process, while the
#         first meta-steps run eagerly;
#   new, new_background: --compile-wait and --compile, each with a new TMPDIR in which a one-meta-step
#         --compile-wait run of another setting (CosMixture 50/50, one input: other shapes) compiled first: a
#         setting's first compile on a machine whose inductor has compiled before (its CPU probes and
#         precompiled header built, these graphs not): what a run of a setting new to the machine pays.
# Then `python -m amaml_lab.bench.compile_cost OUT` reads the run folders (summary.json: the compile; metrics.csv:
# each meta-step's seconds) into OUT.md and OUT.json.
#   usage: benchmarks/compile_runs.sh OUT [META_STEPS]   (from the project root; OUT e.g. benchmarks/cpu-compile-runs)
set -euo pipefail
export OMP_NUM_THREADS=1
usage() { echo "usage: $0 OUT [META_STEPS] (META_STEPS a whole number of at least 3; default 150): $1" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage "one or two arguments"
OUT=$1
STEPS=${2:-150}
[[ "$STEPS" =~ ^[0-9]+$ ]] && [ "$STEPS" -ge 3 ] || usage "META_STEPS=$STEPS"
PY=${PY:-$PWD/.venv/bin/python}
unset TORCHINDUCTOR_CACHE_DIR
for method in maml adjoint; do
  first=$(mktemp -d) background=$(mktemp -d) other=$(mktemp -d) other_bg=$(mktemp -d) scratch=$(mktemp -d)
  run() { "$PY" -m amaml_lab run CosMixture2D 50 50 100 cpu --method "$method" --meta-steps "$STEPS" \
            --eval-tasks 1 --eval-steps 1 --quiet --out "$OUT/$method-$1" "${@:2}"; }
  TMPDIR=$other "$PY" -m amaml_lab run CosMixture 50 50 100 cpu --method "$method" --meta-steps 1 --eval-tasks 1 \
    --eval-steps 1 --quiet --out "$scratch/other" --compile-wait
  cp -r "$other/." "$other_bg"
  run eager
  TMPDIR=$first run cold --compile-wait
  TMPDIR=$first run warm --compile-wait
  TMPDIR=$background run background --compile
  TMPDIR=$other run new --compile-wait
  TMPDIR=$other_bg run new_background --compile
  rm -rf "$first" "$background" "$other" "$other_bg" "$scratch" "$OUT"/*/checkpoint.pt
done
"$PY" -m amaml_lab.bench.compile_cost "$OUT"
