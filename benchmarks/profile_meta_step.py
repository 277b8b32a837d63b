"""Where the compiled exact meta-step's time goes, on this CPU (issue 36): the paper's meta-step (CosMixture2D 50/50,
meta-batch 5, 2-32-32-1 tanh MLP, float64, 100 rk4 steps of 0.01, reg 1), one thread.

* the whole meta-step, interleaved rounds: the kit's compiled maml and discrete adjoint (the same gradient) and,
  where the ``[jax]`` extra is installed, JAX ``jit`` with ``jax.checkpoint`` on the step;
* one call of each graph the discrete adjoint makes 100 of (a forward step, a step's pullback), and of a trivial
  graph (what a call costs before any arithmetic);
* the kernels inside those two graphs (torch.profiler with inductor's kernel profiling, the graphs compiled
  without the C++ wrapper so that the profiler sees each kernel): each kernel's share of the graph's time;
* a candidate: the pullbacks of ``CHUNK`` steps in one graph, each chunk's steps recomputed from its first state
  inside the graph (rematerialised, as JAX's checkpoint does), per step against one pullback a graph.

    OMP_NUM_THREADS=1 python benchmarks/profile_meta_step.py benchmarks/cpu-profile-meta-step.md

Quiet the machine first (other processes stopped): the numbers are times, and the table says when it ran.
"""

from __future__ import annotations

import platform
import statistics
import sys
import time

import torch

from amaml_lab import compiled
from amaml_lab.bench import peers_jax
from amaml_lab.bench.side_by_side import KIT_ROWS, jax_fn, kit_fn
from amaml_lab.io import write_text_atomic

CFG = dict(domain="CosMixture2D", shots=50, steps=100, seed=0)
ROUNDS, CHUNK = 12, 10


def best_of(fn, reps: int) -> float:
    """The median of ``reps`` timed calls after two warm ones (seconds)."""
    fn()
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def graph_arguments(fn) -> dict:
    """{graph function name: the arguments of its first call} during one discrete-adjoint meta-step."""
    seen, real = {}, compiled.run

    def spy(graph, *args):
        seen.setdefault(graph.__name__, args)
        return real(graph, *args)

    compiled.run = spy
    try:
        fn()
    finally:
        compiled.run = real
    return seen


def pullback_steps(loss, solver, u, a, times, theta, reg, mask):
    """The transposes of ``len(times) - 1`` steps from ``u`` in one graph, the steps recomputed inside it."""

    def steps(x, th):
        for k in range(times.shape[0] - 1):
            x = compiled.forward_step(loss, solver, x, times[k], times[k + 1], th, reg, mask)
        return x

    _, back = torch.func.vjp(steps, u, theta)
    return back(a)


def meta_step_rows() -> list[str]:
    fns = {name: kit_fn(CFG, *KIT_ROWS[name])[0] for name in ("kit maml (compiled)", "kit adjoint discrete (compiled)")}
    _, theta, batch, run_cfg = kit_fn(CFG, *KIT_ROWS["kit maml (compiled)"])
    if peers_jax.available() is None:
        fns["jax-jit-checkpoint"] = jax_fn("jax-jit-checkpoint", theta, batch, run_cfg)
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(ROUNDS):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    peer = times.get("jax-jit-checkpoint")
    rows = ["| meta-step | median (s) | / jax-jit-checkpoint, per round |", "|---|---:|---:|"]
    for name, t in times.items():
        ratio = f"{statistics.median(a / b for a, b in zip(t, peer)):.2f}" if peer else "(JAX not installed)"
        rows.append(f"| {name} | {statistics.median(t):.3f} | {ratio} |")
    return rows


def graph_rows(args: dict) -> list[str]:
    fwd, back = args["forward_step"], args["pullback"]
    x = torch.randn(5925, dtype=torch.float64)
    trivial = torch.compile(lambda v: v * 2 + 1, fullgraph=True, dynamic=False, options=compiled.OPTIONS["cpu"])
    loss, solver, u, a, t0, t1, theta, reg, mask = back
    times = torch.stack([t0 + k * (t1 - t0) for k in range(CHUNK + 1)])
    chunked = torch.compile(pullback_steps, fullgraph=True, dynamic=False, options=compiled.OPTIONS["cpu"])
    start = time.perf_counter()
    chunked(loss, solver, u, a, times, theta, reg, mask)
    first = time.perf_counter() - start
    one = {
        "a trivial graph (v * 2 + 1)": best_of(lambda: trivial(x), 200),
        "forward_step (one rk4 step of the 5 tasks)": best_of(lambda: compiled.run(compiled.forward_step, *fwd), 50),
        "pullback (one step's transpose, its stages recomputed)": best_of(
            lambda: compiled.run(compiled.pullback, *back), 50
        ),
    }
    per_step = best_of(lambda: chunked(loss, solver, u, a, times, theta, reg, mask), 10) / CHUNK
    rows = ["| graph call | ms |", "|---|---:|"] + [f"| {k} | {v * 1e3:.3f} |" for k, v in one.items()]
    label = f"pullback of {CHUNK} steps in one graph, per step (first call {first:.0f} s)"
    rows.append(f"| {label} | {per_step * 1e3:.3f} |")
    return rows


def kernel_rows(args: dict) -> list[str]:
    """Each graph's kernels by self time, compiled without the C++ wrapper, with inductor's kernel profiling."""
    import torch._inductor.config as inductor
    from torch.profiler import ProfilerActivity, profile

    inductor.cpp.enable_kernel_profile = True
    rows = ["| graph | kernel or op | calls a graph call | share of the graph's time |", "|---|---|---:|---:|"]
    for name, fn in (("forward_step", compiled.forward_step), ("pullback", compiled.pullback)):
        graph = torch.compile(fn, fullgraph=True, dynamic=False)
        for _ in range(3):
            graph(*args[name])
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(20):
                graph(*args[name])
        events = [e for e in prof.key_averages() if not e.key.startswith(("## Call", "Torch-Compiled"))]
        total = sum(e.self_cpu_time_total for e in events)
        for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:8]:
            key = e.key if len(e.key) < 60 else e.key[:57] + "..."
            rows.append(f"| {name} | `{key}` | {e.count / 20:g} | {e.self_cpu_time_total / total:.0%} |")
    return rows


def main(out: str) -> None:
    torch.set_num_threads(1)
    fn = kit_fn(CFG, *KIT_ROWS["kit adjoint discrete (compiled)"])[0]
    args = graph_arguments(fn)
    parts = [
        f"# The compiled exact meta-step, profiled: {time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, "
        f"torch {torch.__version__}, one thread\n",
        "Command: `OMP_NUM_THREADS=1 python benchmarks/profile_meta_step.py benchmarks/cpu-profile-meta-step.md`"
        " (its docstring says what each table measures).\n",
        "\n".join(meta_step_rows()),
        "\n".join(graph_rows(args)),
        "\n".join(kernel_rows(args)),
    ]
    write_text_atomic(out, "\n\n".join(parts) + "\n")
    print(open(out).read())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/cpu-profile-meta-step.md")
