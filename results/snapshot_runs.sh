#!/usr/bin/env bash
# Stage the long runs' folders as they are now (results/horizon: the rate selection, the runs to 5,000 meta-steps,
# the diagnosis) and the tables made from exactly what was staged, for a commit while the runs go on: the tables
# are rebuilt by make_figures.py --tables from a copy of git's index, so they match the committed folders even as
# the running processes write newer checkpoints.  Run from the project root; then `git commit`.
set -euo pipefail
git add results/horizon
snap=$(mktemp -d)
trap 'rm -rf "$snap"' EXIT
git checkout-index -a --prefix="$snap/"
PYTHON=${PYTHON:-python}
(cd "$snap" && "$PYTHON" results/make_figures.py results --tables >/dev/null)
cp "$snap/results/horizon/directions.md" results/horizon/directions.md
git add results/horizon/directions.md
echo "staged results/horizon and its tables (from the staged folders)"
