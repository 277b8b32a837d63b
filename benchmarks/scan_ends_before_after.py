"""What taking a first-order method's or iMAML's inner loop in one compiled graph bought (issue 36): as
``scan_before_after.py`` (a graph a step before, a ``scan`` after, which for these loops keeps only the last state),
on compiled fomaml, reptile and imaml in the paper's meta-step.

    OMP_NUM_THREADS=1 python benchmarks/scan_ends_before_after.py benchmarks/cpu-scan-ends-before-after.md
"""

from __future__ import annotations

from scan_before_after import before_and_after

if __name__ == "__main__":
    before_and_after(
        "A first-order or implicit loop in one compiled graph",
        "scan_ends_before_after.py",
        ("kit reptile (compiled)", "kit fomaml (compiled)", "kit imaml (compiled)"),
        "cpu-scan-ends-before-after.md",
    )
