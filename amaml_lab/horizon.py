"""Every method's meta-gradient at every inner-loop length, from one trajectory: the horizon explorer's data.

One small 1-D regression task (a sinusoid, a tanh MLP 1-32-1) and one stored
trajectory of K inner steps serve every horizon T_j = k_j * h on a log-spaced
grid k_1 < ... < k_m = K.  Each method runs the algorithm of
:func:`amaml_lab.meta_gradient` but carries the m horizons at once, a row per
horizon (the adjoint equations are linear, so rows never interact; a row
joins a backward sweep when the sweep passes its horizon):

* ``maml``: back-propagation through each solver step, from the last to the
  first, (rows, P) cotangents at once (``is_grads_batched``).  This is also
  the discrete adjoint (A-MAML's ``scheme="discrete"``): the same numbers, one line;
* ``adjoint``: A-MAML's continuous adjoint, the package's own backward field
  (cubic Hermite states between grid points) with one batched HVP a stage.
  The checkpointed adjoint reads states recomputed from ceil(sqrt(K)) stored
  checkpoints; they are checked equal to the stored ones to rounding, so its
  gradients are these to rounding;
* ``grid``: A-MAML's ``scheme="grid"``: the adjoint ODE by the solver's own scheme with every stage on a
  forward state (euler over h: the continuous scheme's numbers; midpoint and rk4 over 2h, the middle stage at
  the state between, an odd first step by the continuous scheme). Its units end at each row's horizon, so
  rows of even and odd horizons sweep apart;
* ``backsolve``: state and adjoint run backward together, each row from its own u(T_j);
* ``fomaml``, ``reptile`` (divided by T), ``imaml`` (its own proximal
  trajectory, CG at each horizon) and ``truncated`` (the last few steps).

The reference is the gradient flow's exact meta-gradient dL_Q(u(T))/dtheta,
from forward sensitivities S = du/dtheta (dS/dt = -H(u) S, S(0) = I) solved
by torchdiffeq's dopri5 at tight tolerances: an algorithm none of the methods
uses, so maml's own line shows the solver's discretisation error.
``tests/test_horizon.py`` checks every row against :func:`amaml_lab.meta_gradient`
run at that horizon alone (maml, both adjoint schemes, the checkpointed adjoint, ...).
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import torch
from torchdiffeq import odeint

from .checks import check_choice, check_number
from .flow import FIXED_SOLVERS, step_function
from .functional import module_params, task_losses
from .metagrad.adjoint import AdjointField
from .metagrad.core import build_problem
from .metagrad.implicit import conjugate_gradient
from .models import mlp
from .tasks.synthetic import FAMILIES, family_task

# the explorer's lines: the methods, and the adjoint's grid scheme as a line of its own
LINES = ("maml", "adjoint", "grid", "backsolve", "fomaml", "reptile", "imaml", "truncated")
# what each line is; two pairs of methods give the same numbers, so each pair is one line
LABELS = {
    "maml": "maml = adjoint (discrete)",
    "adjoint": "adjoint (continuous; stored = checkpointed)",
    "grid": "adjoint (grid scheme)",
    "backsolve": "backsolve (state run backward)",
    "fomaml": "fomaml",
    "reptile": "reptile",
    "imaml": "imaml",
    "truncated": "truncated",
}


def log_steps(largest: int = 1000) -> tuple:
    """1, 2, 3, 5, 10, 20, 30, 50, ... up to ``largest`` (included): the horizon grid in steps."""
    largest = check_number("largest", largest, integer=True)
    if largest < 1:
        raise ValueError(f"largest must be >= 1; got {largest}")
    out, decade = [], 1
    while decade <= largest:
        out += [m * decade for m in (1, 2, 3, 5) if m * decade <= largest]
        decade *= 10
    return tuple(sorted(set(out + [largest])))


@dataclass
class HorizonTask:
    """One visible regression task: support and query points, a tanh MLP, losses of its parameters."""

    family: str
    support: tuple
    query: tuple
    model: torch.nn.Module
    theta: dict
    support_loss: object
    query_loss: object
    x_plot: torch.Tensor
    y_plot: torch.Tensor

    def problem(self, steps: int, step_size: float, solver: str, reg: float = 0.0):
        return build_problem(self.support_loss, self.query_loss, self.theta, steps=steps, step_size=step_size,
                             solver=solver, reg=reg, rtol=1e-7, atol=1e-9, hvp="autograd")

    def predict(self, flat: torch.Tensor) -> torch.Tensor:
        """The model's curve on ``x_plot`` for flat parameter vectors (..., P) -> (..., points)."""
        spec = self.problem(1, 1.0, "euler").spec
        batch = flat.reshape(-1, flat.shape[-1])
        out = torch.func.vmap(lambda p: torch.func.functional_call(self.model, spec.unflatten(p),
                                                                   (self.x_plot,))[:, 0])(batch)
        return out.reshape(*flat.shape[:-1], -1)


def horizon_task(family: str = "Sinusoid", shots: int = 10, queries: int = 20, hidden=(32,), seed: int = 0,
                 dtype=torch.float64) -> HorizonTask:
    """A 1-D task of ``family`` (``Sinusoid`` or ``CosMixture``) drawn with ``seed``, and a tanh MLP 1-hidden-1."""
    one_d = [name for name, f in FAMILIES.items() if f.dim == 1]
    check_choice("family", family, one_d)
    fam = FAMILIES[family]
    support, query, params = family_task(family, shots, queries, seed)
    support, query = [tuple(t.to(dtype) for t in pair) for pair in (support, query)]
    x_plot = torch.linspace(fam.low, fam.high, 200, dtype=torch.float64).reshape(-1, 1)
    y_plot = fam.fn(params, x_plot).reshape(-1)
    model = mlp(1, tuple(hidden), 1, dtype=dtype, seed=seed)
    support_loss, query_loss = task_losses(model, support, query)
    return HorizonTask(family, support, query, model, module_params(model), support_loss, query_loss,
                       x_plot.to(dtype), y_plot.to(dtype))


# ---------------------------------------------------------------- the reference: forward sensitivities
def exact_gradients(task: HorizonTask, times, rtol: float = 1e-9, atol: float = 1e-11) -> torch.Tensor:
    """dL_Q(u(T))/dtheta of the gradient flow at each T in ``times`` (ascending, > 0): (len(times), P).

    Integrates (u, S) with dS/dt = -H(u) S, S(0) = I by dopri5; H S is one
    batched Hessian-vector product (P rows) per evaluation, never a Hessian.
    The default tolerances give the gradients to about 2e-9 (relative; against
    rtol = 1e-10 on the explorer's task), below every method's error but the
    discrete ones' rounding.
    """
    p = task.problem(1, 1.0, "euler")
    n = p.theta.numel()

    def field(t, y):
        u, S = y
        with torch.enable_grad():
            x = u.detach().requires_grad_(True)
            g = torch.autograd.grad(p.support.loss(x), x, create_graph=True)[0]
            HS = torch.autograd.grad(g, x, S.detach().T.contiguous(), is_grads_batched=True)[0].T
        return -g.detach(), -HS

    t = torch.tensor([0.0, *[float(x) for x in times]], dtype=p.theta.dtype)
    us, Ss = odeint(field, (p.theta, torch.eye(n, dtype=p.theta.dtype)), t, method="dopri5", rtol=rtol, atol=atol)
    out = []
    for u, S in zip(us[1:], Ss[1:]):
        x = u.detach().requires_grad_(True)
        q = torch.autograd.grad(p.query.loss(x), x)[0]
        out.append(S.T @ q)
    return torch.stack(out)


# ---------------------------------------------------------------- every method at every horizon
class _BatchedAdjointField(AdjointField):
    """The adjoint field H(u(t)) A for a (rows, P) adjoint A: the package's field, one batched HVP a stage."""

    def __call__(self, t, A):
        u, k = self.state_at(t)
        lin = self.p.support.linearize(u) if k is None else self._point(k)[0]
        return lin.hvp_rows(A)  # counts one HVP a row


def _segments(ks, K):
    """(k_hi, k_lo, rows joining at k_hi) for a backward sweep from K: rows are indices into ``ks``."""
    bounds = sorted(set(ks) | {0}, reverse=True)
    out = []
    for hi, lo in zip(bounds[:-1], bounds[1:]):
        out.append((hi, lo, [j for j, k in enumerate(ks) if k == hi]))
    return out


def _sweep_back(ks, K, first, step_back):
    """Rows of a linear backward sweep: row j starts at step ks[j] with ``first(j)``; returns rows at 0."""
    rows = torch.stack([first(j) for j in range(len(ks))])
    live = None  # (m, ...) rows that have joined, in order of decreasing horizon
    order = []
    for hi, lo, joining in _segments(ks, K):
        new = rows[joining]
        live = new if live is None else torch.cat([live, new])
        order += joining
        live = step_back(hi, lo, live)
    out = torch.empty_like(rows)
    out[order] = live
    return out


@dataclass
class HorizonLines:
    """One (step size, solver): the trajectory and each method's meta-gradient at every horizon on the grid."""

    step_size: float
    solver: str
    steps: tuple  # k_1 < ... < k_m
    states: torch.Tensor  # (K+1, P)
    support_curve: torch.Tensor  # (K+1,) L_S(u_k)
    query_curve: torch.Tensor  # (K+1,) L_Q(u_k)
    grads: dict  # method -> (m, P)
    seconds: dict = field(default_factory=dict)


def every_horizon(task: HorizonTask, step_size: float, solver: str = "rk4", steps=log_steps(1000), lam: float = 2.0,
          cg_steps: int = 5, truncate: int = 5, methods=LINES) -> HorizonLines:
    """Every method in ``methods`` at every horizon ``k * step_size``, k in ``steps`` (see the module's docstring)."""
    check_choice("solver", solver, FIXED_SOLVERS)
    step_size = check_number("step_size", step_size, positive=True)
    for m in methods:
        check_choice("methods", m, LINES)
    ks = sorted({check_number("steps", k, integer=True) for k in steps})
    if not ks or ks[0] < 1:
        raise ValueError(f"steps must be integers >= 1; got {steps!r}")
    K = ks[-1]
    p = task.problem(K, step_size, solver)
    times = p.grid.tolist()
    step = step_function(solver)
    seconds = {}
    clock = time.perf_counter()

    with torch.no_grad():
        states = p.solve(p.flow(), p.theta, range(K + 1))
        support_curve = torch.func.vmap(p.support.loss)(states)
        query_curve = torch.func.vmap(p.query.loss)(states)
    q = []
    for k in ks:
        x = states[k].detach().requires_grad_(True)
        q.append(torch.autograd.grad(p.query.loss(x), x)[0])
    q = torch.stack(q)
    seconds["trajectory"] = time.perf_counter() - clock
    grads = {}

    def timed(name, fn):
        if name in methods:
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                grads[name] = fn()
            seconds[name] = time.perf_counter() - started

    def continuous(path):
        fieldfn = _BatchedAdjointField(p, p.grid, path)
        return _sweep_back(ks, K, lambda j: q[j], lambda hi, lo, A: p.solve(fieldfn, A, [hi, lo])[-1])

    def discrete():
        def back(hi, lo, A):
            for k in range(hi - 1, lo - 1, -1):
                with torch.enable_grad():
                    x = states[k].detach().requires_grad_(True)
                    y1 = step(p.flow(graph=True), times[k], times[k + 1], x)
                    A = torch.autograd.grad(y1, x, A, is_grads_batched=True)[0]
            return A
        return _sweep_back(ks, K, lambda j: q[j], back)

    def checkpointed_states():
        """The states as the checkpointed adjoint reads them: recomputed from ceil(sqrt(K)) stored ones."""
        c = max(3, math.ceil(math.sqrt(K)))
        length = math.ceil(K / c)
        starts = list(range(0, K, length))
        with torch.no_grad():
            stored = p.solve(p.flow(), p.theta, starts + [K])
            pieces = [p.solve(p.flow(), stored[i], list(range(s, min(s + length, K) + 1)))[:-1]
                      for i, s in enumerate(starts)]
        return torch.cat(pieces + [stored[-1:]])

    def adjoint():
        # the adjoint is a function of the states it reads: the checkpointed one reads recomputed states,
        # the stored ones to rounding (checked; memory alignment can move the last bit), so one sweep gives both
        drift = float((checkpointed_states() - states).abs().max()) if bool(torch.isfinite(states).all()) else 0.0
        if not drift <= 1e-12 * max(1.0, float(states.abs().max())):
            raise RuntimeError(f"states recomputed from checkpoints are {drift:.3g} away from the stored ones")
        return continuous(states)

    def grid():
        if solver == "euler":  # its stage is the grid point: the continuous scheme's numbers
            return continuous(states)
        fieldfn = _BatchedAdjointField(p, p.grid, states)
        lins = {}

        def hvp(k, A):
            if k not in lins:
                if len(lins) > 3:  # a sweep walks down: keep only the few states in use
                    lins.clear()
                lins[k] = p.support.linearize(states[k])
            return lins[k].hvp_rows(A)

        def units(hi, lo, A):
            """Backward units of 2h from hi down to lo (same parity); below 1 on an odd sweep, the continuous step."""
            top = hi
            while top - 2 >= max(lo, 0) and top >= 2:
                dt = times[top - 2] - times[top]
                k1 = hvp(top, A)
                if solver == "midpoint":
                    A = A + dt * hvp(top - 1, A + 0.5 * dt * k1)
                else:
                    k2 = hvp(top - 1, A + 0.5 * dt * k1)
                    k3 = hvp(top - 1, A + 0.5 * dt * k2)
                    k4 = hvp(top - 2, A + dt * k3)
                    A = A + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
                top -= 2
            if lo == 0 and top == 1:
                A = p.solve(fieldfn, A, [1, 0])[-1]
            return A

        out = torch.empty(len(ks), p.theta.numel(), dtype=p.theta.dtype)
        for parity in (0, 1):  # a row's units end at its horizon: even and odd horizons sweep apart
            rows = [j for j, k in enumerate(ks) if k % 2 == parity]
            if rows:
                sub = [ks[j] for j in rows]
                out[rows] = _sweep_back(sub, sub[-1], lambda i: q[rows[i]], units)
        return out

    def backsolve():
        n = p.theta.numel()
        loss = torch.func.vmap(p.support.loss)

        def field(t, Y):
            with torch.enable_grad():
                X = Y[:, :n].detach().requires_grad_(True)
                G = torch.autograd.grad(loss(X).sum(), X, create_graph=True)[0]
                HV = torch.autograd.grad(G, X, Y[:, n:])[0]
            return torch.cat([-G.detach(), HV], dim=1)

        first = lambda j: torch.cat([states[ks[j]], q[j]])  # noqa: E731
        with torch.no_grad():
            out = _sweep_back(ks, K, first, lambda hi, lo, Y: p.solve(field, Y, [hi, lo])[-1])
        return out[:, n:]

    def imaml():
        prox = task.problem(K, step_size, solver, reg=lam)
        with torch.no_grad():
            ends = prox.solve(prox.flow(), prox.theta, [0, *ks])[1:]
        out = []
        for u in ends:
            x = u.detach().requires_grad_(True)
            g = torch.autograd.grad(prox.query.loss(x), x)[0]
            lin = prox.support.linearize(u)
            out.append(conjugate_gradient(lambda v: (1 + 0.0) * v + lin.hvp(v) / lam, g, cg_steps)[0])
        return torch.stack(out)

    def truncated():
        out = []
        for j, k in enumerate(ks):
            n = min(truncate, k)
            with torch.enable_grad():
                u0 = states[k - n].clone().requires_grad_(True)
                uT = p.solve(p.flow(graph=True), u0, [k - n, k])[-1] if n else u0
                out.append(torch.autograd.grad(p.query.loss(uT), u0)[0])
        return torch.stack(out)

    timed("maml", discrete)
    timed("adjoint", adjoint)
    timed("grid", grid)
    timed("backsolve", backsolve)
    timed("fomaml", lambda: q.clone())
    timed("reptile", lambda: torch.stack([(p.theta - states[k]) / (k * step_size) for k in ks]))
    timed("imaml", imaml)
    timed("truncated", truncated)
    return HorizonLines(step_size, solver, tuple(ks), states, support_curve, query_curve, grads, seconds)
