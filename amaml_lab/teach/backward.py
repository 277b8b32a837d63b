"""Notebook 03's computations: why the state cannot be run backward, and what storing it instead costs.

* the state rebuilt by running the flow backward from u(T), on the closed-form quadratic (:func:`reconstruction`,
  :func:`reconstruction_grid` for the explorer, :func:`reconstruction_sweep` for the figure);
* the back-solved adjoint's gradient error as the horizon grows (:func:`backsolve_sweep`), and the checkpointed
  adjoint's memory and time (:func:`checkpoint_costs`).
"""

from __future__ import annotations

import warnings

import torch

from ..checks import check_choice
from ..flow import FIXED_SOLVERS, GradientFlow, solve, step_function, time_grid
from ..functional import Derivatives, flat_grad, relative_error
from ..metagrad import BacksolveWarning, meta_gradient
from .surfaces import DT, QuadraticTask


# ---------------------------------------------------------------- running the state backward
def reconstruction(task: QuadraticTask, horizon: float, steps: int, solver: str = "rk4"):
    """The true u(t) (forward) and the state rebuilt by running the flow backward from u(T).

    Returns {"t": (steps+1,), "forward": (steps+1, n), "backward": (steps+1, n),
    "error": |u_back(0) - theta| / |theta|}.
    Backward in time the flow's contraction e^{-At} becomes growth e^{+At}: every
    rounding error in u(T) is amplified by about e^{lambda_max T}.
    """
    d = Derivatives(task.support_loss)
    flow = GradientFlow(d, task.theta, 0.0)
    grid = time_grid(steps, horizon / steps, DT, task.theta.device)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        forward = solve(flow, task.theta, grid, range(steps + 1), solver)
        backward = solve(flow, forward[-1], grid.flip(0), range(steps + 1), solver).flip(0)
    err = relative_error(backward[0], task.theta) if torch.isfinite(backward[0]).all() else float("inf")
    return {"t": grid, "forward": forward, "backward": backward, "error": err}


def reconstruction_grid(lam_max_values, horizons, steps: int = 200, n: int = 6, seed: int = 0, solver: str = "rk4"):
    """:func:`reconstruction` for every (lam_max, horizon) of the :class:`QuadraticTask` (``n``, ``seed``) with
    eigenvalues spread over (0.2, lam_max), all loops stepped side by side.

    Returns {"lam_max": [L], "horizon": [H], "t": (H, steps + 1), "forward" and "backward": (steps + 1, L, H, n),
    "error": (L, H)}.  :func:`reconstruction`'s arithmetic (the rebuilt u(0) is rounding amplified by about
    e^(lam_max T), so any other arithmetic would change its digits): the same time grids and solver steps, and
    the support gradient as autograd computes it, (r/2) A + (A r)/2 with r = u - c, the products A r one loop at
    a time (a batched product rounds differently).  Bit for bit where the CPU's autograd kernels round as these
    products do; on others a state's last bit differs and the rebuilt u(0)'s error agrees within a factor 2.
    """
    check_choice("solver", solver, FIXED_SOLVERS)
    lams = [float(v) for v in lam_max_values]
    horizons = [float(v) for v in horizons]
    tasks = [QuadraticTask(n=n, eig=(0.2, lam), seed=seed) for lam in lams]
    base = tasks[0]  # c and theta do not depend on the eigenvalues
    A = torch.stack([t.A for t in tasks]).repeat_interleave(len(horizons), 0)  # row i * H + j: (lam_i, T_j)
    grids = torch.stack([time_grid(steps, T / steps, DT) for T in horizons])
    times = grids.repeat(len(lams), 1)
    matrices, product = A.unbind(0), torch.empty(len(A), n, dtype=DT)
    products = product.unbind(0)

    def field(t, u):  # -grad L_S(u), the arithmetic of Derivatives(task.support_loss).grad
        r = u - base.c
        half = 0.5 * r
        rows = half[:, :1] * A[:, 0]
        for i in range(1, n):  # (r/2) A, summed in the order the vector-matrix kernel sums
            rows = rows + half[:, i : i + 1] * A[:, i]
        for a, v, out in zip(matrices, r.unbind(0), products):
            torch.mv(a, v, out=out)
        return -(rows + 0.5 * product)

    step = step_function(solver)

    def run(y, grid):
        states = [y]
        for k in range(steps):
            y = step(field, grid[:, k : k + 1], grid[:, k + 1 : k + 2], y)
            states.append(y)
        return torch.stack(states)

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        forward = run(base.theta.expand(len(A), n).clone(), times)
        backward = run(forward[-1], times.flip(1)).flip(0)
    error = [relative_error(u, base.theta) if torch.isfinite(u).all() else float("inf") for u in backward[0]]
    shape = (steps + 1, len(lams), len(horizons), n)
    return {
        "lam_max": lams,
        "horizon": horizons,
        "t": grids,
        "forward": forward.reshape(shape),
        "backward": backward.reshape(shape),
        "error": torch.tensor(error, dtype=DT).reshape(len(lams), len(horizons)),
    }


def reconstruction_sweep(lam_max_values, horizon: float = 2.0, steps: int = 200, n: int = 6, seed: int = 0):
    """Rows {lam_max, lam_T, error}: how far the backward-rebuilt u(0) lands from theta as lambda_max T grows."""
    rows = []
    for lam_max in lam_max_values:
        task = QuadraticTask(n=n, eig=(0.2, float(lam_max)), seed=seed)
        err = reconstruction(task, horizon, steps)["error"]
        rows.append({"lam_max": float(lam_max), "lam_T": float(lam_max) * horizon, "error": err})
    return rows


def backsolve_sweep(
    support_loss, query_loss, theta, steps_list, step_size: float = 0.01, checkpoints: int = 8, solver: str = "rk4"
):
    """Meta-gradient errors against maml's as the horizon grows, for the back-solved and the stored adjoints.

    Rows {steps, horizon, backsolve, adjoint, checkpointed, reconstruction_error}:
    relative errors to back-propagation through the same steps.  On a nonlinear
    task the Hessian depends on the state, so a wrong rebuilt state gives a
    wrong gradient; the stored (or ``checkpoints``-checkpointed) adjoint reads
    the true states and stays at the scheme's error.  (On a quadratic the
    Hessian is constant and back-solving's gradient survives even when its
    state does not: see :func:`reconstruction_sweep`.)
    """
    rows = []
    for steps in steps_list:
        kw = dict(steps=steps, step_size=step_size, solver=solver)
        ref = flat_grad(meta_gradient(support_loss, query_loss, theta, method="maml", **kw).grad)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BacksolveWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            b = meta_gradient(support_loss, query_loss, theta, method="backsolve", **kw)
        g = flat_grad(b.grad)
        row = {
            "steps": steps,
            "horizon": steps * step_size,
            "backsolve": relative_error(g, ref) if torch.isfinite(g).all() else float("inf"),
            "reconstruction_error": b.stats.get("reconstruction_error", float("nan")),
        }
        row["adjoint"] = relative_error(
            flat_grad(meta_gradient(support_loss, query_loss, theta, method="adjoint", **kw).grad), ref
        )
        row["checkpointed"] = relative_error(
            flat_grad(
                meta_gradient(support_loss, query_loss, theta, method="adjoint", checkpoints=checkpoints, **kw).grad
            ),
            ref,
        )
        rows.append(row)
    return rows


def checkpoint_costs(
    support_loss,
    query_loss,
    theta,
    steps_list,
    step_size: float = 0.01,
    checkpoints: int = 8,
    solver: str = "rk4",
    schemes=("continuous", "grid"),
):
    """What storing, ``checkpoints`` states and ``"sqrt"`` cost the adjoint, for each scheme and number of steps.

    Rows {steps, scheme, and for each of "stored", "c" (``checkpoints``) and "sqrt": states (the most held at
    once), evals (support-gradient evaluations), repetitions (how often the busiest step is advanced), and
    "difference": the largest relative difference of the checkpointed gradients to the stored one}.
    """
    rows = []
    for steps in steps_list:
        for scheme in schemes:
            kw = dict(method="adjoint", scheme=scheme, steps=steps, step_size=step_size, solver=solver)
            runs = {
                name: meta_gradient(support_loss, query_loss, theta, checkpoints=c, **kw)
                for name, c in (("stored", None), ("c", checkpoints), ("sqrt", "sqrt"))
            }
            row = {"steps": steps, "scheme": scheme}
            for name, r in runs.items():
                row[name] = {
                    "states": r.stats["stored_states"],
                    "evals": r.stats["grad_evals"],
                    "repetitions": r.stats["repetitions"],
                }
            stored = flat_grad(runs["stored"].grad)
            row["difference"] = max(relative_error(flat_grad(runs[n].grad), stored) for n in ("c", "sqrt"))
            rows.append(row)
    return rows
