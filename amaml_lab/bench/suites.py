"""The benchmark's suites: each measures its rows through :mod:`amaml_lab.measure`'s workers (one fresh process
a row, so that one measurement cannot inherit another's memory) and returns them for :mod:`.tables`."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time

from ..measure import run_worker
from ..tasks.examples import build_task
from .catalogue import META_STEP_CONFIGS


def run_peers(args) -> list[dict]:
    import torch

    from . import peers

    rows = []
    for steps in args.steps:
        # the flow's meta-gradient, once per horizon, for the rk4 rows' "vs the flow" column
        task = peers.peer_task(args.shots, args.hidden, args.seed)
        flow = os.path.join(tempfile.mkdtemp(prefix="amaml-peers-"), f"flow-{steps}.pt")
        torch.save(peers.flow_reference(task, steps, args.step_size), flow)
        lam0, lam_T = peers.curvature(task, steps, args.step_size)
        print(
            f"  steps={steps}: λmax of the support Hessian {lam0:.1f} at θ, {lam_T:.1f} at u(T):"
            f" h·λmax {args.step_size * lam_T:.2f} at T",
            file=sys.stderr,
            flush=True,
        )
        for name in peers.ROWS:
            cfg = dict(
                kind="peer",
                name=name,
                steps=steps,
                shots=args.shots,
                hidden=args.hidden,
                step_size=args.step_size,
                repeat=args.repeat,
                time_budget=args.time_budget,
                seed=args.seed,
                flow_reference=flow,
                lambda_max=[lam0, lam_T],
            )
            if not peers.available(name):
                rows.append(
                    {**cfg, "error": f'skipped: {peers.ROWS[name][0]} is not installed (pip install -e ".[peers]")'}
                )
            else:
                rows.append({**cfg, **run_worker(cfg)})
            r = rows[-1]
            r.pop("flow_reference")
            print(
                f"  {name:>40} steps={steps:>5}: "
                + (
                    f"{r['time_s']:.3f} s, {r['peak_mb']:.1f} MB, error {r['rel_error']:.1e}"
                    if "time_s" in r
                    else r["error"]
                ),
                file=sys.stderr,
                flush=True,
            )
        shutil.rmtree(os.path.dirname(flow), ignore_errors=True)
    return rows


def run_meta_step(args) -> list[dict]:
    rows = []
    for name in META_STEP_CONFIGS:  # the former loss path, training's, and training's compiled
        for losses, compiled in (("vmapped", False), ("stacked", False), ("stacked", True)):
            cfg = dict(
                kind="meta-step",
                name=name,
                losses=losses,
                compile=compiled,
                domain=args.domain,
                shots=args.shots,
                device=args.device,
                repeat=max(args.repeat, 5),
                seed=args.seed,
            )
            row = {**cfg, **run_worker(cfg)}
            rows.append(row)
            print(
                f"  {name:>12} {losses:>8}{' compiled' if compiled else ''}: "
                + (f"{row['time_s']:.3f} s" if "time_s" in row else row["error"]),
                file=sys.stderr,
                flush=True,
            )
    return rows


def run_side_by_side(args) -> list[dict]:
    """The kit (eager, compiled) beside JAX and diffrax on one meta-gradient, interleaved in one fresh process."""
    steps = args.steps[0] if len(args.steps) == 1 else 100
    cfg = dict(
        kind="side-by-side",
        domain=args.domain,
        shots=args.shots,
        steps=steps,
        seed=args.seed,
        rounds=max(args.repeat, 5),
    )
    out = run_worker(cfg)
    rows = out.get("rows") or [{"name": "side-by-side", "error": out.get("error")}]
    return [{**r, "steps": steps} for r in rows]


UNROLLED = ("maml", "conv4-maml", "head-maml")  # every state kept: memory linear in the steps


def predicted_peak(rows: list[dict], name: str, steps: int) -> float | None:
    """``name``'s peak memory (MB) at ``steps``, extrapolated along the line through its two measured rows with
    the most steps; None with fewer than two (nothing is refused before its growth is measured)."""
    done = sorted((r["steps"], r["peak_mb"]) for r in rows if r["name"] == name and "peak_mb" in r)
    if len(done) < 2:
        return None
    (n0, m0), (n1, m1) = done[-2:]
    return m1 + (m1 - m0) / (n1 - n0) * (steps - n1)


def run_steps(args) -> list[dict]:
    rows = []
    for steps in args.steps:
        for name in args.methods:
            cfg = dict(
                name=name,
                steps=steps,
                shots=args.shots,
                hidden=args.hidden,
                step_size=args.step_size,
                solver=args.solver,
                dtype=args.dtype,
                device=args.device,
                repeat=args.repeat,
                time_budget=args.time_budget,
                seed=args.seed,
            )
            if name == "maml" and args.maml_max_steps is not None and steps > args.maml_max_steps:
                rows.append({**cfg, "error": f"skipped (over --maml-max-steps {args.maml_max_steps})"})
                continue
            predicted = predicted_peak(rows, name, steps) if name in UNROLLED else None
            if args.memory_budget is not None and predicted is not None and predicted > args.memory_budget:
                rows.append(
                    {
                        **cfg,
                        "predicted_mb": predicted,
                        "error": (f"refused: {predicted:,.0f} MB predicted > the {args.memory_budget:,.4g} MB budget"),
                    }
                )
                print(f"  {name:>22} steps={steps:>6}: {rows[-1]['error']}", file=sys.stderr, flush=True)
                continue
            row = {**cfg, **run_worker(cfg)}
            rows.append(row)
            print(
                f"  {name:>22} steps={steps:>6}: "
                + (f"{row['time_s']:.3f} s, {row['peak_mb']:.1f} MB" if "time_s" in row else row["error"]),
                file=sys.stderr,
                flush=True,
            )
    return rows


def control_values(control, count: int) -> list:
    """``count`` values across a control's range, alternating ends and middle so that every move changes it.

    A slider's values are positions it can take (its min plus whole steps), as a person moving it sets them:
    the values an app computed when it was built."""
    if hasattr(control, "options") and not hasattr(control, "rows"):  # selection sliders, toggles, dropdowns
        values = [v if not isinstance(v, tuple) else v[1] for v in control.options]
    elif hasattr(control, "rows"):  # a multiple selection: drop one option after another, then all back
        keys = [v[1] if isinstance(v, tuple) else v for v in control.options]
        values = [tuple(k for k in keys if k != drop) for drop in keys] + [tuple(keys)]
    else:
        lo, hi, step = control.min, control.max, control.step
        positions = round((hi - lo) / step)
        ks = sorted({round(i * positions / (count - 1)) for i in range(count)})
        values = [round(lo + k * step, 10) for k in ks]
        if getattr(control, "base", None):  # log sliders: their value is base ** exponent
            values = [control.base**v for v in values]
        elif isinstance(control.value, int):
            values = [int(v) for v in values]
    n = len(values)
    zigzag = [values[i // 2] if i % 2 == 0 else values[n - 1 - i // 2] for i in range(n)]  # first, last, second...
    return [zigzag[i % n] for i in range(max(count, n))]


def widget_latencies(apps=None, moves: int = 10) -> list[dict]:
    """Build each widget app as notebooks do with FAST, then time ``moves`` moves of each control.

    Returns rows {app, build_s, control, moves, median_s, worst_s}; the
    CostExplorer's rows are timed once its background measurements are in
    (``ready_s``), the others right after their build.
    """
    import statistics

    from .. import widgets

    def horizon():
        return widgets.HorizonExplorer()

    def cost():
        return widgets.CostExplorer(steps_options=(10, 30, 100), shots=20, hidden=8)

    def baselines():
        support_loss, query_loss, theta = build_task(20, "float64", "cpu", 8, 0)
        return widgets.BaselineExplorer(support_loss, query_loss, theta, steps_list=(5, 20, 50))

    builders = {
        "HorizonExplorer": horizon,
        "FlowExplorer": widgets.FlowExplorer,
        "CostExplorer": cost,
        "ReconstructionExplorer": widgets.ReconstructionExplorer,
        "BaselineExplorer": baselines,
    }
    rows = []
    for name in apps or builders:
        started = time.perf_counter()
        app = builders[name]()
        build = time.perf_counter() - started
        ready = None
        if hasattr(app, "wait"):
            app.wait()
            ready = time.perf_counter() - started
        for key, control in app.controls.items():
            original = control.value
            times = []
            for value in control_values(control, 3 * moves):
                if len(times) == moves:
                    break
                if value == control.value:
                    continue
                t0 = time.perf_counter()
                control.value = value
                times.append(time.perf_counter() - t0)
            control.value = original
            rows.append(
                {
                    "app": name,
                    "build_s": build,
                    "ready_s": ready,
                    "control": key,
                    "moves": len(times),
                    "median_s": statistics.median(times),
                    "worst_s": max(times),
                }
            )
        print(f"  {name}: built in {build:.1f} s", file=sys.stderr, flush=True)
    return rows
