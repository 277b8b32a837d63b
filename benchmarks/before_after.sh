#!/usr/bin/env bash
# Issue 21's check that the redesign changed no number: the benchmark's rows and the peers table, run by the
# package before the redesign (BEFORE, a worktree at that commit) and by this tree, interleaved round by round so
# that a busy machine slows both alike; benchmarks/before_after.py then reads the fastest of each row.
#   usage: BEFORE=/path/to/worktree benchmarks/before_after.sh OUT_DIR [ROUNDS]   (from the project root)
set -euo pipefail
export OMP_NUM_THREADS=1
OUT=${1:?usage: BEFORE=worktree $0 OUT_DIR [ROUNDS]}
ROUNDS=${2:-2}
BEFORE=${BEFORE:?set BEFORE to a worktree of the commit before the redesign}
PY=${PY:-$PWD/.venv/bin/python}
AFTER=$PWD
mkdir -p "$OUT"
METHODS=maml,adjoint,adjoint-sqrt,adjoint-grid,adjoint-discrete,backsolve,fomaml,imaml
for round in $(seq 1 "$ROUNDS"); do
  for version in before after; do
    tree=$([ "$version" = before ] && echo "$BEFORE" || echo "$AFTER")
    (cd "$tree" && PYTHONPATH="$tree" "$PY" -m amaml_lab.bench --steps 10,100,1000 --methods "$METHODS" \
      --out "$OUT/bench-$version-$round.json" >/dev/null)
    (cd "$tree" && PYTHONPATH="$tree" "$PY" -m amaml_lab.bench --peers --steps 10,100 \
      --out "$OUT/peers-$version-$round.json" >/dev/null)
    echo "round $round $version done"
  done
done
"$PY" "$AFTER/benchmarks/before_after.py" "$OUT"
