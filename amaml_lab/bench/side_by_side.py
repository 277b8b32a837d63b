"""The kit's meta-gradient beside JAX's and diffrax's on exactly the same meta-step, timed interleaved.

One process, one thread: the paper's setting (a synthetic domain, meta-batch 5, the 2-32-32-1 tanh MLP, float64,
``steps`` rk4 steps, the run's reg), one theta and one meta-batch for every row.  Each row's first call is timed
alone (compiling, where it compiles); then ``rounds`` rounds time every row once each, in turn, so a busy moment
slows them alike; a row's ``time_s`` is its median, ``ratio`` the median over rounds of its time over the kit's
eager adjoint in the same round, ``rel_error`` its gradient's distance to the kit's eager maml (back-propagation
through the same steps).
"""

from __future__ import annotations

import statistics
import time

from . import peers_jax

KIT_ROWS = {  # name: (method, compiled, options)
    "kit maml": ("maml", False, {}),
    "kit adjoint": ("adjoint", False, {}),
    "kit maml (compiled)": ("maml", True, {}),
    "kit adjoint (compiled)": ("adjoint", True, {}),
    # the discrete adjoint: maml's gradient exactly, each step's pullback one compiled graph that recomputes the
    # step's stages from the stored state (rematerialised), where maml's backward keeps them
    "kit adjoint discrete (compiled)": ("adjoint", True, {"scheme": "discrete"}),
}


def kit_fn(cfg: dict, method: str, compiled: bool, options: dict):
    """``f() -> flat meta-gradient`` of the kit on the side-by-side's theta and batch, and (theta, batch)."""
    import torch

    from ..tasks.domains import load_domain
    from ..training.builders import build_model, losses_for, on_device
    from ..training.config import RunConfig
    from ..training.train import batch_gradient

    run_cfg = (
        RunConfig(
            domain=cfg["domain"],
            shots=cfg["shots"],
            query=cfg["shots"],
            inner_steps=cfg["steps"],
            method=method,
            seed=cfg["seed"],
            compile=compiled,
            options=dict(options),
        )
        .resolved()
        .check()
    )
    torch.manual_seed(cfg["seed"])
    domain = load_domain(run_cfg.domain, run_cfg.shots, run_cfg.query)
    model = build_model(run_cfg, domain.in_features)
    theta = {k: v.detach().clone() for k, v in model.named_parameters()}
    support, query = domain.train_batch(
        torch.Generator().manual_seed(cfg["seed"]), run_cfg.meta_batch, run_cfg.shots, run_cfg.query
    )
    support, query = on_device(support, run_cfg), on_device(query, run_cfg)
    losses = losses_for(run_cfg, model)

    def run():
        grad, _, _ = batch_gradient(run_cfg, model, theta, support, query, losses, stacked=True)
        return torch.cat([grad[k].reshape(-1) for k in theta])

    return run, theta, (support, query), run_cfg


def jax_fn(peer: str, theta, batch, run_cfg):
    import jax
    import numpy as np

    fn, flat = peers_jax.gradient_fn(
        peer,
        {k: v.numpy() for k, v in theta.items()},
        steps=run_cfg.inner_steps,
        step_size=run_cfg.step_size,
        reg=run_cfg.reg,
    )
    args = [jax.numpy.asarray(flat)] + [jax.numpy.asarray(t.numpy()) for t in (*batch[0], *batch[1])]

    def run():
        return np.asarray(jax.block_until_ready(fn(*args)))

    return run


def _paired(times: list, peer: list) -> float:
    """The median over rounds of a row's time over another's in the same round."""
    return statistics.median(a / b for a, b in zip(times, peer))


def measure_side_by_side(cfg: dict) -> dict:
    """Rows {name, first_s, time_s, ratio, vs, rel_error} (or {name, error}) for the kit's rows and the JAX peers
    (``cfg["rows"]``: the names to run, default all)."""
    import numpy as np
    import torch

    chosen = cfg.get("rows") or [*KIT_ROWS, *peers_jax.PEERS]  # "kit maml" and "kit adjoint" always run
    kit = [n for n in KIT_ROWS if n in chosen or n in ("kit maml", "kit adjoint")]
    fns = {}
    for name in kit:
        fns[name], theta, batch, run_cfg = kit_fn(cfg, *KIT_ROWS[name])
    missing = peers_jax.available()
    peers = [n for n in peers_jax.PEERS if n in chosen]
    rows = {name: {"name": name} for name in (*kit, *peers)}
    for peer in peers:
        if missing is None:
            fns[peer] = jax_fn(peer, theta, batch, run_cfg)
        else:
            rows[peer]["error"] = f"skipped: {missing}"
    grads = {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        g = fn()
        grads[name] = g.detach().numpy() if torch.is_tensor(g) else np.array(g, dtype=np.float64)
        rows[name]["first_s"] = time.perf_counter() - t0
    times = {name: [] for name in fns}
    for _ in range(cfg["rounds"]):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    ref = grads["kit maml"]
    for name in fns:
        rows[name].update(
            time_s=statistics.median(times[name]),
            ratio=_paired(times[name], times["kit adjoint"]),
            rel_error=float(np.linalg.norm(grads[name] - ref) / np.linalg.norm(ref)),
            vs={peer: _paired(times[name], times[peer]) for peer in peers if peer in times},
        )
        rows[name]["compile_s"] = max(rows[name]["first_s"] - rows[name]["time_s"], 0.0)
    return {"rows": list(rows.values())}


__all__ = ["KIT_ROWS", "jax_fn", "kit_fn", "measure_side_by_side"]
