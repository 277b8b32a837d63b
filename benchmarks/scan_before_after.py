"""What taking many steps in one compiled graph bought (issue 36): :mod:`change_before_after` with a graph a step before
(``CompiledDerivatives`` without its many-step methods, ``steps`` and ``pullbacks``: the forward solve and the
discrete adjoint's sweep call one graph a step, 2 x 100 calls a task batch) and a ``scan`` of them after (two
calls); the compiled discrete adjoint, the compiled continuous adjoint (its forward solve is the scan) and compiled
maml (which back-propagates through the steps' graphs, so it is not changed: the control).

    OMP_NUM_THREADS=1 python benchmarks/scan_before_after.py benchmarks/cpu-scan-before-after.md
"""

from __future__ import annotations

import sys

from change_before_after import compare

BEFORE = "from amaml_lab.compiled import CompiledDerivatives as D\ndel D.steps, D.pullbacks"
PROBE = ("steps", "'a scan a solve' if hasattr(compiled.CompiledDerivatives, 'pullbacks') else 'a graph a step'")


def before_and_after(title: str, script: str, rows, table: str) -> None:
    """``rows`` with a graph a step (before) and the scans (after), into ``table`` (or the command line's)."""
    compare(
        title,
        f"benchmarks/{script} benchmarks/{table}",
        {"before": BEFORE, "after": ""},
        PROBE,
        rows,
        sys.argv[1] if len(sys.argv) > 1 else f"benchmarks/{table}",
    )


if __name__ == "__main__":
    before_and_after(
        "Many steps in one compiled graph",
        "scan_before_after.py",
        ("kit adjoint discrete (compiled)", "kit adjoint (compiled)", "kit maml (compiled)"),
        "cpu-scan-before-after.md",
    )
