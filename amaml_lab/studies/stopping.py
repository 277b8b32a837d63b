"""The image runs' stopping rule (issue 34), fixed before any of them ran, read from a run folder's evals.csv.

A run with held-out meta-train characters (``--validation-characters``) is evaluated every :data:`EVERY`
meta-steps on their episodes (``val_accuracy_mean``).  It stops at the first evaluation at which the highest
validation accuracy so far was reached :data:`PATIENCE` or more meta-steps earlier (it has not risen since), or at
:data:`CAP` meta-steps.  The θ at the stop is the one evaluated on the meta-test episodes: the rule decides how
long to train and never looks at the meta-test characters.  ``python -m amaml_lab.studies.stopping next FOLDER``
prints the meta-steps to train the run to next, or ``stop``; ``results/run_omniglot_long.sh`` loops on it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .rundir import load_run

EVERY, PATIENCE, CAP = 250, 1000, 10000


def stop_point(rows, patience: int = PATIENCE, cap: int = CAP) -> int | None:
    """The meta-step at which the rule stops, given evals rows (``meta_step``, ``val_accuracy_mean``) in order;
    None while it goes on."""
    best, best_step = -1.0, 0
    for row in rows:
        step, accuracy = int(row["meta_step"]), float(row["val_accuracy_mean"])
        if accuracy > best:
            best, best_step = accuracy, step
        if step >= cap or step - best_step >= patience:
            return step
    return None


def next_target(folder) -> str:
    """``"stop"`` where the rule has stopped the run in ``folder``, else the meta-steps to train it to next (the
    first :data:`EVERY` for a folder with no run yet)."""
    folder = Path(folder)
    if not (folder / "evals.csv").exists():
        return str(EVERY)
    rows = load_run(folder)["evals"]
    if "val_accuracy_mean" not in rows[0]:
        raise ValueError(f"{folder}/evals.csv has no val_accuracy_mean: run it with --validation-characters")
    done = int(rows[-1]["meta_step"])
    return "stop" if stop_point(rows) is not None else str(done - done % EVERY + EVERY)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "next":
        print("usage: python -m amaml_lab.studies.stopping next FOLDER", file=sys.stderr)
        return 2
    try:
        print(next_target(argv[1]))
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))


__all__ = ["CAP", "EVERY", "PATIENCE", "next_target", "stop_point"]
