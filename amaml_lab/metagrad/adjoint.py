"""The A-MAML meta-gradient ("adjoint"): the adjoint ODE solved backward along the forward states.

With a(t) = dL_Q(u(T)) / du(t), the adjoint of the flow du/dt = -grad L_S(u) - reg (u - theta) is

    da/dt = (H(u(t)) + reg I) a,   a(T) = grad L_Q(u(T)),
    dL_Q/dtheta = a(0) + reg * integral_0^T a(t) dt,

with H the support Hessian, entered only through Hessian-vector products.

Checkpoints.  ``checkpoints=None`` keeps every state (the reference code's choice):
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

``checkpoints="auto"``: every state when they fit in
``memory_budget_mb`` (256 MB by default: 27,000 states of a 2 x 32 MLP,
about 600 of Conv-4), else as many as fit (at least 3), checkpointed:
the fastest schedule the budget allows, so nobody has to pick c.
``stats["checkpoints"]`` says what was chosen.
"""

from __future__ import annotations

import math

import torch

from .checkpointing import Reverse, forward_steps, repetitions
from .core import Problem, query_value_and_grad
from .sweeps import BACKWARD


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
    * ``checkpoints``: None keeps every state (the reference code's choice); an integer, ``"sqrt"`` or
      ``"auto"`` bound the states held (see the module's docstring).
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
    sweep = None
    reverse = Reverse(
        p,
        n + 1 + extra if budget is None else budget,
        extra,
        consumer_holds=lambda: sweep.held() if sweep is not None else 0,
    )
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
    stats = {
        "stored_states": reverse.peak,
        "scheme": scheme,
        "checkpoints": budget,
        "repetitions": repetitions(n + 1, slots),
        "forward_steps": forward_steps(n + 1, slots),
    }
    if scheme == "grid":
        stats["step_curvature"] = sweep.check()
    return a + q, u_T, qloss, stats


__all__ = ["adjoint"]
