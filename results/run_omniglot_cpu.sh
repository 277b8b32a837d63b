#!/usr/bin/env bash
# The Omniglot tables in results/README.md: 5-way 1-shot and 5-shot on the official small subsets
# (images_background_small1 for meta-training, images_background_small2 for meta-test) on this 2-core CPU,
# 100 meta-steps of meta-batch 4 (MAML and iMAML ran tens of thousands with meta-batch 32), 10 inner
# gradient-descent (euler) steps of 0.1, then the Conv-4 benchmark with long inner loops. Run from the project root.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
DATA_ROOT=${DATA_ROOT:-../shared/data/omniglot}
for shots in 1 5; do
  amaml-lab compare Omniglot "$shots" 15 10 cpu --ways 5 --methods maml,fomaml,reptile,imaml,adjoint,comln \
    --solver euler --meta-steps 100 --meta-batch 4 --checkpoint-every 20 --data-root "$DATA_ROOT" \
    --out "results/omniglot-cpu/5way-${shots}shot" --quiet
done
python -m amaml_lab.bench --steps 10,100,1000 --solver euler --repeat 1 \
  --methods conv4-maml,conv4-adjoint,conv4-adjoint-sqrt,conv4-fomaml,conv4-imaml \
  --out results/omniglot-cpu/bench-conv4.json | tee results/omniglot-cpu/bench-conv4.md
