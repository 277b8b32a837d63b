"""``amaml-lab bench``'s body: run the suite its arguments ask for, write the rows, return the table."""

from __future__ import annotations

from ..io import write_json_atomic
from .catalogue import CONFIGS
from .suites import run_meta_step, run_peers, run_side_by_side, run_steps, widget_latencies
from .tables import meta_step_table, peers_table, side_by_side_table, steps_table, widget_table


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
        head = (
            f"# torch {torch.__version__}, cpu, float64, an Alpine2D task (standardised), MLP"
            f" 2-{args.hidden}-{args.hidden}-1 tanh, {args.shots} support / {args.shots} query points,"
            f" step size {args.step_size}, {torch.get_num_threads()} threads,"
            f" each row in a fresh process (fastest of {args.repeat})"
        )
        return head, run_peers(args), peers_table
    if args.jax:
        head = (
            f"# torch {torch.__version__}, cpu, float64, {args.domain} {args.shots}/{args.shots}, meta-batch 5, MLP"
            f" 2 x 32 tanh, rk4 steps of 0.01, reg 1, {torch.get_num_threads()} threads, one process, rows"
            f" interleaved; a ratio: the median over {max(args.repeat, 5)} rounds of the row's time over the"
            " other's in the same round"
        )
        return head, run_side_by_side(args), side_by_side_table
    if args.widgets:
        head = (
            f"# torch {torch.__version__}, cpu, {torch.get_num_threads()} threads: widget apps as the notebooks"
            f" build them with FAST = True; each control moved across its range"
        )
        return head, widget_latencies(), widget_table
    if args.meta_step:
        head = (
            f"# torch {torch.__version__}, {args.device}, float64, {args.domain} {args.shots}/{args.shots},"
            f" meta-batch 5, MLP 2 x 32 tanh, rk4 steps of 0.01, reg 1, {torch.get_num_threads()} threads"
        )
        return head, run_meta_step(args), meta_step_table
    if all(CONFIGS[n].get("images") for n in args.methods):
        task = "Conv-4 (64 filters, float32), a 5-way 1-shot episode of 28 x 28 glyphs, 15 queries a class"
    else:
        task = (
            f"{args.dtype}, MLP 2-{args.hidden}-{args.hidden}-1 tanh, {args.shots} support / {args.shots} query"
            " points"
            + (
                " (Conv-4 rows: a 5-way 1-shot episode, float32)"
                if any(CONFIGS[n].get("images") for n in args.methods)
                else ""
            )
        )
    budget = f", memory budget {args.memory_budget:,.4g} MB" if args.memory_budget is not None else ""
    head = (
        f"# torch {torch.__version__}, {args.device}, solver {args.solver}, {task}, "
        f"step size {args.step_size}, {torch.get_num_threads()} threads{budget}"
    )
    return head, run_steps(args), steps_table
