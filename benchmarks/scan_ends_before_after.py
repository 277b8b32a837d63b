"""What taking a first-order method's or iMAML's inner loop in one compiled graph bought (issue 36): as
``scan_before_after.py`` (a graph a step before, a ``scan`` after, which for these loops keeps only the last state),
on compiled fomaml, reptile and imaml in the paper's meta-step.

    OMP_NUM_THREADS=1 python benchmarks/scan_ends_before_after.py benchmarks/cpu-scan-ends-before-after.md
"""

from __future__ import annotations

import sys

from change_before_after import compare
from scan_before_after import BEFORE

if __name__ == "__main__":
    compare(
        "A first-order or implicit loop in one compiled graph",
        "benchmarks/scan_ends_before_after.py benchmarks/cpu-scan-ends-before-after.md",
        {"before": BEFORE, "after": ""},
        ("steps", "'a scan a solve' if hasattr(compiled.CompiledDerivatives, 'pullbacks') else 'a graph a step'"),
        ("kit reptile (compiled)", "kit fomaml (compiled)", "kit imaml (compiled)"),
        sys.argv[1] if len(sys.argv) > 1 else "benchmarks/cpu-scan-ends-before-after.md",
    )
