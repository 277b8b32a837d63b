"""Every method's meta-gradient at every inner-loop length, from one trajectory: the horizon explorer's data.

One small 1-D regression task (a sinusoid, a tanh MLP 1-32-1) and one stored
trajectory of K inner steps serve every horizon T_j = k_j * h on a log-spaced
grid k_1 < ... < k_m = K.  Each line is the engine's own code (:mod:`amaml_lab.metagrad`) carrying the m
horizons at once, a row per horizon (the adjoint equations are linear, so rows never interact; a row joins a
backward sweep when the sweep reaches its horizon):

* ``maml``: the discrete adjoint (``adjoint_rows``, ``scheme="discrete"``: the transpose of each solver step,
  every row's cotangent in one batched product); ``meta_gradient``'s maml gives the same numbers to rounding,
  so the two are one line;
* ``adjoint``: A-MAML's continuous adjoint (``adjoint_rows``, ``scheme="continuous"``), one batched HVP a
  stage.  The checkpointed adjoint reads states recomputed by the engine's checkpointing schedule; they are
  checked equal to the stored ones to rounding, so its gradients are these to rounding;
* ``grid``: A-MAML's ``scheme="grid"`` (``adjoint_rows``; with midpoint and rk4 its units of 2h end at each
  row's horizon, so rows of even and odd horizons sweep apart);
* ``backsolve``: state and adjoint run backward together, each row from its own u(T_j) (``backsolve_rows``);
* ``fomaml``, ``reptile`` (``reptile_direction`` divided by T), ``imaml`` (its own proximal trajectory,
  ``implicit_direction`` at each horizon) and ``truncated`` (``tail_gradient`` through the last few steps).

The reference is the gradient flow's exact meta-gradient dL_Q(u(T))/dtheta,
from forward sensitivities S = du/dtheta (dS/dt = -H(u) S, S(0) = I) solved
by torchdiffeq's dopri5 at tight tolerances: an algorithm none of the methods
uses, so maml's own line shows the solver's discretisation error.
``tests/teach/test_horizons.py`` checks every row against :func:`amaml_lab.meta_gradient`
run at that horizon alone (maml, both adjoint schemes, the checkpointed adjoint, ...).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import torch
from torchdiffeq import odeint

from ..checks import check_choice, check_number
from ..flow import FIXED_SOLVERS
from ..functional import module_params, task_losses
from ..metagrad.backsolve import backsolve_rows
from ..metagrad.checkpointing import Reverse
from ..metagrad.core import build_problem, query_value_and_grad
from ..metagrad.first_order import reptile_direction
from ..metagrad.implicit import implicit_direction
from ..metagrad.sweeps import adjoint_rows
from ..metagrad.unrolled import tail_gradient
from ..models import mlp
from ..tasks.synthetic import FAMILIES, family_task

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
        return build_problem(
            self.support_loss,
            self.query_loss,
            self.theta,
            steps=steps,
            step_size=step_size,
            solver=solver,
            reg=reg,
            rtol=1e-7,
            atol=1e-9,
            hvp="autograd",
        )

    def predict(self, flat: torch.Tensor) -> torch.Tensor:
        """The model's curve on ``x_plot`` for flat parameter vectors (..., P) -> (..., points)."""
        spec = self.problem(1, 1.0, "euler").spec
        batch = flat.reshape(-1, flat.shape[-1])
        out = torch.func.vmap(
            lambda p: torch.func.functional_call(self.model, spec.unflatten(p), (self.x_plot,))[:, 0]
        )(batch)
        return out.reshape(*flat.shape[:-1], -1)


def horizon_task(
    family: str = "Sinusoid", shots: int = 10, queries: int = 20, hidden=(32,), seed: int = 0, dtype=torch.float64
) -> HorizonTask:
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
    return HorizonTask(
        family,
        support,
        query,
        model,
        module_params(model),
        support_loss,
        query_loss,
        x_plot.to(dtype),
        y_plot.to(dtype),
    )


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


def every_horizon(
    task: HorizonTask,
    step_size: float,
    solver: str = "rk4",
    steps=log_steps(1000),
    lam: float = 2.0,
    cg_steps: int = 5,
    truncate: int = 5,
    methods=LINES,
) -> HorizonLines:
    """Every method in ``methods`` at every horizon ``k * step_size``, k in ``steps`` (see the module's docstring)."""
    check_choice("solver", solver, FIXED_SOLVERS)
    step_size = check_number("step_size", step_size, positive=True)
    for m in methods:
        check_choice("methods", m, LINES)
    ks = sorted({check_number("steps", k, integer=True) for k in steps})
    if not ks or ks[0] < 1:
        raise ValueError(f"steps must be integers >= 1; got {steps!r}")
    p = task.problem(ks[-1], step_size, solver)
    clock = time.perf_counter()
    with torch.no_grad():
        states = p.solve(p.flow(), p.theta, range(ks[-1] + 1))
        support_curve = torch.func.vmap(p.support.loss)(states)
        query_curve = torch.func.vmap(p.query.loss)(states)
    q = torch.stack([query_value_and_grad(p, states[k])[1] for k in ks])
    seconds = {"trajectory": time.perf_counter() - clock}
    lines = _lines(task, p, states, ks, q, lam=lam, cg_steps=cg_steps, truncate=truncate)
    grads = {}
    for name in methods:
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            grads[name] = lines[name]()
        seconds[name] = time.perf_counter() - started
    return HorizonLines(step_size, solver, tuple(ks), states, support_curve, query_curve, grads, seconds)


def _lines(task: HorizonTask, p, states, ks, q, *, lam, cg_steps, truncate) -> dict:
    """Each line as a function of nothing, every one the engine's own multi-horizon code (metagrad)."""

    def imaml():
        prox = task.problem(ks[-1], p.step_size, p.solver, reg=lam)
        with torch.no_grad():
            ends = prox.solve(prox.flow(), prox.theta, [0, *ks])[1:]
        return torch.stack([implicit_direction(prox, u, lam, cg_steps)[1] for u in ends])

    def truncated():
        return torch.stack([tail_gradient(p, states[k - min(truncate, k)], k - min(truncate, k), k)[0] for k in ks])

    return {
        "maml": lambda: adjoint_rows(p, states, ks, q, "discrete"),
        "adjoint": lambda: adjoint_rows(p, _checked_states(p, states), ks, q, "continuous"),
        "grid": lambda: adjoint_rows(p, states, ks, q, "grid"),
        "backsolve": lambda: backsolve_rows(p, ks, states[ks], q),
        "fomaml": lambda: q.clone(),
        "reptile": lambda: torch.stack([reptile_direction(p.theta, states[k], k * p.step_size) for k in ks]),
        "imaml": imaml,
        "truncated": truncated,
    }


def _checked_states(p, states) -> torch.Tensor:
    """The checkpointed adjoint reads states recomputed from stored ones (the engine's binomial schedule with
    ceil(sqrt(K)) states); they equal the stored ones to rounding (memory alignment can move the last bit), so
    the stored adjoint's line is the checkpointed one's too.  Returns the stored states; raises if they differ."""
    if not bool(torch.isfinite(states).all()):
        return states
    recomputed = torch.empty_like(states)
    with torch.no_grad():
        for i, rows in Reverse(p, max(3, math.ceil(math.sqrt(p.steps)))).blocks():
            recomputed[i : i + len(rows)] = rows
    drift = float((recomputed - states).abs().max())
    if not drift <= 1e-12 * max(1.0, float(states.abs().max())):
        raise RuntimeError(f"states recomputed from checkpoints are {drift:.3g} away from the stored ones")
    return states
