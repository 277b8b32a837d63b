"""What calling ATen's tanh in the compiled CPU graphs bought (issue 36): :mod:`change_before_after` with inductor's own
tanh before (``compiled.ATEN_TANH = False``) and ATen's after, the kit's compiled discrete adjoint and compiled maml.

    OMP_NUM_THREADS=1 python benchmarks/tanh_before_after.py benchmarks/cpu-tanh-before-after.md
"""

from __future__ import annotations

import sys

from change_before_after import compare

if __name__ == "__main__":
    compare(
        "ATen's tanh in the compiled CPU graphs",
        "benchmarks/tanh_before_after.py benchmarks/cpu-tanh-before-after.md",
        {"before": "compiled.ATEN_TANH = False", "after": "compiled.ATEN_TANH = True"},
        ("tanh", "compiled.tanh_kernel()"),
        ("kit adjoint discrete (compiled)", "kit maml (compiled)"),
        sys.argv[1] if len(sys.argv) > 1 else "benchmarks/cpu-tanh-before-after.md",
    )
