"""The inner loop as an ODE: du/dt = -grad L_S(u) - reg (u - theta), u(0) = theta.

Solved with torchdiffeq on [0, T], T = steps * step_size.  The fixed-grid
solvers (``euler``, ``midpoint``, ``rk4``: torchdiffeq's rk4 is the 3/8-rule
variant, four gradient evaluations a step) take exactly ``steps`` steps on the
grid ``linspace(0, T, steps + 1)``; ``dopri5`` adapts its steps to ``rtol`` and
``atol`` and reports the state on that grid.  ``reg = 0`` is the plain gradient
flow; ``reg > 0`` the proximal flow of the Adjoint MAML reference code (reg = 1).
"""
from __future__ import annotations

import torch
from torchdiffeq import odeint

FIXED_SOLVERS = ("euler", "midpoint", "rk4")
ADAPTIVE_SOLVERS = ("dopri5",)
SOLVERS = FIXED_SOLVERS + ADAPTIVE_SOLVERS
STAGES = {"euler": 1, "midpoint": 2, "rk4": 4}


class GradientFlow:
    """The vector field f(u) = -grad L_S(u) - reg (u - theta) as torchdiffeq wants it.

    ``mask`` (a 0/1 vector) freezes the parameters where it is 0: the inner
    loop leaves them at theta, though the losses still depend on them.

    ``graph=True`` keeps the gradient differentiable (for back-propagation through
    the solver); otherwise each evaluation is detached.
    """

    def __init__(self, derivatives, theta: torch.Tensor, reg: float = 0.0, graph: bool = False, mask=None):
        self.d = derivatives
        self.theta = theta
        self.reg = float(reg)
        self.graph = graph
        self.mask = mask

    def velocity(self, u: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """f(u) given the support gradient g at u (zero on parameters the inner loop does not adapt)."""
        f = -g - self.reg * (u - self.theta) if self.reg else -g
        return f * self.mask if self.mask is not None else f

    def __call__(self, t, u):
        g = self.d.grad_graph(u) if self.graph else self.d.grad(u)
        return self.velocity(u, g)


def time_grid(steps: int, step_size: float, dtype=torch.float64, device=None) -> torch.Tensor:
    """The fixed grid t_k = k * step_size, k = 0..steps (torch.linspace, so t_steps = T)."""
    return torch.linspace(0.0, steps * step_size, steps + 1, dtype=dtype, device=device)


CHUNK = 256  # fixed-grid steps handed to torchdiffeq at once


def _odeint(field, u0, t, solver, grid, rtol, atol, max_num_steps):
    if solver in FIXED_SOLVERS:
        kw = dict(method=solver, options={"grid_constructor": lambda func, y0, tt: grid})
    else:
        kw = dict(method=solver, rtol=rtol, atol=atol, options={"max_num_steps": max_num_steps})
    try:
        return odeint(field, u0, t, **kw)
    except AssertionError as err:  # torchdiffeq's adaptive step control gives up with an assert
        raise FloatingPointError(
            f"the {solver} solver gave up ({err}); the flow is too stiff or diverging for"
            " rtol/atol: use a fixed-grid solver or a smaller horizon"
        ) from None


def solve(field, u0, grid, save, solver="rk4", rtol=1e-7, atol=1e-9, max_num_steps=1_000_000):
    """Integrate ``field`` from ``u0`` at ``grid[save[0]]``; return the states at ``grid[save]``.

    ``save`` is a monotone list of grid indices (decreasing integrates backward
    in time).  Fixed-grid solvers take every step of ``grid`` between the first
    and last saved index, whatever is saved (saving fewer states saves memory,
    not work), handed to torchdiffeq ``CHUNK`` steps at a time so that its
    per-step bookkeeping does not grow with ``steps``.  ``dopri5`` adapts its
    own steps and reports the states at the saved times.
    """
    save = list(save)
    if save[0] == save[-1]:  # nothing to integrate
        n = len(save)
        return u0.expand(n, *u0.shape) if torch.is_tensor(u0) else tuple(x.expand(n, *x.shape) for x in u0)
    if solver not in FIXED_SOLVERS:
        return _odeint(field, u0, grid[save], solver, None, rtol, atol, max_num_steps)
    sign = 1 if save[-1] >= save[0] else -1
    position = {i: j for j, i in enumerate(save)}
    parts = [u0] if torch.is_tensor(u0) else list(u0)
    results = [torch.empty(len(save), *x.shape, dtype=x.dtype, device=x.device) for x in parts]
    for r, x in zip(results, parts):
        r[0] = x
    start = save[0]
    while start != save[-1]:
        stop = start + sign * min(CHUNK, abs(save[-1] - start))
        idx = [i for i in range(start + sign, stop + sign, sign) if i in position or i == stop]
        sub = grid[start: stop + 1] if sign > 0 else grid[stop: start + 1].flip(0)
        state = parts[0] if torch.is_tensor(u0) else tuple(parts)
        out = _odeint(field, state, grid[[start] + idx], solver, sub, rtol, atol, max_num_steps)
        out = [out] if torch.is_tensor(out) else list(out)
        for k, i in enumerate(idx):
            if i in position:
                for r, o in zip(results, out):
                    r[position[i]] = o[k + 1]
        parts = [o[-1] for o in out]
        start = stop
    return results[0] if torch.is_tensor(u0) else tuple(results)


def step_function(solver: str):
    """The one-step map y1 = y0 + dy of a fixed-grid solver, as torchdiffeq computes it."""
    third = 1.0 / 3.0
    two_thirds = 2.0 / 3.0

    def euler(f, t0, t1, y0):
        dt = t1 - t0
        return y0 + dt * f(t0, y0)

    def midpoint(f, t0, t1, y0):
        dt = t1 - t0
        half_dt = 0.5 * dt
        f0 = f(t0, y0)
        y_mid = y0 + f0 * half_dt
        return y0 + dt * f(t0 + half_dt, y_mid)

    def rk4(f, t0, t1, y0):
        dt = t1 - t0
        k1 = f(t0, y0)
        k2 = f(t0 + dt * third, y0 + dt * k1 * third)
        k3 = f(t0 + dt * two_thirds, y0 + dt * (k2 - k1 * third))
        k4 = f(t1, y0 + dt * (k1 - k2 + k3))
        return y0 + (k1 + 3 * (k2 + k3) + k4) * dt * 0.125

    return {"euler": euler, "midpoint": midpoint, "rk4": rk4}[solver]


def trajectory(support_loss, theta, *, steps, step_size, solver="rk4", reg=0.0, rtol=1e-7, atol=1e-9):
    """The states u(t_k) of the inner flow on the grid, as a (steps+1, numel) tensor, and the grid.

    For plotting: it keeps every state.
    """
    from .functional import Derivatives, ParamSpec, flat_loss

    spec = ParamSpec.of(theta)
    th = spec.flatten(theta).detach()
    d = Derivatives(flat_loss(support_loss, spec, "support_loss"))
    grid = time_grid(steps, step_size, th.dtype, th.device)
    with torch.no_grad():
        states = solve(GradientFlow(d, th, reg), th, grid, range(steps + 1), solver, rtol, atol)
    return grid, states
