"""The computations behind the notebooks: plain functions returning plain data (figures live in :mod:`viz`).

* 2-D loss surfaces and the inner loop on them (:func:`inner_paths`);
* a quadratic task whose flow and meta-gradient have closed forms (:class:`QuadraticTask`);
* the adjoint against back-propagation as the steps grow (:func:`agreement`),
  the continuous scheme's order (:func:`scheme_order`);
* why the state cannot be run backward (:func:`reconstruction`, :func:`backsolve_sweep`);
* every baseline against the exact meta-gradient (:func:`baseline_methods` for :func:`compare_methods`).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch

from .checks import check_choice
from .flow import FIXED_SOLVERS, GradientFlow, solve, time_grid, trajectory
from .functional import Derivatives, flat_grad, relative_error
from .metagrad import BacksolveWarning, meta_gradient

DT = torch.float64


# ---------------------------------------------------------------- 2-D loss surfaces
def _quadratic(u):
    a = torch.tensor([[4.0, 3.5], [3.5, 4.0]], dtype=u.dtype, device=u.device)  # eigenvalues 0.5 and 7.5
    return 0.5 * torch.einsum("...i,ij,...j->...", u, a, u)


def _valley(u):
    return (1 - u[..., 0]) ** 2 + 5 * (u[..., 1] - u[..., 0] ** 2) ** 2


def _wells(u):
    return (u[..., 0] ** 2 - 1) ** 2 + 0.5 * u[..., 1] ** 2 + 0.3 * u[..., 0] * u[..., 1]


@dataclass(frozen=True)
class Surface:
    name: str
    loss: object  # u of shape (..., 2) -> loss
    start: tuple
    box: tuple = (-2.0, 2.0, -2.0, 2.0)
    doc: str = ""


SURFACES = {s.name: s for s in (
    Surface("quadratic", _quadratic, (-1.5, 1.2),
        doc="an ill-conditioned bowl (Hessian eigenvalues 0.5 and 7.5): gradient descent is stable for h < 2/7.5"),
    Surface("valley", _valley, (-1.2, 1.5), doc="a curved valley (Rosenbrock's, scaled): slow progress along its floor"),
    Surface("wells", _wells, (0.1, 1.8), doc="two minima: where the inner loop ends depends on where it starts"),
)}


def _check_surface(name: str) -> str:
    check_choice("surface", name, SURFACES)
    return name


def surface(name: str) -> Surface:
    return SURFACES[_check_surface(name)]


def surface_grid(name: str, points: int = 81):
    """(xs, ys, z) on the surface's box for a contour plot; z[i, j] = loss at (xs[j], ys[i])."""
    s = surface(name)
    xs = torch.linspace(s.box[0], s.box[1], points, dtype=DT)
    ys = torch.linspace(s.box[2], s.box[3], points, dtype=DT)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    z = s.loss(torch.stack([gx, gy], -1))
    return xs, ys, z


def _finite_prefix(states: torch.Tensor, limit: float = 1e3) -> torch.Tensor:
    ok = torch.isfinite(states).all(1) & (states.abs().max(1).values < limit)
    bad = (~ok).nonzero()
    return states if len(bad) == 0 else states[: int(bad[0]) + 1].clamp(-limit, limit).nan_to_num(limit)


def inner_paths(surface: str, horizon: float = 2.0, step_size: float = 0.1, solver: str = "rk4", reg: float = 0.0,
                start=None) -> dict:
    """The inner loop on ``surface`` from ``start`` to T = ``horizon``.

    Returns {"gradient descent": (n+1, 2), "<solver> (h)": (n+1, 2), "gradient flow": (m+1, 2)}:
    plain gradient descent with step ``step_size`` (the flow's Euler steps), the
    chosen solver with the same step, and the flow itself (dopri5, tight
    tolerances, 200 output points).  A path that leaves the box by 1e3 stops there.
    """
    s = SURFACES[_check_surface(surface)]
    if not horizon > 0 or not step_size > 0:
        raise ValueError(f"horizon and step_size must be positive; got {horizon} and {step_size}")
    check_choice("solver", solver, FIXED_SOLVERS)
    theta = torch.tensor(start if start is not None else s.start, dtype=DT)
    steps = max(1, round(horizon / step_size))
    paths = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        _, gd = trajectory(s.loss, theta, steps=steps, step_size=step_size, solver="euler", reg=reg)
        paths["gradient descent"] = _finite_prefix(gd)
        if solver != "euler":
            _, other = trajectory(s.loss, theta, steps=steps, step_size=step_size, solver=solver, reg=reg)
            paths[f"{solver} steps"] = _finite_prefix(other)
        fine = 200
        _, flow = trajectory(s.loss, theta, steps=fine, step_size=steps * step_size / fine, solver="dopri5",
                             reg=reg, rtol=1e-9, atol=1e-11)
        paths["gradient flow"] = flow
    return paths


# ---------------------------------------------------------------- a quadratic task with closed forms
class QuadraticTask:
    """L_S(u) = 1/2 (u - c)^T A (u - c), L_Q(u) = 1/2 (u - d)^T B (u - d) in ``n`` dimensions.

    A has eigenvalues spread evenly over ``eig``.  The flow du/dt = -A(u - c)
    - reg (u - theta) is linear, so u(T) and dL_Q(u(T))/dtheta have closed
    forms through the matrix exponential: the exact references of the notebooks.
    """

    def __init__(self, n: int = 6, eig=(0.2, 3.0), seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=DT))
        self.eigenvalues = torch.linspace(eig[0], eig[1], n, dtype=DT)
        self.A = q @ torch.diag(self.eigenvalues) @ q.T
        b = torch.randn(n, n, generator=g, dtype=DT)
        self.B = b @ b.T / n + 0.1 * torch.eye(n, dtype=DT)
        self.c = torch.randn(n, generator=g, dtype=DT)
        self.d = torch.randn(n, generator=g, dtype=DT)
        self.theta = torch.randn(n, generator=g, dtype=DT)
        self.n = n

    def support_loss(self, u):
        r = u - self.c
        return 0.5 * r @ self.A @ r

    def query_loss(self, u):
        r = u - self.d
        return 0.5 * r @ self.B @ r

    def exact(self, horizon: float, reg: float = 0.0):
        """(u(T), dL_Q(u(T))/dtheta) of the continuous flow."""
        eye = torch.eye(self.n, dtype=DT)
        M = self.A + reg * eye
        S = torch.linalg.matrix_exp(-M * horizon)
        u_star = torch.linalg.solve(M, self.A @ self.c + reg * self.theta)
        u_T = u_star + S @ (self.theta - u_star)
        J = S + (eye - S) @ torch.linalg.solve(M, reg * eye)
        return u_T, J.T @ self.B @ (u_T - self.d)






def agreement(support_loss, query_loss, theta, horizon: float, steps_list, solver: str = "rk4", reg: float = 0.0):
    """At a fixed horizon T, the continuous and discrete adjoints against maml as the steps grow.

    Rows {steps, step_size, continuous, discrete}: relative differences to
    maml's gradient.  The discrete adjoint transposes the same steps (rounding
    only); the continuous one differs by the solver's error, which falls at its
    order as the step shrinks (both converge to the flow's exact gradient).
    """
    rows = []
    for steps in steps_list:
        h = horizon / steps
        kw = dict(steps=steps, step_size=h, solver=solver, reg=reg)
        ref = flat_grad(meta_gradient(support_loss, query_loss, theta, method="maml", **kw).grad)
        cont = flat_grad(meta_gradient(support_loss, query_loss, theta, method="adjoint", **kw).grad)
        disc = flat_grad(meta_gradient(support_loss, query_loss, theta, method="adjoint", scheme="discrete", **kw).grad)
        rows.append({"steps": steps, "step_size": h, "continuous": relative_error(cont, ref), "discrete": relative_error(disc, ref)})
    return rows


def scheme_order(task: QuadraticTask, horizon: float = 2.0, steps_list=(5, 10, 20, 40, 80),
                 solvers=("euler", "midpoint", "rk4"), reg: float = 0.0):
    """The continuous adjoint's error against the exact flow's meta-gradient, per solver and step size.

    Rows {solver, steps, step_size, error, slope}: ``slope`` is the log-log
    slope from the previous row of the same solver (1, 2 and 4 expected).
    """
    _, exact = task.exact(horizon, reg)
    rows = []
    for solver in solvers:
        previous = None
        for steps in steps_list:
            h = horizon / steps
            g = meta_gradient(task.support_loss, task.query_loss, task.theta, method="adjoint", steps=steps,
                              step_size=h, solver=solver, reg=reg).grad
            err = relative_error(g, exact)
            slope = (math.log(previous[1] / err) / math.log(previous[0] / h)
                     if previous and err > 0 and previous[1] > 0 else float("nan"))
            rows.append({"solver": solver, "steps": steps, "step_size": h, "error": err, "slope": slope})
            previous = (h, err)
    return rows


# ---------------------------------------------------------------- running the state backward
def reconstruction(task: QuadraticTask, horizon: float, steps: int, solver: str = "rk4"):
    """The true u(t) (forward) and the state rebuilt by running the flow backward from u(T).

    Returns {"t": (steps+1,), "forward": (steps+1, n), "backward": (steps+1, n), "error": |u_back(0) - theta| / |theta|}.
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


def reconstruction_sweep(lam_max_values, horizon: float = 2.0, steps: int = 200, n: int = 6, seed: int = 0):
    """Rows {lam_max, lam_T, error}: how far the backward-rebuilt u(0) lands from theta as lambda_max T grows."""
    rows = []
    for lam_max in lam_max_values:
        task = QuadraticTask(n=n, eig=(0.2, float(lam_max)), seed=seed)
        err = reconstruction(task, horizon, steps)["error"]
        rows.append({"lam_max": float(lam_max), "lam_T": float(lam_max) * horizon, "error": err})
    return rows


def backsolve_sweep(support_loss, query_loss, theta, steps_list, step_size: float = 0.01, checkpoints: int = 8,
                    solver: str = "rk4"):
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
        row = {"steps": steps, "horizon": steps * step_size,
               "backsolve": relative_error(g, ref) if torch.isfinite(g).all() else float("inf"),
               "reconstruction_error": b.stats.get("reconstruction_error", float("nan"))}
        row["adjoint"] = relative_error(flat_grad(meta_gradient(support_loss, query_loss, theta, method="adjoint", **kw).grad), ref)
        row["checkpointed"] = relative_error(flat_grad(meta_gradient(support_loss, query_loss, theta, method="adjoint",
                                                       checkpoints=checkpoints, **kw).grad), ref)
        rows.append(row)
    return rows


# ---------------------------------------------------------------- every method against the exact gradient
def checkpoint_costs(support_loss, query_loss, theta, steps_list, step_size: float = 0.01, checkpoints: int = 8,
                     solver: str = "rk4", schemes=("continuous", "grid")):
    """What storing, ``checkpoints`` states and ``"sqrt"`` cost the adjoint, for each scheme and number of steps.

    Rows {steps, scheme, and for each of "stored", "c" (``checkpoints``) and "sqrt": states (the most held at
    once), evals (support-gradient evaluations), repetitions (how often the busiest step is advanced), and
    "difference": the largest relative difference of the checkpointed gradients to the stored one}.
    """
    rows = []
    for steps in steps_list:
        for scheme in schemes:
            kw = dict(method="adjoint", scheme=scheme, steps=steps, step_size=step_size, solver=solver)
            runs = {name: meta_gradient(support_loss, query_loss, theta, checkpoints=c, **kw)
                    for name, c in (("stored", None), ("c", checkpoints), ("sqrt", "sqrt"))}
            row = {"steps": steps, "scheme": scheme}
            for name, r in runs.items():
                row[name] = {"states": r.stats["stored_states"], "evals": r.stats["grad_evals"],
                             "repetitions": r.stats["repetitions"]}
            stored = flat_grad(runs["stored"].grad)
            row["difference"] = max(relative_error(flat_grad(runs[n].grad), stored) for n in ("c", "sqrt"))
            rows.append(row)
    return rows


def baseline_methods(lam: float = 2.0, cg_steps: int = 5, truncate: int = 5):
    """The (label, method, options) rows of the baselines' comparison (for :func:`compare_methods`)."""
    return (
        ("adjoint", "adjoint", {}),
        ("fomaml", "fomaml", {}),
        ("reptile", "reptile", {"scale": "horizon"}),
        ("imaml", "imaml", {"lam": float(lam), "cg_steps": int(cg_steps)}),
        (f"truncated (last {truncate})", "truncated", {"truncate": int(truncate)}),
    )
