#!/usr/bin/env bash
# The long CPU runs behind results/README.md's "Does the long inner loop win?": CosMixture 50/50 and
# Alpine2D 50/50, every method for 1,000 meta-steps, evaluated every 100 meta-steps (the reference's interval)
# with 1,000 Adam fine-tuning iterations (not its 5,000: CPU time) plus the error after each method's own
# inner loop; then adjoint-100, maml-10 and maml-100 continued to 5,000 meta-steps on CosMixture 50/50.
# Every run resumes from its committed checkpoint (--resume), so this script continues where it stopped.
# Then (issue 20): `reevaluate` fine-tunes every finished run's final theta for 5,000 Adam iterations (the
# reference's count; tasks.csv keeps 1,000 as ft1000), and `seeds` runs the headline comparison (CosMixture 50/50
# adjoint-100, maml-100, maml-10) with seeds 0, 1, 2 to 1,000 meta-steps, evaluated at the end only.
#   usage: results/run_cpu_long.sh [cheap|headline|long|protocol|reevaluate|seeds|all] (default all), from the
#   project root.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
OUT=${OUT:-results/cpu-long}
AMAML_LAB=${AMAML_LAB:-amaml-lab}
DEVICE=${DEVICE:-cpu}
one() {  # DOMAIN FOLDER INNER_STEPS METHOD META_STEPS [more flags]
  local domain=$1 folder=$2 steps=$3 method=$4 meta=$5; shift 5
  $AMAML_LAB run "$domain" 50 50 "$steps" "$DEVICE" --method "$method" --meta-steps "$meta" --eval-steps 1000 \
    --eval-interval 100 --checkpoint-every 50 --out "$OUT/$domain-50-50/$folder" --resume --quiet "$@"
}
protocol() {  # the reference code's fixed episodes and scaling over all tasks, beside the kit's maml-10
  one CosMixture maml-10-reference-protocol 10 maml 1000 --protocol reference
}
reevaluate() {  # every finished run's final theta, fine-tuned for 5,000 Adam iterations (skips those that were)
  for folder in "$OUT"/*-50-50/*/; do
    grep -q '"eval_steps": 5000' "$folder/summary.json" 2>/dev/null && continue
    $AMAML_LAB reevaluate "$folder" --eval-steps 5000 --quiet
  done
}
seeds() {  # the headline methods, three seeds each, to 1,000 meta-steps; evaluated at the end (5,000 Adam its)
  local seed name steps method
  for seed in 0 1 2; do
    for spec in adjoint-100:100:adjoint maml-100:100:maml maml-10:10:maml; do
      IFS=: read -r name steps method <<< "$spec"
      $AMAML_LAB run CosMixture 50 50 "$steps" "$DEVICE" --method "$method" --meta-steps 1000 --eval-steps 5000 \
        --seed "$seed" --checkpoint-every 50 --out "$OUT/CosMixture-50-50-seeds/$name/seed$seed" --resume --quiet
    done
  done
}
cheap() {
  for d in CosMixture Alpine2D; do
    one "$d" maml-10 10 maml 1000; one "$d" fomaml 100 fomaml 1000
    one "$d" reptile 100 reptile 1000; one "$d" imaml 100 imaml 1000
  done
}
headline() {
  for d in CosMixture Alpine2D; do one "$d" adjoint-100 100 adjoint 1000; one "$d" maml-100 100 maml 1000; done
}
long() {
  one CosMixture maml-10 10 maml 5000; one CosMixture adjoint-100 100 adjoint 5000; one CosMixture maml-100 100 maml 5000
}
case "${1:-all}" in
  cheap) cheap ;; headline) headline ;; long) long ;; protocol) protocol ;; reevaluate) reevaluate ;; seeds) seeds ;;
  all) cheap; protocol; headline; long; reevaluate; seeds ;;
  *) echo "usage: $0 [cheap|headline|long|protocol|reevaluate|seeds|all]" >&2; exit 2 ;;
esac
