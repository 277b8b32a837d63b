"""Adjoint meta-gradients: the A-MAML method ("adjoint") and state back-solving ("backsolve").

With a(t) = dL_Q(u(T)) / du(t), the adjoint of the flow du/dt = -grad L_S(u) - reg (u - theta) is

    da/dt = (H(u(t)) + reg I) a,   a(T) = grad L_Q(u(T)),
    dL_Q/dtheta = a(0) + reg * integral_0^T a(t) dt,

with H the support Hessian, entered only through Hessian-vector products.
"""
from __future__ import annotations

import bisect
import math
import warnings

import torch

from ..flow import step_function
from .core import Problem, query_value_and_grad


class BacksolveWarning(RuntimeWarning):
    """The state reconstructed backward in time drifted away from the true one."""


class _AdjointField:
    """The backward system (a, q) -> ((H + reg) a, -reg a) along stored states.

    Between stored states u(t) is the cubic Hermite interpolant of the states
    and their velocities (error O(h^4), so rk4 keeps its order).  At a stored
    state the gradient's graph is kept while the sweep is near it: the
    velocity and every HVP there (rk4 evaluates each stored state twice) share
    one gradient evaluation.
    """

    def __init__(self, p: Problem, grid: torch.Tensor, states: torch.Tensor):
        self.p, self.states = p, states
        self.times = grid.tolist()
        self.flow = p.flow()
        self.points: dict = {}

    def _point(self, k: int):
        """(linearization, velocity) at stored state k; forgets states the backward sweep has left."""
        if k not in self.points:
            for old in [j for j in self.points if j > k + 1]:
                del self.points[old]
            lin = self.p.support.linearize(self.states[k])
            self.points[k] = (lin, self.flow.velocity(self.states[k], lin.grad))
        return self.points[k]

    def state_at(self, t: torch.Tensor):
        """(u(t), k) where k is the grid index when t is on the grid, else None."""
        times, tf = self.times, float(t)
        i = bisect.bisect_left(times, tf)
        if i < len(times) and times[i] == tf:
            return self.states[i], i
        k = min(max(i - 1, 0), len(times) - 2)
        t0, t1 = times[k], times[k + 1]
        h = t1 - t0
        s = (tf - t0) / h
        f0, f1 = self._point(k)[1], self._point(k + 1)[1]
        h00 = (1 + 2 * s) * (1 - s) ** 2
        h10 = s * (1 - s) ** 2 * h
        h01 = s * s * (3 - 2 * s)
        h11 = s * s * (s - 1) * h
        u = self.states[k] * h00
        u.add_(f0, alpha=h10).add_(self.states[k + 1], alpha=h01).add_(f1, alpha=h11)
        return u, None

    def __call__(self, t, y):
        a = self.p.masked(y[0])
        u, k = self.state_at(t)
        if k is None:
            _, hv = self.p.support.hvp(u, a)
        else:
            hv = self._point(k)[0].hvp(a)
        reg = self.p.reg
        if reg:
            return hv + reg * a, -reg * a
        return (hv,)


def _continuous_segment(p: Problem, i0: int, i1: int, states, a, q):
    grid = p.grid[i0: i1 + 1]
    field = _AdjointField(p, grid, states)
    y0 = (a, q) if p.reg else (a,)
    out = p.solve(field, y0, [i1 - i0, 0], grid=grid)
    a = out[0][-1]
    return a, (out[1][-1] if p.reg else q)


def _discrete_segment(p: Problem, i0: int, i1: int, states, a, q):
    step = step_function(p.solver)
    reg = p.reg
    for k in range(i1 - 1, i0 - 1, -1):
        t0, t1 = p.grid[k], p.grid[k + 1]
        u = states[k - i0]
        if p.support.backend == "func":
            def one_step(x, th):
                return step(p.flow(graph=True, theta=th), t0, t1, x)

            _, pullback = torch.func.vjp(one_step, u, p.theta)
            a_new, q_step = pullback(a)
        else:
            with torch.enable_grad():
                x = u.detach().requires_grad_(True)
                th = p.theta.detach().requires_grad_(True) if reg else p.theta
                y1 = step(p.flow(graph=True, theta=th), t0, t1, x)
                grads = torch.autograd.grad(y1, (x, th) if reg else (x,), a)
            a_new, q_step = grads[0], (grads[1] if reg else None)
        a = a_new.detach()
        if reg:
            q = q + q_step.detach()
    return a, q


def _capacity(budget: int, depth: int) -> int:
    """Steps whose adjoint can be swept holding at most ``budget`` states, recomputing ``depth`` levels deep."""
    if depth == 0:
        return budget - 1
    return sum(_capacity(b, depth - 1) for b in range(2, budget + 1))


def _pieces(n: int, budget: int) -> list[int]:
    """Lengths of the pieces one level splits n steps into (binomial checkpointing, as in revolve).

    Piece j is swept while this level holds j boundary states, so it gets
    budget - j; its length is what that budget can sweep one level shallower.
    """
    depth = 1
    while _capacity(budget, depth) < n:
        depth += 1
    lengths = []
    for j in range(budget - 1):
        lengths.append(min(_capacity(budget - j, depth - 1), n - sum(lengths)))
        if sum(lengths) == n:
            break
    return lengths


class _Sweep:
    """The backward pass over [i0, i1] from the state at i0, holding at most ``budget`` states."""

    def __init__(self, p: Problem, segment):
        self.p, self.segment = p, segment
        self.forward = p.flow()
        self.peak = 0

    @staticmethod
    def bounds(i0: int, i1: int, budget: int) -> list[int]:
        bounds = [i0]
        for length in _pieces(i1 - i0, budget):
            bounds.append(bounds[-1] + length)
        return bounds

    def __call__(self, i0, i1, u0, budget, held, a, q, stored=None):
        """``stored``: the states at this level's piece starts (all states on a leaf), if already known."""
        n = i1 - i0
        if n + 1 <= budget:
            if stored is None:
                stored = self.p.solve(self.forward, u0, range(i0, i1 + 1))
            self.peak = max(self.peak, held + n + 1)
            return self.segment(self.p, i0, i1, stored, a, q)
        bounds = self.bounds(i0, i1, budget)
        if stored is None:
            # separate tensors, so that each is freed as soon as its piece is done
            stored = [row.clone() for row in self.p.solve(self.forward, u0, bounds[:-1])]
        self.peak = max(self.peak, held + len(stored))
        for j in range(len(bounds) - 2, -1, -1):
            a, q = self(bounds[j], bounds[j + 1], stored[j], budget - j, held + j, a, q)
            del stored[j]
        return a, q


def adjoint(p: Problem, scheme: str = "continuous", checkpoints=None, memory_budget_mb: float = 256.0):
    """The Adjoint MAML meta-gradient: forward solve without a graph, adjoint backward with HVPs.

    * ``scheme="continuous"``: the adjoint ODE above, integrated backward with
      the forward solver's own scheme (torchdiffeq, so ``dopri5`` works too),
      u(t) between stored states by cubic Hermite interpolation.  It converges
      to the exact flow's meta-gradient at the scheme's order as
      ``step_size`` shrinks; it is not the gradient of the discrete steps.
    * ``scheme="discrete"``: the exact transpose of each forward step (a
      vector-Jacobian product of the one-step map, one step's graph at a time);
      equal to ``"maml"`` to rounding.  Fixed-grid solvers only.
    * ``checkpoints=None`` keeps every state (the reference code's choice):
      memory grows linearly with ``steps``.  An integer c >= 3 holds at most c
      states at any time, whatever ``steps``: binomial checkpointing (as in
      revolve) splits the steps into pieces and recomputes each from its
      stored start; ``stats["recompute_depth"]`` levels of recomputation,
      each one more forward solve, where c**depth / depth! ~ steps.
      ``"sqrt"`` is the smallest c with a single level, c (c - 1) / 2 >= steps,
      about sqrt(2 steps): memory grows like sqrt(steps), time by one forward solve.
    * ``checkpoints="auto"``: every state when steps + 1 states fit in
      ``memory_budget_mb`` (256 MB by default: 27,000 states of a 2 x 32 MLP,
      about 600 of Conv-4), else as many as fit (at least 3), checkpointed:
      the fastest schedule the budget allows, so nobody has to pick c.
      ``stats["checkpoints"]`` says what was chosen.
    * Time: one forward solve, then per step as many HVPs as the scheme has
      stages (the continuous scheme adds one gradient per step for the
      interpolant, the discrete one recomputes its stages).  Never a graph
      across steps, never a full Hessian.
    * Takes exactly ``steps`` backward steps for ``steps`` forward ones (the
      reference code takes one more).
    """
    n = p.steps
    if checkpoints == "auto":
        state_mb = p.theta.numel() * p.theta.element_size() / 2**20
        checkpoints = None if (n + 1) * state_mb <= memory_budget_mb else max(3, int(memory_budget_mb // state_mb))
    if checkpoints is None:
        budget = n + 1
    elif checkpoints == "sqrt":  # the fewest states that need one recompute level: c (c - 1) / 2 >= steps
        budget = max(3, math.ceil((1 + math.sqrt(1 + 8 * n)) / 2))
    else:
        budget = checkpoints
    sweep = _Sweep(p, _continuous_segment if scheme == "continuous" else _discrete_segment)
    with torch.no_grad():
        if n + 1 <= budget:  # everything fits: the forward solve keeps every state
            stored = p.solve(sweep.forward, p.theta, range(n + 1))
            u_T = stored[-1]
        else:  # the forward solve keeps the first level's piece starts, and u(T)
            out = p.solve(sweep.forward, p.theta, sweep.bounds(0, n, budget)[:-1] + [n])
            stored = [row.clone() for row in out[:-1]]
            u_T = out[-1].clone()
            del out
        qloss, a = query_value_and_grad(p, u_T)
        a, q = sweep(0, n, p.theta, budget, 0, a, torch.zeros_like(a), stored)
        del stored
    depth = 0
    while budget < n + 1 and _capacity(budget, depth) < n:
        depth += 1
    return a + q, u_T, qloss, {"stored_states": sweep.peak, "recompute_depth": depth, "scheme": scheme,
                               "checkpoints": budget if budget < n + 1 else None}


def backsolve(p: Problem, reconstruction_tol: float = 1e-3):
    """Reconstruct u(t) backward in time together with the adjoint, as torchdiffeq's odeint_adjoint does.

    * Memory: constant in ``steps`` (only u(T) is kept).
    * Time: one forward solve, one backward solve of (u, a, q) with an HVP and a
      gradient per stage.
    * Exactness: none to speak of for gradient flows.  The flow contracts
      (eigenvalues of H + reg > 0), so integrating it backward expands every
      error like exp(lambda_max * T): the reconstructed u(0) drifts from theta
      and the gradient with it, to overflow on long or stiff horizons.  This
      method is here to show that; it warns (``BacksolveWarning``) when u(0)
      comes back non-finite or more than ``reconstruction_tol`` (relative) away
      from theta.  Use ``"adjoint"`` (stored states) or ``"adjoint"`` with
      ``checkpoints`` instead.  ``stats["reconstruction_error"]`` reports the drift.
    """
    reg = p.reg
    flow = p.flow()
    with torch.no_grad():
        u_T = p.solve(flow, p.theta, [0, p.steps])[-1]
        qloss, a = query_value_and_grad(p, u_T)

        def field(t, y):
            u, lam = y[0], p.masked(y[1])
            g, hv = p.support.hvp(u, lam)
            if reg:
                return flow.velocity(u, g), hv + reg * lam, -reg * lam
            return flow.velocity(u, g), hv

        y_T = (u_T, a, torch.zeros_like(a)) if reg else (u_T, a)
        try:
            out = p.solve(field, y_T, [p.steps, 0])
            u_0, a_0 = out[0][-1], out[1][-1]
            grad = a_0 + out[2][-1] if reg else a_0
        except FloatingPointError:
            u_0 = torch.full_like(a, float("nan"))
            grad = torch.full_like(a, float("nan"))
    drift = float(torch.linalg.vector_norm(u_0 - p.theta) / torch.linalg.vector_norm(p.theta).clamp_min(1e-300))
    if not (drift <= reconstruction_tol) or not bool(torch.isfinite(grad).all()):
        warnings.warn(
            f"backsolve: the state reconstructed backward in time is {drift:.3g} (relative) away from"
            f" theta at t=0, so this meta-gradient is unreliable. Gradient flow contracts, and running it"
            f" backward amplifies errors like exp(lambda_max * T). Use method='adjoint' (stored states),"
            f" or method='adjoint' with checkpoints=k to bound memory.",
            BacksolveWarning,
            stacklevel=4,
        )
    return grad, u_T, qloss, {"stored_states": 1, "reconstruction_error": drift}


__all__ = ["adjoint", "backsolve", "BacksolveWarning"]
