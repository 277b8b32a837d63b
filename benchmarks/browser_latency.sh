#!/usr/bin/env bash
# The widget apps' latency in JupyterLab + Chromium (tests/integration/test_browser.py): from each input event to the app's
# plotly graph drawn with new data, every control of every app; the table is appended, as Markdown, to
# $AMAML_LAB_LATENCY (default benchmarks/browser-latency.md).
#
#   PAUSE_MATCH='amaml_lab run' NOTE="quiet: ..." benchmarks/browser_latency.sh [command ...]
#
# PAUSE_MATCH (optional): a pattern for pgrep -f; the processes it finds (looked up afresh each time, so a
# process started in between counts too) are paused (SIGSTOP) while the test measures, that is while the file
# $AMAML_LAB_MEASURING exists (the test creates it around each notebook's measurements, not while notebooks
# run), and to resume (SIGCONT) right after; never longer than 9 minutes in a row, and always resumed when this
# script exits (an INT or TERM included; a KILL cannot be trapped: do not send one).  NOTE (optional) is written
# in the table's header line.  Without a command it runs
#   python -m pytest -q -p no:cacheprovider tests/integration/test_browser.py
set -u

# the whole script is one function, read before it runs: editing the file during a run cannot derail it
main() {
    cd "$(dirname "$0")/.."
    export OMP_NUM_THREADS=1
    export AMAML_LAB_LATENCY="${AMAML_LAB_LATENCY:-benchmarks/browser-latency.md}"
    export AMAML_LAB_LATENCY_NOTE="${NOTE:-}"
    export AMAML_LAB_MEASURING="${TMPDIR:-/tmp}/amaml-lab-measuring.$$"
    match="${PAUSE_MATCH:-}"
    pids=
    paused=0
    since=0
    rm -f "$AMAML_LAB_MEASURING"

    resume() {
        if [ -n "$pids" ] && [ "$paused" = 1 ]; then
            kill -CONT $pids 2>/dev/null
            echo "browser_latency: resumed $pids after $((SECONDS - since)) s" >&2
        fi
        paused=0
    }
    trap 'resume; rm -f "$AMAML_LAB_MEASURING"' EXIT
    child=
    trap 'resume; [ -n "$child" ] && kill "$child" 2>/dev/null; exit 130' INT TERM HUP

    if [ $# -eq 0 ]; then
        set -- .venv/bin/python -m pytest -q -p no:cacheprovider tests/integration/test_browser.py
    fi
    "$@" &
    child=$!
    held_too_long=0
    while kill -0 "$child" 2>/dev/null; do
        if [ -n "$match" ] && [ -e "$AMAML_LAB_MEASURING" ] && [ "$held_too_long" = 0 ]; then
            if [ "$paused" = 0 ]; then
                pids="$(pgrep -d ' ' -f "$match" | tr ' ' '\n' | grep -vx "$$" | tr '\n' ' ')"
                if [ -n "${pids// /}" ]; then
                    kill -STOP $pids 2>/dev/null
                    paused=1
                    since=$SECONDS
                    echo "browser_latency: paused $pids" >&2
                fi
            elif [ $((SECONDS - since)) -ge 540 ]; then
                resume
                held_too_long=1
                echo "browser_latency: 9 minutes paused; the rest of this notebook is measured busy" >&2
            fi
        elif [ ! -e "$AMAML_LAB_MEASURING" ]; then
            resume
            held_too_long=0
        fi
        sleep 0.2
    done
    wait "$child"
    status=$?
    resume
    exit $status
}

main "$@"
