"""Implicit MAML: differentiate the proximal inner problem's optimum instead of its path."""

from __future__ import annotations

import torch

from ..checks import check_number
from .core import Problem, query_value_and_grad


def conjugate_gradient(matvec, b: torch.Tensor, steps: int, tol: float = 1e-12, iterates: list | None = None):
    """At most ``steps`` CG iterations on matvec(x) = b from x = 0; returns (x, iterations, residual norm).

    ``iterates``, a list, receives x after each iteration: the k-th is what ``steps = k`` would return (an
    iterate does not depend on those after it), so one run serves every number of steps up to ``steps``.
    """
    x = torch.zeros_like(b)
    r = b.clone()
    d = r.clone()
    rr = torch.dot(r, r)
    _done = 0
    for _done in range(1, steps + 1):
        Ad = matvec(d)
        alpha = rr / torch.dot(d, Ad)
        x = x + alpha * d
        r = r - alpha * Ad
        rr_new = torch.dot(r, r)
        if iterates is not None:
            iterates.append(x)
        if float(rr_new.sqrt()) <= tol * float(b.norm()):
            rr = rr_new
            break
        d = r + (rr_new / rr) * d
        rr = rr_new
    return x, _done, float(rr.sqrt())


def imaml(p: Problem, lam: float = 2.0, cg_steps: int = 5, damping: float = 0.0):
    """iMAML (Rajeswaran et al., 2019): (I + H/lam)^-1 grad L_Q(u(T)), by conjugate gradient on HVPs.

    The inner problem is the proximal one, L_S(u) + lam/2 |u - theta|^2, solved
    by the flow with reg = lam (so ``reg`` must be left at 0 or equal ``lam``);
    at its optimum u*, du*/dtheta = (I + H(u*)/lam)^-1 whatever path led there.
    CG runs ``cg_steps`` iterations on ((1 + damping) I + H/lam) v = grad L_Q(u(T)),
    HVPs at u(T) sharing one gradient's graph.  ``damping = 0`` is the paper's
    system; the authors' code instead solves (1 + 1) v + H v / (lam + 10).

    * Memory: constant in ``steps`` (only u(T) is kept).  Time: one forward
      solve and ``cg_steps`` HVPs.
    * Exact when u(T) is the inner optimum and CG has converged (at most as
      many iterations as parameters); approximate otherwise, whatever ``steps``.
    """
    lam = check_number("lam", lam, positive=True)
    cg_steps = check_number("cg_steps", cg_steps, integer=True)
    if cg_steps < 1:
        raise ValueError(f"cg_steps must be >= 1; got {cg_steps}")
    damping = check_number("damping", damping, nonnegative=True)
    if p.reg not in (0.0, lam):
        raise ValueError(
            f"method='imaml' runs the proximal flow with reg = lam = {lam}; got reg={p.reg}."
            " Leave reg at 0 or set it equal to lam"
        )
    if p.mask is not None:
        raise ValueError("method='imaml' adapts every parameter; adapt= is not supported with it")
    p.reg = lam
    with torch.no_grad():
        u_T = p.solve(p.flow(), p.theta, [0, p.steps])[-1]
    qloss, v, iterations, residual = implicit_direction(p, u_T, lam, cg_steps, damping)
    return v, u_T, qloss, {"stored_states": 1, "cg_iterations": iterations, "cg_residual": residual, "lam": lam}


def implicit_direction(
    p: Problem, u: torch.Tensor, lam: float, cg_steps: int, damping: float = 0.0, iterates: list | None = None
):
    """iMAML's direction at an inner end point u: ``cg_steps`` CG iterations on ((1 + damping) I + H(u)/lam) v
    = grad L_Q(u), the HVPs sharing one gradient's graph.  Returns (L_Q(u), v, iterations, residual norm);
    ``iterates`` (a list) receives the direction after each iteration (see :func:`conjugate_gradient`)."""
    with torch.no_grad():
        qloss, g = query_value_and_grad(p, u)
        lin = p.support.linearize(u)
        v, iterations, residual = conjugate_gradient(
            lambda x: (1 + damping) * x + lin.hvp(x) / lam, g, cg_steps, iterates=iterates
        )
    return qloss, v, iterations, residual
