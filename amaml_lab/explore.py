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
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .checks import check_choice
from .flow import FIXED_SOLVERS, GradientFlow, solve, step_function, time_grid, trajectory
from .functional import Derivatives, flat_grad, relative_error
from .metagrad import BacksolveWarning, compare_methods, meta_gradient

DT = torch.float64


# ---------------------------------------------------------------- 2-D loss surfaces
def _quadratic(u):
    a = torch.tensor([[4.0, 3.5], [3.5, 4.0]], dtype=u.dtype, device=u.device)  # eigenvalues 0.5 and 7.5
    return 0.5 * torch.einsum("...i,ij,...j->...", u, a, u)


def _valley(u):
    return (1 - u[..., 0]) ** 2 + 5 * (u[..., 1] - u[..., 0] ** 2) ** 2


def _wells(u):
    return (u[..., 0] ** 2 - 1) ** 2 + 0.5 * u[..., 1] ** 2 + 0.3 * u[..., 0] * u[..., 1]


# their gradients in closed form, on numpy arrays (..., 2): the explorer's tables step many loops at once with them
def _quadratic_grad(u):
    return u @ np.array([[4.0, 3.5], [3.5, 4.0]])


def _valley_grad(u):
    x, y = u[..., 0], u[..., 1]
    return np.stack([-2 * (1 - x) - 20 * x * (y - x * x), 10 * (y - x * x)], -1)


def _wells_grad(u):
    x, y = u[..., 0], u[..., 1]
    return np.stack([4 * x * (x * x - 1) + 0.3 * y, y + 0.3 * x], -1)


@dataclass(frozen=True)
class Surface:
    name: str
    loss: object  # u of shape (..., 2) -> loss
    start: tuple
    box: tuple = (-2.0, 2.0, -2.0, 2.0)
    doc: str = ""
    grad: object = None  # the loss's gradient in closed form, numpy (..., 2) -> (..., 2)


SURFACES = {s.name: s for s in (
    Surface("quadratic", _quadratic, (-1.5, 1.2), grad=_quadratic_grad,
        doc="an ill-conditioned bowl (Hessian eigenvalues 0.5 and 7.5): gradient descent is stable for h < 2/7.5"),
    Surface("valley", _valley, (-1.2, 1.5), grad=_valley_grad,
        doc="a curved valley (Rosenbrock's, scaled): slow progress along its floor"),
    Surface("wells", _wells, (0.1, 1.8), grad=_wells_grad,
        doc="two minima: where the inner loop ends depends on where it starts"),
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


# ---------------------------------------------------------------- many inner loops at once (the explorer's tables)
FLOW_DT = 0.004  # the gradient flow's rk4 step in the tables: within ~1e-7 of inner_paths' dopri5 on these surfaces


def _scaled_field(grad, theta, reg, scale):
    """f(u) = scale * (-grad L_S(u) - reg (u - theta)), a row per inner loop: a step of h on du/dt = f is a unit
    step on du/ds = h f, so loops of different step sizes advance together."""
    return lambda t, u: scale * (-grad(u) - reg * (u - theta))


def _unit_steps(field, u0: np.ndarray, steps: int, solver: str) -> np.ndarray:
    """``steps`` unit steps of a fixed-grid solver (:func:`amaml_lab.flow.step_function`): (steps + 1, *u0.shape)."""
    step = step_function(solver)
    out = np.empty((steps + 1, *u0.shape))
    out[0] = y = u0
    with np.errstate(all="ignore"):  # an unstable loop overflows; its path is cut where it leaves the box
        for k in range(steps):
            y = step(field, float(k), float(k + 1), y)
            out[k + 1] = y
    return out


def inner_path_batch(surface: str, starts, step_sizes, regs, horizon: float, solvers=FIXED_SOLVERS) -> list[dict]:
    """:func:`inner_paths`' fixed-step paths for many (start, step size, reg) at once, each to ``horizon``.

    ``starts`` (B, 2), ``step_sizes`` and ``regs`` (B,).  Returns for each loop {solver: (n + 1, 2) states},
    n = max(1, round(horizon / step size)): the same steps as :func:`inner_paths` takes (uncut: an unstable
    path runs on to inf), from the surface's closed-form gradient, all loops in one vectorised numpy loop.
    """
    s = SURFACES[_check_surface(surface)]
    theta = np.asarray(starts, float).reshape(-1, 2)
    h = np.broadcast_to(np.asarray(step_sizes, float).reshape(-1, 1), (len(theta), 1))
    reg = np.broadcast_to(np.asarray(regs, float).reshape(-1, 1), (len(theta), 1))
    if not (h > 0).all() or not horizon > 0:
        raise ValueError(f"horizon and step sizes must be positive; got {horizon} and {h[:, 0].tolist()}")
    n = np.maximum(1, np.rint(horizon / h[:, 0]).astype(int))
    out = [{} for _ in range(len(theta))]
    for solver in solvers:
        check_choice("solver", solver, FIXED_SOLVERS)
        states = _unit_steps(_scaled_field(s.grad, theta, reg, h), theta, int(n.max()), solver)
        for b, entry in enumerate(out):
            entry[solver] = states[: n[b] + 1, b].copy()
    return out


def flow_batch(surface: str, starts, regs, horizon: float) -> np.ndarray:
    """The gradient flow from each start (rows of ``starts``, each with its reg) on [0, ``horizon``]: its states
    every :data:`FLOW_DT` (rk4 steps of that size), (K + 1, B, 2) with K = ceil(horizon / FLOW_DT)."""
    s = SURFACES[_check_surface(surface)]
    theta = np.asarray(starts, float).reshape(-1, 2)
    reg = np.broadcast_to(np.asarray(regs, float).reshape(-1, 1), (len(theta), 1))
    steps = max(1, math.ceil(horizon / FLOW_DT - 1e-9))
    return _unit_steps(_scaled_field(s.grad, theta, reg, FLOW_DT), theta, steps, "rk4")


def flow_to(surface: str, dense: np.ndarray, start, reg: float, horizon: float) -> np.ndarray:
    """The flow's path to ``horizon`` from one loop's :func:`flow_batch` states ``dense`` (K + 1, 2): those at
    the grid times before ``horizon``, then rk4 steps of at most FLOW_DT from the last of them to it."""
    k = min(int(horizon / FLOW_DT + 1e-9), len(dense) - 1)
    rest = horizon - k * FLOW_DT
    if rest <= 1e-12:
        return dense[: k + 1]
    steps = math.ceil(rest / FLOW_DT - 1e-9)
    s = SURFACES[_check_surface(surface)]
    theta = np.asarray(start, float).reshape(1, 2)
    tail = _unit_steps(_scaled_field(s.grad, theta, np.full((1, 1), float(reg)), rest / steps), dense[k][None], steps,
                       "rk4")
    return np.concatenate([dense[: k + 1], tail[1:, 0]])


def finite_prefix(states: np.ndarray, limit: float = 1e3) -> np.ndarray:
    """A path up to where it leaves the box of ``limit`` (that point clamped): :func:`inner_paths`' cut, numpy."""
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(states).all(1) & (np.abs(states).max(1) < limit)
    bad = np.flatnonzero(~ok)
    return states if len(bad) == 0 else np.nan_to_num(states[: bad[0] + 1].clip(-limit, limit), nan=limit)


def paths_from_tables(surface: str, fixed: dict, dense: np.ndarray, start, reg: float, step_size: float,
                      horizon: float, solver: str) -> dict:
    """:func:`inner_paths`' dict (numpy states) read off one loop's :func:`inner_path_batch` entry ``fixed``
    (computed to this horizon or a longer one) and its :func:`flow_batch` states ``dense``."""
    steps = max(1, round(horizon / step_size))
    if steps >= len(fixed["euler"]):
        raise ValueError(f"the tables reach {len(fixed['euler']) - 1} steps; horizon {horizon} needs {steps}")
    paths = {"gradient descent": finite_prefix(fixed["euler"][: steps + 1])}
    if solver != "euler":
        paths[f"{solver} steps"] = finite_prefix(fixed[solver][: steps + 1])
    paths["gradient flow"] = flow_to(surface, dense, start, reg, steps * step_size)
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


def reconstruction_grid(lam_max_values, horizons, steps: int = 200, n: int = 6, seed: int = 0, solver: str = "rk4"):
    """:func:`reconstruction` for every (lam_max, horizon) of the :class:`QuadraticTask` (``n``, ``seed``) with
    eigenvalues spread over (0.2, lam_max), all loops stepped side by side.

    Returns {"lam_max": [L], "horizon": [H], "t": (H, steps + 1), "forward" and "backward": (steps + 1, L, H, n),
    "error": (L, H)}.  Bit for bit :func:`reconstruction`'s numbers (the rebuilt u(0) is rounding amplified by
    about e^(lam_max T), so any other arithmetic would change its digits): the same time grids and solver
    steps, and the support gradient as autograd computes it, (r/2) A + (A r)/2 with r = u - c, the products
    A r one loop at a time (a batched product rounds differently).
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
            rows = rows + half[:, i:i + 1] * A[:, i]
        for a, v, out in zip(matrices, r.unbind(0), products):
            torch.mv(a, v, out=out)
        return -(rows + 0.5 * product)

    step = step_function(solver)

    def run(y, grid):
        states = [y]
        for k in range(steps):
            y = step(field, grid[:, k:k + 1], grid[:, k + 1:k + 2], y)
            states.append(y)
        return torch.stack(states)

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        forward = run(base.theta.expand(len(A), n).clone(), times)
        backward = run(forward[-1], times.flip(1)).flip(0)
    error = [relative_error(u, base.theta) if torch.isfinite(u).all() else float("inf") for u in backward[0]]
    shape = (steps + 1, len(lams), len(horizons), n)
    return {"lam_max": lams, "horizon": horizons, "t": grids, "forward": forward.reshape(shape),
            "backward": backward.reshape(shape), "error": torch.tensor(error, dtype=DT).reshape(len(lams), len(horizons))}


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


EVALS_PER_STEP = {"euler": 1, "midpoint": 2, "rk4": 4}  # support-gradient evaluations a fixed-grid step takes


def baseline_table(support_loss, query_loss, theta, steps_list, *, step_size: float, lams, cg_steps: int,
                   truncates, solver: str = "rk4") -> dict:
    """Every row the baselines' comparison can show for iMAML's λ in ``lams`` and CG steps 1..``cg_steps``, and
    for every truncation in ``truncates``: {"fixed": rows of adjoint, fomaml and reptile, "truncated": {k: rows},
    "imaml": {(λ, CG steps): rows}}, rows as :func:`compare_methods` gives them (reg 0), one a steps.

    adjoint, fomaml and reptile are :func:`compare_methods`' rows; truncated and iMAML come from
    :func:`truncated_rows` and :func:`imaml_rows`, which share the work between their settings.  Same numbers
    as :func:`compare_methods` to rounding, and the same counts of evaluations.
    """
    fixed = [m for m in baseline_methods() if m[1] in ("adjoint", "fomaml", "reptile")]
    rows = compare_methods(support_loss, query_loss, theta, steps_list, step_size=step_size, methods=fixed,
                           solver=solver)
    common = dict(step_size=step_size, solver=solver)
    return {"fixed": rows, "truncated": truncated_rows(support_loss, query_loss, theta, steps_list, truncates, **common),
            "imaml": imaml_rows(support_loss, query_loss, theta, steps_list, lams, cg_steps, **common)}


def _row(steps, label, method, g, exact, query_loss, seconds, grad_evals, hvp_evals, stored_states) -> dict:
    from .functional import cosine

    return {"steps": steps, "label": label, "method": method, "rel_error": relative_error(g, exact),
            "cosine": cosine(g, exact), "query_loss": query_loss, "wall_time": seconds, "grad_evals": grad_evals,
            "hvp_evals": hvp_evals, "stored_states": stored_states}


def truncated_rows(support_loss, query_loss, theta, steps_list, truncates, *, step_size: float,
                   solver: str = "rk4") -> dict:
    """{k: :func:`compare_methods`' rows of ``("truncated (last k)", "truncated", {"truncate": k})``} for every k
    in ``truncates``: for each steps one back-propagation through the whole loop gives every truncation (the
    gradient at the state k steps before the end, :func:`tail_gradients`)."""
    out = {int(k): [] for k in truncates}
    evals = EVALS_PER_STEP[solver]
    for steps in steps_list:
        kw = dict(steps=steps, step_size=step_size, solver=solver)
        started = time.perf_counter()
        exact = flat_grad(meta_gradient(support_loss, query_loss, theta, method="maml", **kw).grad)
        tails, qloss = tail_gradients(support_loss, query_loss, theta, **kw)
        seconds = time.perf_counter() - started
        for k, rows in out.items():
            j = min(k, steps)  # compare_methods clips a truncation to the steps
            rows.append(_row(steps, f"truncated (last {k})", "truncated", tails[steps - j], exact, qloss, seconds,
                             evals * steps, evals * j, j + 1))
    return out


def imaml_rows(support_loss, query_loss, theta, steps_list, lams, cg_steps: int, *, step_size: float,
               solver: str = "rk4") -> dict:
    """{(λ, k): :func:`compare_methods`' rows of ``("imaml", "imaml", {"lam": λ, "cg_steps": k})``} for every λ
    in ``lams`` and k = 1..``cg_steps``: for each steps one solve of every λ's proximal loop side by side gives
    their references and end points (:func:`proximal_meta_gradients`), and one CG run a λ every k (CG's k-th
    iterate is what k steps return)."""
    from .metagrad.core import build_problem
    from .metagrad.implicit import implicit_direction

    lams = [float(lam) for lam in lams]
    out = {(lam, k): [] for lam in lams for k in range(1, cg_steps + 1)}
    evals = EVALS_PER_STEP[solver]
    for steps in steps_list:
        kw = dict(steps=steps, step_size=step_size, solver=solver)
        started = time.perf_counter()
        refs, ends = proximal_meta_gradients(support_loss, query_loss, theta, lams, **kw)
        for b, lam in enumerate(lams):
            p = build_problem(support_loss, query_loss, theta, **kw, reg=lam, rtol=1e-7, atol=1e-9, hvp="autograd")
            iterates = []
            qloss, _, _, _ = implicit_direction(p, ends[b], lam, cg_steps, iterates=iterates)
            seconds = time.perf_counter() - started
            for k in range(1, cg_steps + 1):
                done = min(k, len(iterates))
                out[(lam, k)].append(_row(steps, "imaml", "imaml", iterates[done - 1], refs[b], qloss, seconds,
                                          evals * steps + 1, done, 1))
    return out


def tail_gradients(support_loss, query_loss, theta, *, steps: int, step_size: float, solver: str = "rk4"):
    """dL_Q(u_n)/du_j for every state j = 0..n of the plain loop (reg 0), flat, (n + 1, P), and L_Q(u_n).

    Row n - k is back-propagation through the last k steps (:func:`~amaml_lab.metagrad.unrolled.tail_gradient`,
    method ``"truncated"``); row 0 is maml's.  One forward pass keeping its graph, one backward pass.
    """
    from .metagrad.core import build_problem

    p = build_problem(support_loss, query_loss, theta, steps=steps, step_size=step_size, solver=solver, reg=0.0,
                      rtol=1e-7, atol=1e-9, hvp="autograd")
    step = step_function(solver)
    times = p.grid.tolist()
    with torch.enable_grad():
        states = [p.theta.clone().requires_grad_(True)]
        field = p.flow(graph=True)
        for k in range(steps):
            states.append(step(field, times[k], times[k + 1], states[-1]))
        value = p.query.loss(states[-1])
        grads = torch.autograd.grad(value, states)
    return torch.stack(grads), float(value.detach())


def proximal_meta_gradients(support_loss, query_loss, theta, regs, *, steps: int, step_size: float,
                            solver: str = "rk4"):
    """maml's meta-gradient through the proximal loop du/dt = -grad L_S(u) - reg (u - theta) for every reg in
    ``regs``, flat (B, P), and each loop's end point u(T) (B, P).

    All B loops in one solve, side by side from B copies of theta (as :func:`~amaml_lab.metagrad.batch.
    meta_gradient_batch` runs tasks): the copies' losses through ``torch.func.vmap``, their gradients by
    autograd on the sum (a copy's gradient is its own loss's), each copy its own reg; the gradient of the
    summed query losses with respect to the copies is every loop's meta-gradient.  Equals
    ``meta_gradient(..., method="maml", reg=reg)`` for each reg to rounding.
    """
    from .functional import ParamSpec, flat_loss

    spec = ParamSpec.of(theta)
    th = spec.flatten(theta).detach()
    support = torch.func.vmap(flat_loss(support_loss, spec, "support_loss"))
    query = torch.func.vmap(flat_loss(query_loss, spec, "query_loss"))
    reg = torch.tensor([float(r) for r in regs], dtype=th.dtype, device=th.device)[:, None]
    with torch.enable_grad():
        copies = th.expand(len(reg), -1).clone().requires_grad_(True)

        def field(t, u):
            (g,) = torch.autograd.grad(support(u).sum(), u, create_graph=True)
            return -g - reg * (u - copies)

        end = solve(field, copies, time_grid(steps, step_size, th.dtype, th.device), [0, steps], solver)[-1]
        (grads,) = torch.autograd.grad(query(end).sum(), copies)
    return grads, end.detach()


def baseline_methods(lam: float = 2.0, cg_steps: int = 5, truncate: int = 5):
    """The (label, method, options) rows of the baselines' comparison (for :func:`compare_methods`)."""
    return (
        ("adjoint", "adjoint", {}),
        ("fomaml", "fomaml", {}),
        ("reptile", "reptile", {"scale": "horizon"}),
        ("imaml", "imaml", {"lam": float(lam), "cg_steps": int(cg_steps)}),
        (f"truncated (last {truncate})", "truncated", {"truncate": int(truncate)}),
    )
