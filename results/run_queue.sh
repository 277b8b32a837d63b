#!/usr/bin/env bash
# Every long CPU run still to do, in order, two at a time, each on one thread: issue 33's (run_directions.sh long),
# then issue 34's headline pair (run_paper_length.sh pair), its image runs (run_omniglot_long.sh) and its other
# methods (run_paper_length.sh others).  Each phase resumes where it stopped and skips what is done, so this is what
# to restart first when work resumes (AMAML_LAB and PYTHON pointing at a frozen copy of the package; see
# run_directions.sh).
#   usage: results/run_queue.sh [list], from the project root.
set -euo pipefail
here=$(dirname "$0")
if [ "${1:-}" = list ]; then
  "$here/run_directions.sh" list; "$here/run_paper_length.sh" list; "$here/run_omniglot_long.sh" list
  exit 0
fi
[ $# -eq 0 ] || { echo "usage: $0 [list]" >&2; exit 2; }
"$here/run_directions.sh" long
"$here/run_paper_length.sh" pair
"$here/run_omniglot_long.sh" all
"$here/run_paper_length.sh" others
