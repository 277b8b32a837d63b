"""Time and peak memory of one meta-gradient against the number of inner steps.

    python -m amaml_lab.bench [--steps 10,100,1000,10000] [--methods maml,adjoint,adjoint-sqrt] ...

Every (method, steps) pair runs in a fresh Python process, after a two-step
warm-up, so that one measurement cannot inherit another's memory.  Peak memory
is the working memory of the call: on CUDA ``torch.cuda.max_memory_allocated``
above what was allocated before it; on the CPU the peak of the bytes the C heap
has handed out (glibc's ``mallinfo2``: tensors and Python objects, not
allocator slack) above the level before the call, sampled every millisecond.
Times are wall-clock seconds, the fastest of ``--repeat`` runs made without
the memory sampler (timings on a shared 2-core machine vary by tens of
percent from run to run; the fastest is the steadiest).  Nothing here
is asserted in a test: it prints a table.
"""

from __future__ import annotations

from .catalogue import CONFIGS, META_STEP_CONFIGS
from .report import report
from .suites import (
    UNROLLED,
    control_values,
    predicted_peak,
    run_meta_step,
    run_peers,
    run_side_by_side,
    run_steps,
    widget_latencies,
)
from .tables import meta_step_table, peers_table, side_by_side_table, steps_table, widget_table

__all__ = [
    "CONFIGS",
    "META_STEP_CONFIGS",
    "report",
    "run_steps",
    "run_peers",
    "run_meta_step",
    "run_side_by_side",
    "widget_latencies",
    "predicted_peak",
    "UNROLLED",
    "control_values",
    "steps_table",
    "peers_table",
    "meta_step_table",
    "side_by_side_table",
    "widget_table",
]
