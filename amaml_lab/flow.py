"""The inner loop as an ODE: du/dt = -grad L_S(u) - reg (u - theta), u(0) = theta.

Solved on [0, T], T = steps * step_size.  The fixed-grid solvers (``euler``,
``midpoint``, ``rk4``: torchdiffeq's rk4 is the 3/8-rule variant, four
gradient evaluations a step) take exactly ``steps`` steps on the grid
``linspace(0, T, steps + 1)``, each torchdiffeq's own step arithmetic
(:func:`step_function`, tested equal to ``torchdiffeq.odeint`` bit for bit)
in a plain loop whose times are Python numbers: no solver bookkeeping per
step and, on a GPU, no host-device synchronisation per step.  ``dopri5``
runs in torchdiffeq, adapts its steps to ``rtol`` and ``atol`` and reports
the state on that grid.  ``reg = 0`` is the plain gradient
flow; ``reg > 0`` the proximal flow of the Adjoint MAML reference code (reg = 1).
"""

from __future__ import annotations

import torch
from torchdiffeq import odeint

FIXED_SOLVERS = ("euler", "midpoint", "rk4")
STAGES = {"euler": 1, "midpoint": 2, "rk4": 4}  # gradient evaluations a fixed-grid step takes
ADAPTIVE_SOLVERS = ("dopri5",)
SOLVERS = FIXED_SOLVERS + ADAPTIVE_SOLVERS


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

    def whole_step(self):
        """A function (solver, t0, t1, y) -> y1 taking a whole solver step at once, where the derivatives offer
        one (:class:`amaml_lab.compiled.CompiledDerivatives`); else None.  With ``graph=True`` autograd
        differentiates through it (the step's graph keeps what its backward needs: nothing is recomputed)."""
        step = getattr(self.d, "step", None)
        if step is None:
            return None
        return lambda solver, t0, t1, y: step(solver, y, t0, t1, self.theta, self.reg, self.mask)

    def whole_steps(self):
        """A function (solver, times, y, every) -> the states at ``times`` (the first y; ``every=False``: the first
        and the last), every step in one call, where the derivatives offer it (the compiled ones: one graph, no
        autograd through it); else None."""
        steps = getattr(self.d, "steps", None)
        if steps is None or self.graph:
            return None
        return lambda solver, times, y, every: steps(solver, y, times, self.theta, self.reg, self.mask, every)


def time_grid(steps: int, step_size: float, dtype=torch.float64, device=None) -> torch.Tensor:
    """The fixed grid t_k = k * step_size, k = 0..steps (torch.linspace, so t_steps = T)."""
    return torch.linspace(0.0, steps * step_size, steps + 1, dtype=dtype, device=device)


def _odeint(field, u0, t, solver, rtol, atol, max_num_steps):
    try:
        return odeint(field, u0, t, method=solver, rtol=rtol, atol=atol, options={"max_num_steps": max_num_steps})
    except AssertionError as err:  # torchdiffeq's adaptive step control gives up with an assert
        raise FloatingPointError(
            f"the {solver} solver gave up ({err}); the flow is too stiff or diverging for"
            " rtol/atol: use a fixed-grid solver or a smaller horizon"
        ) from None


def _fixed_grid(field, u0, grid, save, solver):
    """Fixed-grid steps from grid[save[0]] to grid[save[-1]] (either direction); the states at ``save``.

    A tuple state is flattened into one vector for the steps, as torchdiffeq
    does, so the arithmetic is the same element by element.
    """
    step = step_function(solver)
    times = grid.detach().cpu().tolist()  # one transfer; Python times keep a GPU's queue running
    if torch.is_tensor(u0):
        f, y = field, u0
    else:
        shapes, sizes = [x.shape for x in u0], [x.numel() for x in u0]

        def unpack(y):
            return tuple(c.view(shape) for c, shape in zip(torch.split(y, sizes), shapes))

        def f(t, y):
            return torch.cat([r.reshape(-1) for r in field(t, unpack(y))])

        y = torch.cat([x.reshape(-1) for x in u0])
    whole = field.whole_step() if torch.is_tensor(u0) and hasattr(field, "whole_step") else None
    if whole is not None:  # a compiled step: its times as tensors, so that one graph serves every step
        step, times = (lambda f, t0, t1, y: whole(solver, t0, t1, y)), grid.detach().unbind(0)
    graph = torch.is_grad_enabled() and y.requires_grad
    many = field.whole_steps() if whole is not None and not graph else None
    # the whole grid, forward, keeping every state or the last: one call (a scan's graph has its length, so the
    # pieces of a checkpointed solve, of many lengths, take a graph a step instead of a compile each)
    every = list(save) == list(range(len(grid)))
    if many is not None and len(grid) > 2 and (every or list(save) == [0, len(grid) - 1]):
        return many(solver, grid.detach(), y, every)
    position = {i: j for j, i in enumerate(save)}
    # without a graph the saved states go straight into one preallocated tensor (no second copy at the end)
    kept = [y] if graph else y.new_empty((len(save), *y.shape))
    if not graph:
        kept[0] = y
    sign = 1 if save[-1] >= save[0] else -1
    for k in range(save[0], save[-1], sign):
        y = step(f, times[k], times[k + sign], y)
        if k + sign in position:
            if graph:
                kept.append(y)
            else:
                kept[position[k + sign]] = y
    out = torch.stack(kept) if graph else kept
    if torch.is_tensor(u0):
        return out
    return tuple(c.reshape(len(save), *shape) for c, shape in zip(torch.split(out, sizes, dim=1), shapes))


def solve(field, u0, grid, save, solver="rk4", rtol=1e-7, atol=1e-9, max_num_steps=1_000_000):
    """Integrate ``field`` from ``u0`` at ``grid[save[0]]``; return the states at ``grid[save]``.

    ``save`` is a monotone list of grid indices (decreasing integrates backward
    in time).  Fixed-grid solvers take every step of ``grid`` between the first
    and last saved index, whatever is saved (saving fewer states saves memory,
    not work).  ``dopri5`` adapts its own steps and reports the states at the
    saved times.  A tuple ``u0`` gives a tuple of stacked states.
    """
    save = list(save)
    if save[0] == save[-1]:  # nothing to integrate
        n = len(save)
        return u0.expand(n, *u0.shape) if torch.is_tensor(u0) else tuple(x.expand(n, *x.shape) for x in u0)
    if solver not in FIXED_SOLVERS:
        return _odeint(field, u0, grid[save], solver, rtol, atol, max_num_steps)
    return _fixed_grid(field, u0, grid, save, solver)


def step_function(solver: str):
    """The one-step map y1 = y0 + dy of a fixed-grid solver, as torchdiffeq computes it (its operations in its order).

    Times may be Python numbers or tensors; a step backward in time (t1 < t0)
    is the same arithmetic torchdiffeq does after reversing time.
    """
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

    Args:
        support_loss: a callable ``params -> scalar tensor`` taking params in the structure of ``theta``.
        theta: u(0), a floating-point tensor or a dict of tensors (flattened in its keys' order, numel entries).
        steps, step_size: the grid t_k = k * step_size, k = 0..steps, so T = steps * step_size.
        solver: ``euler``, ``midpoint``, ``rk4`` (exactly ``steps`` steps) or ``dopri5`` (its own adaptive steps,
            the states reported at the grid's times).
        reg: the proximal weight of the flow du/dt = -grad L_S(u) - reg (u - theta), >= 0.
        rtol, atol: ``dopri5``'s relative and absolute tolerances.

    Returns:
        ``(grid, states)``: ``grid`` of shape (steps+1,) and ``states`` of shape (steps+1, numel), both in theta's
        dtype and on its device, without autograd graphs.

    Raises:
        FloatingPointError: ``dopri5`` gave up (the flow too stiff or diverging for ``rtol``/``atol``).
    """
    from .functional import Derivatives, ParamSpec, flat_loss

    spec = ParamSpec.of(theta)
    th = spec.flatten(theta).detach()
    d = Derivatives(flat_loss(support_loss, spec, "support_loss"))
    grid = time_grid(steps, step_size, th.dtype, th.device)
    with torch.no_grad():
        states = solve(GradientFlow(d, th, reg), th, grid, range(steps + 1), solver, rtol, atol)
    return grid, states
