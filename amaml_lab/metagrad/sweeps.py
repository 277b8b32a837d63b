"""The adjoint's backward sweeps, fed the forward states in reverse: one per scheme (continuous, discrete, grid).

A sweep carries the adjoint (a, q) from t_n down to t_0.  ``a`` is one vector (one horizon, as
:func:`amaml_lab.meta_gradient` asks) or the rows of a matrix, one a horizon: the adjoint equations are
linear, so rows never interact, and a row joins the sweep when the sweep reaches its horizon
(:func:`adjoint_rows`, which the horizon explorer draws from).  Each Hessian-vector product is then one
batched call for every row.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import torch

from ..flow import STAGES, step_function
from .core import Problem
from .fields import CHUNK, ON_GRID, AdjointField, batched_hv, continuous_steps


class GridSchemeWarning(RuntimeWarning):
    """scheme="grid" took backward steps past its stability limit: its meta-gradient is unreliable."""


# the largest step x eigenvalue along the negative real axis for which each scheme's steps do not grow
STABLE_STEP = {"euler": 2.0, "midpoint": 2.0, "rk4": 2.785}


def _solve_back(p: Problem, field: AdjointField, grid, hi: int, lo: int, a, q):
    """(a, q) carried by the solver's scheme from grid index ``hi`` down to ``lo`` of ``grid``."""
    y0 = (a, q) if p.reg else (a,)
    out = p.solve(field, y0, [hi, lo], grid=grid)
    return out[0][-1], (out[1][-1] if p.reg else q)


def _continuous_segment(p: Problem, i0: int, i1: int, states, a, q):
    grid = p.grid[i0 : i1 + 1]
    return _solve_back(p, AdjointField(p, grid, states), grid, i1 - i0, 0, a, q)


class _Backward:
    """The adjoint (a, q) carried from t_n down to t_0 as the states arrive; ``joins`` maps a step k to the rows
    that start there (a(T_k) for the horizon k), added when the sweep reaches u_k."""

    @staticmethod
    def holds(p: Problem, stored: bool) -> int:
        """How many forward states the sweep keeps of its own (they count towards the checkpoints)."""
        return 0

    HELD = ()  # the attributes in which the sweep keeps forward states of its own

    def held(self) -> int:
        """How many forward states the sweep holds of its own right now (counted, not declared)."""
        return sum(getattr(self, name) is not None for name in self.HELD)

    def __init__(self, p: Problem, a, joins=None):
        self.p, self.a, self.q = p, a, torch.zeros_like(a)
        self.times = p.grid.tolist()
        self.joins = dict(joins or {})

    def _join(self, k: int):
        rows = self.joins.pop(k, None)
        if rows is not None:
            self.a = torch.cat([self.a, rows])
            self.q = torch.cat([self.q, torch.zeros_like(rows)])

    def block(self, i: int, rows):
        for j in range(len(rows) - 1, -1, -1):
            self.state(i + j, rows[j])

    def state(self, k: int, u):
        raise NotImplementedError


class _ContinuousBackward(_Backward):
    """The adjoint ODE by the forward solver's own scheme on each block (plus the state above it), interpolated."""

    HELD = ("above",)

    @staticmethod
    def holds(p: Problem, stored: bool) -> int:
        return 0 if stored else 1  # stored: one block, nothing above it

    def __init__(self, p: Problem, a, joins=None):
        super().__init__(p, a, joins)
        self.above = None  # the lowest state of the previous block

    def block(self, i: int, rows):
        states = list(rows.unbind(0)) + ([self.above] if self.above is not None else [])
        top = i + len(states) - 1
        if top > i and hasattr(self.p.support, "run"):  # compiled: CHUNK backward steps a graph
            self._compiled(i, top, rows)
        elif top > i:
            grid = self.p.grid[i : top + 1]
            field = AdjointField(self.p, grid, states)
            hi = top
            for lo in sorted({k for k in self.joins if i <= k < top} | {i}, reverse=True):
                self.a, self.q = _solve_back(self.p, field, grid, hi - i, lo - i, self.a, self.q)
                self._join(lo)
                hi = lo
        else:
            self._join(i)
        self.above = rows[0].clone()

    def _compiled(self, i: int, top: int, rows):
        """Steps top -> i in graphs of CHUNK steps (fewer where a row joins: a graph's rows are fixed); a chunk's
        states are a view of the block's rows (the top chunk's also the state above the block)."""
        p, hi, interior = self.p, top, STAGES[self.p.solver] - len(ON_GRID[self.p.solver])
        while hi > i:
            lo = max([i, hi - CHUNK] + [k for k in self.joins if i < k < hi])
            n, width = hi - lo, self.a.shape[0] if self.a.dim() == 2 else 1
            states = rows[lo - i : hi - i + 1] if hi - i < len(rows) else torch.cat([rows[lo - i :], self.above[None]])
            p.support.count(n + 1 + n * interior, n * STAGES[p.solver] * width)
            self.a, self.q = p.support.run(
                continuous_steps, p.solver, states, self.a, self.q, p.grid[lo : hi + 1], p.theta, p.reg, p.mask
            )
            self._join(lo)
            hi = lo


class _DiscreteBackward(_Backward):
    """The exact transpose of each forward step: a vector-Jacobian product of the one-step map, one step at a time."""

    def __init__(self, p: Problem, a, joins=None):
        super().__init__(p, a, joins)
        self.step = step_function(p.solver)

    def block(self, i: int, rows):
        """Compiled, every state in one block (no checkpoints): the steps in one graph
        (:func:`amaml_lab.compiled.pullback_steps`), split where a row joins (a graph's rows are fixed); else a step
        at a time (a checkpointed sweep's blocks have many lengths, and a scan's graph has its length)."""
        p = self.p
        if not hasattr(p.support, "pullbacks") or len(rows) != p.steps + 1:
            return super().block(i, rows)
        hi = min(i + len(rows), p.steps)  # the states i .. hi - 1 each take a step back (u_n takes none)
        while hi > i:
            lo = max([i] + [k for k in self.joins if i <= k < hi])
            if hi - lo == 1:  # one step: its own graph, not a scan of one
                self.state(lo, rows[lo - i])
            else:
                self.a, q = p.support.pullbacks(
                    p.solver, rows[lo - i : hi - i], self.a, p.grid[lo : hi + 1], p.theta, p.reg, p.mask
                )
                if p.reg:
                    self.q = self.q + q
                self._join(lo)
            hi = lo

    def state(self, k: int, u):
        p, reg, rows = self.p, self.p.reg, self.a.dim() == 2
        if k == p.steps:
            return
        t0, t1 = self.times[k], self.times[k + 1]
        if hasattr(p.support, "pullback"):  # compiled: the step's vector-Jacobian product is one graph
            a_new, q_step = p.support.pullback(p.solver, u, self.a, p.grid[k], p.grid[k + 1], p.theta, reg, p.mask)
        elif p.support.backend == "func":

            def one_step(x, th):
                return self.step(p.flow(graph=True, theta=th), t0, t1, x)

            _, pullback = torch.func.vjp(one_step, u, p.theta)
            a_new, q_step = torch.func.vmap(pullback)(self.a) if rows else pullback(self.a)
        else:
            with torch.enable_grad():
                x = u.detach().requires_grad_(True)
                th = p.theta.detach().requires_grad_(True) if reg else p.theta
                y1 = self.step(p.flow(graph=True, theta=th), t0, t1, x)
                grads = torch.autograd.grad(y1, (x, th) if reg else (x,), self.a, is_grads_batched=rows)
            a_new, q_step = grads[0], (grads[1] if reg else None)
        self.a = a_new.detach()
        if reg:
            self.q = self.q + q_step.detach()
        self._join(k)


class _GridBackward(_Backward):
    """The adjoint ODE by a scheme whose stages all fall on forward states: no interpolation, no extra gradients.

    euler: Euler's steps of h (its stage is the grid point: the continuous scheme's numbers).  midpoint and rk4:
    the midpoint rule and classical rk4 over two forward steps, 2h, their middle stages at the state between;
    with an odd number of steps the first one, [t_0, t_1], is the continuous scheme's step.  Each state is
    linearised once and dropped after its HVPs (1 gradient and 1 (midpoint) or 2 (rk4) HVPs a forward step).
    Rows join at the top of a unit, so with midpoint and rk4 every horizon has the parity of ``steps``.
    """

    HELD = ("low",)

    def __init__(self, p: Problem, a, joins=None):
        super().__init__(p, a, joins)
        self.pairs = p.solver != "euler"
        if self.pairs and any((p.steps - k) % 2 for k in self.joins):
            raise ValueError(
                f"scheme='grid' with solver={p.solver!r} steps in units of two: every horizon must"
                f" have the parity of steps={p.steps}; got {sorted(self.joins)}"
            )
        self.k1 = None  # (a, q) stage at the top of the current unit
        self.mid = None  # rk4: k2 + k3 at its middle state; midpoint: k2
        self.top = p.steps  # the upper end of the current unit
        self.low = None  # u_1, held for an odd first step
        self.curvature = -math.inf  # the largest Rayleigh quotient a.(H + reg)a / a.a met at a unit's top

    def _top(self, lin):
        """The stage at the top of a unit, and the curvature it shows (a lower bound on λmax there)."""
        self.k1 = self._field(lin, self.a)
        a = self.p.masked(self.a)
        norm = float((a * a).sum())
        if norm > 0:
            self.curvature = max(self.curvature, float((a * self.k1[0]).sum()) / norm)

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
        hv = batched_hv(lin, a)
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

    def _euler(self, k: int, u):
        """a_k = a_{k+1} + (t_k - t_{k+1}) F(u_{k+1}) a_{k+1}."""
        if k < self.p.steps:
            self._advance(self.times[k] - self.times[k + 1], self.k1)
        self._join(k)
        if k > 0:
            self._top(self.p.support.linearize(u))

    def _finish(self, k: int, lin):
        """The bottom of a unit, u_k: its step from the top."""
        dt = self.times[k] - self.times[self.top]
        if self.p.solver == "midpoint":
            self._advance(dt, self.mid)
        else:
            k2, k3 = self.mid
            k4 = self._field(lin, self._shift(dt, k3))
            parts = (self.k1, k2, k2, k3, k3, k4)
            total = [sum(x[0] for x in parts)]
            if self.p.reg:
                total.append(sum(x[1] for x in parts))
            self._advance(dt / 6, total)
        self.top = k

    def state(self, k: int, u):
        p = self.p
        if not self.pairs:
            return self._euler(k, u)
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
        if k < self.top:
            self._finish(k, lin)
        self._join(k)
        if odd and k == 1:
            self.low = u.clone()
            return
        if k > 0:
            self._top(lin)


BACKWARD = {"continuous": _ContinuousBackward, "discrete": _DiscreteBackward, "grid": _GridBackward}


def adjoint_rows(p: Problem, states: torch.Tensor, ends, cotangents: torch.Tensor, scheme: str) -> torch.Tensor:
    """The adjoint's meta-gradient of the inner loop stopped at step ``ends[j]``, a row each, in one sweep.

    ``states`` are the stored forward states u_0 .. u_K (K = max(ends) <= p.steps), ``cotangents[j]`` is
    grad L_Q(u(T_j)); row j is what :func:`amaml_lab.meta_gradient` gives with ``steps=ends[j]``, method
    ``"adjoint"`` and ``scheme`` (``"discrete"``: ``"maml"`` to rounding).  The grid scheme with midpoint or
    rk4 steps in units of two that end at each horizon, so horizons of each parity sweep apart.
    """
    ends = [int(k) for k in ends]
    if len(set(ends)) != len(ends) or min(ends) < 1 or max(ends) > p.steps:
        raise ValueError(f"ends must be distinct steps in 1..{p.steps}; got {ends}")
    pairs = scheme == "grid" and p.solver != "euler"
    groups = (
        [[j for j in range(len(ends)) if ends[j] % 2 == parity] for parity in (0, 1)]
        if pairs
        else [list(range(len(ends)))]
    )
    out = torch.empty_like(cotangents)
    for group in filter(None, groups):
        order = sorted(group, key=lambda j: -ends[j])  # the order rows join in
        top = ends[order[0]]
        sub = dataclasses.replace(p, steps=top, grid=p.grid[: top + 1])
        joins = {ends[j]: cotangents[j : j + 1] for j in order[1:]}
        sweep = BACKWARD[scheme](sub, cotangents[order[:1]], joins)
        with torch.no_grad():
            sweep.block(0, states[: top + 1])
        out[order] = sweep.a + sweep.q
    return out


__all__ = ["AdjointField", "BACKWARD", "GridSchemeWarning", "STABLE_STEP", "adjoint_rows"]
