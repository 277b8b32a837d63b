"""The A-MAML meta-gradient ("adjoint"): the adjoint ODE solved backward along the forward states.

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
from .checkpointing import Reverse, forward_steps, repetitions
from .core import Problem, query_value_and_grad


class GridSchemeWarning(RuntimeWarning):
    """scheme="grid" took backward steps past its stability limit: its meta-gradient is unreliable."""


# the largest step x eigenvalue along the negative real axis for which each scheme's steps do not grow
STABLE_STEP = {"euler": 2.0, "midpoint": 2.0, "rk4": 2.785}


class AdjointField:
    """The backward system (a, q) -> ((H + reg) a, -reg a) along stored states (public: the horizon explorer
    batches it over every horizon at once).

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
    field = AdjointField(p, grid, states)
    y0 = (a, q) if p.reg else (a,)
    out = p.solve(field, y0, [i1 - i0, 0], grid=grid)
    a = out[0][-1]
    return a, (out[1][-1] if p.reg else q)


# ---------------------------------------------------------------- backward sweeps, fed the states in reverse
class _Backward:
    """The adjoint (a, q) carried from t_n down to t_0 as the states arrive."""

    @staticmethod
    def holds(p: Problem, stored: bool) -> int:
        """How many forward states the sweep keeps of its own (they count towards the checkpoints)."""
        return 0

    def __init__(self, p: Problem, a):
        self.p, self.a, self.q = p, a, torch.zeros_like(a)
        self.times = p.grid.tolist()

    def block(self, i: int, rows):
        for j in range(len(rows) - 1, -1, -1):
            self.state(i + j, rows[j])

    def state(self, k: int, u):
        raise NotImplementedError


class _ContinuousBackward(_Backward):
    """The adjoint ODE by the forward solver's own scheme on each block (plus the state above it), interpolated."""

    @staticmethod
    def holds(p: Problem, stored: bool) -> int:
        return 0 if stored else 1  # stored: one block, nothing above it

    def __init__(self, p: Problem, a):
        super().__init__(p, a)
        self.above = None  # the lowest state of the previous block

    def block(self, i: int, rows):
        states = list(rows.unbind(0)) + ([self.above] if self.above is not None else [])
        if len(states) > 1:
            self.a, self.q = _continuous_segment(self.p, i, i + len(states) - 1, states, self.a, self.q)
        self.above = rows[0].clone()


class _DiscreteBackward(_Backward):
    """The exact transpose of each forward step: a vector-Jacobian product of the one-step map, one step at a time."""

    def __init__(self, p: Problem, a):
        super().__init__(p, a)
        self.step = step_function(p.solver)

    def state(self, k: int, u):
        p, reg = self.p, self.p.reg
        if k == p.steps:
            return
        t0, t1 = self.times[k], self.times[k + 1]
        if p.support.backend == "func":
            def one_step(x, th):
                return self.step(p.flow(graph=True, theta=th), t0, t1, x)

            _, pullback = torch.func.vjp(one_step, u, p.theta)
            a_new, q_step = pullback(self.a)
        else:
            with torch.enable_grad():
                x = u.detach().requires_grad_(True)
                th = p.theta.detach().requires_grad_(True) if reg else p.theta
                y1 = self.step(p.flow(graph=True, theta=th), t0, t1, x)
                grads = torch.autograd.grad(y1, (x, th) if reg else (x,), self.a)
            a_new, q_step = grads[0], (grads[1] if reg else None)
        self.a = a_new.detach()
        if reg:
            self.q = self.q + q_step.detach()


class _GridBackward(_Backward):
    """The adjoint ODE by a scheme whose stages all fall on forward states: no interpolation, no extra gradients.

    euler: Euler's steps of h (its stage is the grid point: the continuous scheme's numbers).  midpoint and rk4:
    the midpoint rule and classical rk4 over two forward steps, 2h, their middle stages at the state between;
    with an odd number of steps the first one, [t_0, t_1], is the continuous scheme's step.  Each state is
    linearised once and dropped after its HVPs (1 gradient and 1 (midpoint) or 2 (rk4) HVPs a forward step).
    """

    def __init__(self, p: Problem, a):
        super().__init__(p, a)
        self.pairs = p.solver != "euler"
        self.k1 = None  # (a, q) stage at the top of the current unit
        self.mid = None  # rk4: k2 + k3 at its middle state; midpoint: k2
        self.top = p.steps  # the upper end of the current unit
        self.low = None  # u_1, held for an odd first step
        self.curvature = -math.inf  # the largest Rayleigh quotient a.(H + reg)a / a.a met at a unit's top

    def _top(self, lin):
        """The stage at the top of a unit, and the curvature it shows (a lower bound on λmax there)."""
        self.k1 = self._field(lin, self.a)
        a = self.p.masked(self.a)
        norm = float(a @ a)
        if norm > 0:
            self.curvature = max(self.curvature, float(a @ self.k1[0]) / norm)

    def check(self) -> float:
        """step x the largest curvature met; warns when that passes the scheme's stability limit.

        The quotient never exceeds λmax, so a warning is never false; when the steps are unstable the
        growing mode takes over a, and the quotient climbs to its eigenvalue, so they are caught.
        """
        p = self.p
        step = p.step_size * (2 if self.pairs else 1)
        value = step * self.curvature
        if value > STABLE_STEP[p.solver]:
            warnings.warn(
                f"scheme='grid': its backward {p.solver} steps of {step:g} met curvature {self.curvature:.4g}"
                f" (step x curvature {value:.3g} > {STABLE_STEP[p.solver]}, the stability limit), so the adjoint"
                f" grew without bound and this meta-gradient is unreliable. Use scheme='continuous' (stable"
                f" wherever the forward solve is) or a smaller step_size.",
                GridSchemeWarning,
                stacklevel=4,
            )
        return value

    def _field(self, lin, a):
        """(da, dq) at a linearised state: ((H + reg) a, -reg a) with a masked to the adapted parameters."""
        a = self.p.masked(a)
        hv = lin.hvp(a)
        reg = self.p.reg
        return (hv + reg * a, -reg * a) if reg else (hv, None)

    @staticmethod
    def holds(p: Problem, stored: bool) -> int:
        return int(p.solver != "euler" and p.steps % 2 == 1)  # u_1, for an odd first step

    def _shift(self, scale, k):
        """The adjoint at a stage: a + scale * k (q does not enter the field)."""
        return self.a + scale * k[0]

    def _advance(self, dt, total):
        self.a = self.a + dt * total[0]
        if self.p.reg:
            self.q = self.q + dt * total[1]

    def state(self, k: int, u):
        p = self.p
        if not self.pairs:  # euler: a_k = a_{k+1} + (t_k - t_{k+1}) F(u_{k+1}) a_{k+1}
            if k < p.steps:
                self._advance(self.times[k] - self.times[k + 1], self.k1)
            if k > 0:
                self._top(p.support.linearize(u))
            return
        odd = p.steps % 2 == 1
        if odd and k == 0:  # the first step [t_0, t_1], by the continuous scheme between u_0 and u_1
            self.a, self.q = _continuous_segment(p, 0, 1, [u, self.low], self.a, self.q)
            return
        lin = p.support.linearize(u)
        if k < self.top and (self.top - k) % 2 == 1:  # the middle state of [t_k - h, t_k + h]
            dt = self.times[self.top - 2] - self.times[self.top]
            if p.solver == "midpoint":
                self.mid = self._field(lin, self._shift(0.5 * dt, self.k1))
            else:
                k2 = self._field(lin, self._shift(0.5 * dt, self.k1))
                k3 = self._field(lin, self._shift(0.5 * dt, k2))
                self.mid = (k2, k3)
            return
        if k < self.top:  # the bottom of the unit: finish its step
            dt = self.times[k] - self.times[self.top]
            if p.solver == "midpoint":
                self._advance(dt, self.mid)
            else:
                k2, k3 = self.mid
                k4 = self._field(lin, self._shift(dt, k3))
                parts = (self.k1, k2, k2, k3, k3, k4)
                total = [sum(x[0] for x in parts)]
                if p.reg:
                    total.append(sum(x[1] for x in parts))
                self._advance(dt / 6, total)
            self.top = k
        if odd and k == 1:
            self.low = u.clone()
            return
        if k > 0:
            self._top(lin)


BACKWARD = {"continuous": _ContinuousBackward, "discrete": _DiscreteBackward, "grid": _GridBackward}


def _budget(p: Problem, checkpoints, memory_budget_mb: float, extra: int):
    """The most states to hold (None: every state), from ``checkpoints`` as :func:`adjoint` reads it."""
    n = p.steps
    if checkpoints == "auto":
        state_mb = p.theta.numel() * p.theta.element_size() / 2**20
        return None if (n + 1 + extra) * state_mb <= memory_budget_mb else max(3, int(memory_budget_mb // state_mb))
    if checkpoints == "sqrt":  # the fewest with each step advanced at most twice: C(slots + 2, 2) >= n + 1
        slots = 1
        while math.comb(slots + 2, 2) < n + 1:
            slots += 1
        budget = max(3, slots + 1 + extra)
    else:
        budget = checkpoints
    return None if budget is None or budget >= n + 1 + extra else budget


def adjoint(p: Problem, scheme: str = "continuous", checkpoints=None, memory_budget_mb: float = 256.0):
    """The Adjoint MAML meta-gradient: forward solve without a graph, adjoint backward with HVPs.

    * ``scheme="continuous"``: the adjoint ODE above, integrated backward with
      the forward solver's own scheme (torchdiffeq, so ``dopri5`` works too),
      u(t) between stored states by cubic Hermite interpolation.  It converges
      to the exact flow's meta-gradient at the scheme's order as
      ``step_size`` shrinks; it is not the gradient of the discrete steps.
    * ``scheme="grid"``: the same adjoint ODE by a scheme whose stages fall on
      the forward states only (Euler over h; the midpoint rule and classical
      rk4 over 2h, their middle stage at the state between), so every state is
      linearised once and nothing is interpolated: for rk4 one gradient and two
      HVPs a forward step against the continuous scheme's three and four.  The
      same order as the solver, with a larger constant (2h), and rk4's stable
      steps halve (h * lambda_max < 1.39); past that it warns
      (``GridSchemeWarning``; ``stats["step_curvature"]``: step x the largest
      curvature a.Ha / a.a met, a lower bound of step x lambda_max).  Fixed-grid
      solvers only.
    * ``scheme="discrete"``: the exact transpose of each forward step (a
      vector-Jacobian product of the one-step map, one step's graph at a time);
      equal to ``"maml"`` to rounding.  Fixed-grid solvers only.
    * ``checkpoints=None`` keeps every state (the reference code's choice):
      memory grows linearly with ``steps``.  An integer c >= 3 holds at most c
      states at any time, whatever ``steps``, and recomputes the others from
      the stored ones by the fewest forward steps any schedule holding c
      states can take (binomial checkpointing, revolve's optimal schedule):
      with s = c - 1 stored states each step is advanced at most r times, the
      smallest r with C(s + r, s) >= steps + 1 (``stats["repetitions"]``;
      ``stats["forward_steps"]`` counts them all).  ``"sqrt"`` is the
      fewest states with r = 2, C(c + 1, 2) >= steps + 1, about
      sqrt(2 steps): memory grows like sqrt(steps), time by one forward solve.
      The continuous scheme holds one state of its own (the one above each
      block of states), which counts among the c.
    * ``checkpoints="auto"``: every state when they fit in
      ``memory_budget_mb`` (256 MB by default: 27,000 states of a 2 x 32 MLP,
      about 600 of Conv-4), else as many as fit (at least 3), checkpointed:
      the fastest schedule the budget allows, so nobody has to pick c.
      ``stats["checkpoints"]`` says what was chosen.
    * Time: one forward solve, then per step as many HVPs as the scheme has
      stages (the continuous scheme adds gradients for the interpolant, the
      discrete one recomputes its stages).  Never a graph across steps, never
      a full Hessian.
    * Takes exactly ``steps`` backward steps for ``steps`` forward ones (the
      reference code takes one more).
    """
    n = p.steps
    sweep_type = BACKWARD[scheme]
    budget = _budget(p, checkpoints, memory_budget_mb, sweep_type.holds(p, stored=False))
    extra = sweep_type.holds(p, stored=budget is None)
    reverse = Reverse(p, n + 1 + extra if budget is None else budget, extra)
    sweep = None
    with torch.no_grad():
        for i, rows in reverse.blocks():
            if sweep is None:  # the first block ends with u(T)
                u_T = rows[-1].clone()
                qloss, a = query_value_and_grad(p, u_T)
                sweep = sweep_type(p, a)
            sweep.block(i, rows)
            del rows
    a, q = sweep.a, sweep.q
    slots = reverse.slots
    stats = {"stored_states": reverse.peak, "scheme": scheme, "checkpoints": budget,
             "repetitions": repetitions(n + 1, slots), "forward_steps": forward_steps(n + 1, slots)}
    if scheme == "grid":
        stats["step_curvature"] = sweep.check()
    return a + q, u_T, qloss, stats


__all__ = ["adjoint", "AdjointField", "GridSchemeWarning"]
