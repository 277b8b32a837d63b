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

from ..io import write_json_atomic
from ..measure import CONFIGS
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
from .tables import (
    meta_step_table,
    peers_table,
    side_by_side_table,
    steps_table,
    widget_table,
)


def report(args) -> str:
    """Run the measurements, write their rows to ``args.out`` (JSON) when given, and return the header line and
    the Markdown table."""
    head, rows, table = _measured(args)
    if args.out:
        write_json_atomic(args.out, rows)
    return head + "\n" + table(rows)


def _measured(args):
    """(header line, rows, the table function) of the suite ``args`` asks for."""
    import torch

    if args.peers:
        head = (f"# torch {torch.__version__}, cpu, float64, an Alpine2D task (standardised), MLP"
                f" 2-{args.hidden}-{args.hidden}-1 tanh, {args.shots} support / {args.shots} query points, step size {args.step_size}, {torch.get_num_threads()} threads,"
                f" each row in a fresh process (fastest of {args.repeat})")
        return head, run_peers(args), peers_table
    if args.jax:
        head = (f"# torch {torch.__version__}, cpu, float64, {args.domain} {args.shots}/{args.shots}, meta-batch 5, MLP"
                f" 2 x 32 tanh, rk4 steps of 0.01, reg 1, {torch.get_num_threads()} threads, one process, rows"
                f" interleaved; a ratio: the median over {max(args.repeat, 5)} rounds of the row's time over the"
                " other's in the same round")
        return head, run_side_by_side(args), side_by_side_table
    if args.widgets:
        head = (f"# torch {torch.__version__}, cpu, {torch.get_num_threads()} threads: widget apps as the notebooks"
                f" build them with FAST = True; each control moved across its range")
        return head, widget_latencies(), widget_table
    if args.meta_step:
        head = (f"# torch {torch.__version__}, {args.device}, float64, {args.domain} {args.shots}/{args.shots},"
                f" meta-batch 5, MLP 2 x 32 tanh, rk4 steps of 0.01, reg 1, {torch.get_num_threads()} threads")
        return head, run_meta_step(args), meta_step_table
    if all(CONFIGS[n].get("images") for n in args.methods):
        task = "Conv-4 (64 filters, float32), a 5-way 1-shot episode of 28 x 28 glyphs, 15 queries a class"
    else:
        task = (f"{args.dtype}, MLP 2-{args.hidden}-{args.hidden}-1 tanh, {args.shots} support / {args.shots} query"
                " points" + (" (Conv-4 rows: a 5-way 1-shot episode, float32)" if any(
                    CONFIGS[n].get("images") for n in args.methods) else ""))
    budget = f", memory budget {args.memory_budget:,.4g} MB" if args.memory_budget is not None else ""
    head = (f"# torch {torch.__version__}, {args.device}, solver {args.solver}, {task}, "
            f"step size {args.step_size}, {torch.get_num_threads()} threads{budget}")
    return head, run_steps(args), steps_table


__all__ = ["report", "run_steps", "run_peers", "run_meta_step", "widget_latencies", "predicted_peak", "UNROLLED",
           "control_values", "steps_table", "peers_table", "meta_step_table", "widget_table"]
