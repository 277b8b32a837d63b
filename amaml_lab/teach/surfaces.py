"""The computations behind notebooks 01 and 02: plain functions returning plain data (figures live in :mod:`viz`).

* 2-D loss surfaces and the inner loop on them (:func:`inner_paths`, and the explorer's tables);
* a quadratic task whose flow and meta-gradient have closed forms (:class:`QuadraticTask`);
* the adjoint against back-propagation as the steps grow (:func:`agreement`),
  the continuous scheme's order (:func:`scheme_order`).

Notebook 03's computations (running the state backward) are in :mod:`explore_backward`, notebook 04's (every
baseline against the exact meta-gradient) in :mod:`explore_baselines`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..checks import check_choice
from ..flow import FIXED_SOLVERS, step_function, trajectory
from ..functional import flat_grad, relative_error
from ..metagrad import meta_gradient

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


SURFACES = {
    s.name: s
    for s in (
        Surface(
            "quadratic",
            _quadratic,
            (-1.5, 1.2),
            grad=_quadratic_grad,
            doc="an ill-conditioned bowl (Hessian eigenvalues 0.5 and 7.5): gradient descent is stable for h < 2/7.5",
        ),
        Surface(
            "valley",
            _valley,
            (-1.2, 1.5),
            grad=_valley_grad,
            doc="a curved valley (Rosenbrock's, scaled): slow progress along its floor",
        ),
        Surface(
            "wells",
            _wells,
            (0.1, 1.8),
            grad=_wells_grad,
            doc="two minima: where the inner loop ends depends on where it starts",
        ),
    )
}


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


def inner_paths(
    surface: str, horizon: float = 2.0, step_size: float = 0.1, solver: str = "rk4", reg: float = 0.0, start=None
) -> dict:
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
        _, flow = trajectory(
            s.loss,
            theta,
            steps=fine,
            step_size=steps * step_size / fine,
            solver="dopri5",
            reg=reg,
            rtol=1e-9,
            atol=1e-11,
        )
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
    tail = _unit_steps(
        _scaled_field(s.grad, theta, np.full((1, 1), float(reg)), rest / steps), dense[k][None], steps, "rk4"
    )
    return np.concatenate([dense[: k + 1], tail[1:, 0]])


def finite_prefix(states: np.ndarray, limit: float = 1e3) -> np.ndarray:
    """A path up to where it leaves the box of ``limit`` (that point clamped): :func:`inner_paths`' cut, numpy."""
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(states).all(1) & (np.abs(states).max(1) < limit)
    bad = np.flatnonzero(~ok)
    return states if len(bad) == 0 else np.nan_to_num(states[: bad[0] + 1].clip(-limit, limit), nan=limit)


def paths_from_tables(
    surface: str, fixed: dict, dense: np.ndarray, start, reg: float, step_size: float, horizon: float, solver: str
) -> dict:
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
        rows.append(
            {
                "steps": steps,
                "step_size": h,
                "continuous": relative_error(cont, ref),
                "discrete": relative_error(disc, ref),
            }
        )
    return rows


def scheme_order(
    task: QuadraticTask,
    horizon: float = 2.0,
    steps_list=(5, 10, 20, 40, 80),
    solvers=("euler", "midpoint", "rk4"),
    reg: float = 0.0,
):
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
            g = meta_gradient(
                task.support_loss,
                task.query_loss,
                task.theta,
                method="adjoint",
                steps=steps,
                step_size=h,
                solver=solver,
                reg=reg,
            ).grad
            err = relative_error(g, exact)
            slope = (
                math.log(previous[1] / err) / math.log(previous[0] / h)
                if previous and err > 0 and previous[1] > 0
                else float("nan")
            )
            rows.append({"solver": solver, "steps": steps, "step_size": h, "error": err, "slope": slope})
            previous = (h, err)
    return rows
