#!/usr/bin/env bash
# The whole protocol on a GPU in one command: 5,000 meta-steps and 5,000 Adam fine-tuning iterations, evaluated
# every 100 meta-steps, for the synthetic settings (every method: adjoint-100, maml-10, maml-100, imaml, fomaml,
# reptile), MovieLens 100K 10/15 and 20/30, and Omniglot 5-way 1- and 5-shot (the full set where DATA_ROOT holds
# it, else the small subsets; maml, adjoint, fomaml, reptile, imaml, comln). It prints an estimate first.
#
# JOBS runs go at once (one process each, a CPU core each). The MLP settings (synthetic, MovieLens) are
# launch-bound: on an H200 with 16 processes sharing it, adjoint-100 took 1.7 s a meta-step, against 0.35 s for
# one process on one CPU core (results/README.md), so MLP_DEVICE=cpu runs them on the cores while Omniglot's
# Conv-4 uses the GPU. Every run resumes (--resume), so an interrupted call
# continues. The MLP runs take the compiled path (`--compile`) when the estimate's measurement finds a run faster on
# MLP_DEVICE with it, its compile counted (mean over the methods' meta-steps and compiles; MLP_COMPILE=1 forces it,
# 0 never; the estimate line says which
# was chosen). `--small` runs the same commands with 20 meta-steps, 50 fine-tuning iterations and few meta-test
# tasks (for Omniglot the generated demo glyphs, meta-batch 2, 16 filters), end to end in minutes on a CPU.
# `--horizon` runs the horizon experiment's full arms instead (results/run_horizon.sh's protocol on the paper's five
# synthetic settings: reg 0, Euler steps of 0.01, N = 10, 100, 1,000 and 10,000 (maml to 1,000; past it the
# checkpointed adjoint, scheme discrete, equal to maml with sqrt(N) states), seeds 0-2, Adam 1e-3, 1,000
# meta-steps, the cross-evaluation to 10,000 test steps; and Omniglot 5-way 1-shot with meta-batch 32 at N = 10,
# 100, 1,000 (maml, then the checkpointed adjoint), reg 0, Euler steps of 0.1).
#   usage: results/run_gpu.sh [--small] [--horizon] [--dry-run]   (env: DEVICE=cuda MLP_DEVICE=$DEVICE JOBS=8
#                                                        DATA_ROOT=../shared/data OUT=... ESTIMATE=1; 0 skips
#                                                        the estimate's measurement; MLP_COMPILE=auto)
set -euo pipefail
SMALL=0; DRY=0; HORIZON=0
for arg in "$@"; do
  case "$arg" in
    --small) SMALL=1 ;; --dry-run) DRY=1 ;; --horizon) HORIZON=1 ;;
    *) echo "usage: $0 [--small] [--horizon] [--dry-run]" >&2; exit 2 ;;
  esac
done
DEVICE=${DEVICE:-cuda}; MLP_DEVICE=${MLP_DEVICE:-$DEVICE}; JOBS=${JOBS:-8}; DATA_ROOT=${DATA_ROOT:-../shared/data}
AMAML_LAB=${AMAML_LAB:-amaml-lab}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} AMAML_LAB_QUIET=1
if [ "$SMALL" = 1 ]; then
  OUT=${OUT:-runs/gpu-small}; META=20; EVAL="--eval-steps 50 --eval-tasks 10 --eval-interval 10"; SUBSET=demo; EPIS=20
  OMNI="--meta-batch 2 --hidden 16"  # Conv-4 with 32 episodes a meta-step takes 10 s a step on a CPU
else
  OUT=${OUT:-results/gpu}; META=5000; EVAL="--eval-steps 5000 --eval-interval 100"; SUBSET=auto; EPIS=600; OMNI=""
fi
[ "$HORIZON" = 1 ] && [ "$SMALL" = 0 ] && META=1000  # the horizon runs' length (for the estimate)
COMMON="--meta-steps $META --checkpoint-every 50 --resume --quiet"
horizon_commands() {  # the horizon experiment's full arms (see the header)
  local meta=1000 eval="--eval-steps 5000" tests=0,10,30,100,300,1000,3000,10000 epis=600 omni=""
  if [ "$SMALL" = 1 ]; then meta=20; eval="--eval-steps 50 --eval-tasks 10"; tests=0,10,100; epis=20; omni="$OMNI"; fi
  local flow="--solver euler --step-size 0.01 --reg 0 --optimizer adam --meta-lr 1e-3 --meta-batch 5"
  local common="--meta-steps $meta --checkpoint-every 50 --resume --quiet"
  for setting in "CosMixture 50 50" "CosMixture2D 50 50" "CosMixture2D 100 100" "Alpine2D 50 50" "Alpine2D 100 100"; do
    set -- $setting
    for seed in 0 1 2; do
      for n in 10 100 1000 10000; do
        local method="--method maml"
        [ "$n" -gt 1000 ] && method="--method adjoint --scheme discrete --checkpoints sqrt"
        echo "$AMAML_LAB run $1 $2 $3 $n $MLP_DEVICE $method$MLP_FLAGS --seed $seed $flow $eval --test-horizons $tests $common --out $OUT/horizon/$1-$2-$3/reg0/maml-$n/seed$seed"
      done
    done
  done
  for n in 10 100 1000; do
    local method="--method maml"
    [ "$n" -gt 100 ] && method="--method adjoint --scheme discrete --checkpoints sqrt"
    echo "$AMAML_LAB run Omniglot 1 15 $n $DEVICE --ways 5 $method --solver euler --step-size 0.1 --reg 0 --meta-batch 32 --subset $SUBSET --eval-tasks $epis $omni $common --data-root $DATA_ROOT/omniglot --out $OUT/horizon/Omniglot-5way-1shot/reg0/maml-$n/seed0"
  done
}
commands() {
  if [ "$HORIZON" = 1 ]; then horizon_commands; return; fi
  for setting in "CosMixture 50 50" "CosMixture2D 50 50" "CosMixture2D 100 100" "Alpine2D 50 50" "Alpine2D 100 100"; do
    set -- $setting
    for spec in adjoint-100:adjoint:100 maml-10:maml:10 maml-100:maml:100 imaml:imaml:100 fomaml:fomaml:100 \
                reptile:reptile:100; do
      IFS=: read -r folder method steps <<< "$spec"
      echo "$AMAML_LAB run $1 $2 $3 $steps $MLP_DEVICE --method $method$MLP_FLAGS $EVAL $COMMON --out $OUT/$1-$2-$3/$folder"
    done
  done
  for setting in "10 15" "20 30"; do
    set -- $setting
    for spec in adjoint-100:adjoint:100 maml-10:maml:10 imaml:imaml:100 fomaml:fomaml:100 reptile:reptile:100; do
      IFS=: read -r folder method steps <<< "$spec"
      echo "$AMAML_LAB run MovieLens100K $1 $2 $steps $MLP_DEVICE --method $method$MLP_FLAGS $EVAL $COMMON --data-root $DATA_ROOT/ml-100k --out $OUT/MovieLens100K-$1-$2/$folder"
    done
  done
  for shots in 1 5; do
    for method in maml adjoint fomaml reptile imaml comln; do
      echo "$AMAML_LAB run Omniglot $shots 15 10 $DEVICE --ways 5 --method $method --subset $SUBSET --eval-tasks $EPIS $OMNI $COMMON --data-root $DATA_ROOT/omniglot --out $OUT/Omniglot-5way-${shots}shot/$method"
    done
  done
}
mkdir -p "$OUT"
RUNS=$(MLP_FLAGS="" commands | wc -l)
# the estimate: one meta-step of the paper's synthetic setting per method, eager and compiled, measured here
if [ "${ESTIMATE:-1}" = 1 ] && { [ "$DRY" = 0 ] || [ "$SMALL" = 0 ]; }; then
  python -m amaml_lab.bench --meta-step --device "$MLP_DEVICE" --shots 50 --repeat 3 --out "$OUT/meta-step.json" >/dev/null 2>&1 || true
fi
python - "$OUT/meta-step.json" "$RUNS" "$META" "$JOBS" "${MLP_COMPILE:-auto}" "$OUT/mlp-flags.txt" <<'PY'
import json, os, sys
path, runs, meta, jobs, choice, flags = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
rows = json.load(open(path)) if os.path.exists(path) else []
paths = {c: {r["name"]: r["time_s"] for r in rows if r.get("losses") == "stacked" and bool(r.get("compile")) == c
             and "time_s" in r} for c in (False, True)}
both = sorted(set(paths[False]) & set(paths[True]))
eager, compiled = (sum(paths[c][n] for n in both) / len(both) if both else float("nan") for c in (False, True))
spent = [r.get("compile_s", 0.0) for r in rows if r.get("losses") == "stacked" and r.get("compile") and r.get("name") in both]
spent = sum(spent) / len(spent) if spent else 0.0  # what compiling cost a process here (each run pays it again)
if choice not in ("auto", "0", "1"):
    sys.exit(f"run_gpu.sh: MLP_COMPILE must be auto, 0 or 1; got {choice!r}")
use = choice == "1" or (choice == "auto" and spent + meta * compiled < meta * eager)
why = (f"compiled {compiled:.3f} s a meta-step after {spent:.1f} s compiling, eager {eager:.3f} s: a run of {meta}"
       f" meta-steps {spent + meta * compiled:.0f} s against {meta * eager:.0f} s" if both else "nothing measured")
open(flags, "w").write(" --compile" if use else "")
errors = sorted({r["error"] for r in rows if "error" in r})
if errors:
    print(f"run_gpu.sh: the estimate's measurement failed: {errors[0]}", file=sys.stderr)
per = paths[use].values()
per = sum(per) / len(per) if per else float("nan")
hours = runs * meta * per / jobs / 3600
print(f"run_gpu.sh: {runs} runs of {meta} meta-steps, {jobs} at a time; about {per:.3f} s per meta-step measured"
      f" here (mean over methods) -> about {hours:.1f} h of meta-training, plus evaluations. The MLP runs:"
      f" {'compiled' if use else 'eager'} ({why}; MLP_COMPILE={choice}). Commands: {path[:-14]}commands.txt")
PY
MLP_FLAGS=$(cat "$OUT/mlp-flags.txt")
commands > "$OUT/commands.txt"
[ "$DRY" = 1 ] && exit 0
xargs -P "$JOBS" -I{} sh -c '{} || echo "run_gpu.sh: FAILED: {}" >&2' < "$OUT/commands.txt"
echo "run_gpu.sh: done; summaries under $OUT/*/*/summary.json"
