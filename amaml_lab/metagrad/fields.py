"""The continuous adjoint's field: the backward system (a, q) -> ((H + reg) a, -reg a) along stored forward states,
u(t) between them by cubic Hermite interpolation (:class:`AdjointField`, eager), and the same arithmetic as one pure
function of a few backward steps for the compiled path (:func:`continuous_steps`).  The sweeps
(:mod:`.sweeps`) carry it from t_n down to t_0.
"""

from __future__ import annotations

import bisect

import torch

from ..compiled import hvp, hvp_rows, pure_flow
from ..flow import step_function
from .core import Problem


def batched_hv(lin, a: torch.Tensor) -> torch.Tensor:
    """H a at a linearised state, for one vector or for each row of a matrix (one batched product)."""
    return lin.hvp(a) if a.dim() == 1 else lin.hvp_rows(a)


def hermite(u0, f0, u1, f1, t, t0, t1):
    """u(t) on [t0, t1] by the cubic Hermite interpolant of the states u0, u1 and their velocities f0, f1: u0 and
    u1 exactly at the ends (the weights are then exactly 1 and 0), error O(h^4) between."""
    h = t1 - t0
    s = (t - t0) / h
    h00, h10 = (1 + 2 * s) * (1 - s) ** 2, s * (1 - s) ** 2 * h
    h01, h11 = s * s * (3 - 2 * s), s * s * (s - 1) * h
    return u0 * h00 + f0 * h10 + u1 * h01 + f1 * h11


# the continuous scheme's stages that fall on a backward step's ends (stage -> 1: the step's upper state, where it
# starts; 0: its lower one): there the compiled sweep reuses the state's linearization
ON_GRID = {"euler": {0: 1}, "midpoint": {0: 1}, "rk4": {0: 1, 3: 0}}
CHUNK = 2  # compiled: backward steps per graph (each state inside a graph is linearised once for both its steps)


def continuous_steps(loss, solver: str, states, a, q, times, theta, reg: float, mask):
    """(a, q) carried from times[-1] down to times[0] (len(times) - 1 steps of ``solver``) by the continuous
    scheme, as one pure function for the compiled path: :class:`AdjointField`'s arithmetic, each stored state
    linearised once (its gradient gives its velocity, its pullback the HVPs of the stages on it), u(t) by
    :func:`hermite` between."""
    flow, rows = pure_flow(loss, theta, reg, mask), a.dim() == 2
    lins = [torch.func.vjp(torch.func.grad(loss), u) for u in states.unbind(0)]
    velocity = [flow.velocity(u, g) for u, (g, _) in zip(states.unbind(0), lins)]
    size, on_grid = a.numel(), ON_GRID[solver]
    y = torch.cat([a.reshape(-1), q.reshape(-1)]) if reg else a.reshape(-1)
    for k in range(len(lins) - 2, -1, -1):
        stage = [0]

        def field(t, y, k=k, stage=stage):
            ad = y[:size].view(a.shape)
            ad = ad * mask if mask is not None else ad
            if stage[0] in on_grid:
                back = lins[k + on_grid[stage[0]]][1]
                hv = torch.func.vmap(back)(ad)[0] if rows else back(ad)[0]
            else:
                u = hermite(states[k], velocity[k], states[k + 1], velocity[k + 1], t, times[k], times[k + 1])
                hv = hvp_rows(loss, u, ad)[1] if rows else hvp(loss, u, ad)[1]
            stage[0] += 1
            return torch.cat([(hv + reg * ad).reshape(-1), (-reg * ad).reshape(-1)]) if reg else hv.reshape(-1)

        y = step_function(solver)(field, times[k + 1], times[k], y)
    return (y[:size].view(a.shape), y[size:].view(q.shape)) if reg else (y.view(a.shape), q)


class AdjointField:
    """The backward system (a, q) -> ((H + reg) a, -reg a) along stored states.

    Between stored states u(t) is the cubic Hermite interpolant of the states
    and their velocities (error O(h^4), so rk4 keeps its order).  At a stored
    state the gradient's graph is kept while the sweep is near it: the
    velocity and every HVP there (rk4 evaluates each stored state twice) share
    one gradient evaluation.
    """

    def __init__(self, p: Problem, grid: torch.Tensor, states):
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
        u = hermite(self.states[k], self._point(k)[1], self.states[k + 1], self._point(k + 1)[1], tf, t0, t1)
        return u, None

    def __call__(self, t, y):
        a = self.p.masked(y[0])
        u, k = self.state_at(t)
        if k is not None:
            hv = batched_hv(self._point(k)[0], a)
        elif a.dim() == 1:
            hv = self.p.support.hvp(u, a)[1]
        else:
            hv = self.p.support.hvp_rows(u, a)[1]
        reg = self.p.reg
        if reg:
            return hv + reg * a, -reg * a
        return (hv,)


__all__ = ["AdjointField", "CHUNK", "ON_GRID", "batched_hv", "continuous_steps", "hermite"]
