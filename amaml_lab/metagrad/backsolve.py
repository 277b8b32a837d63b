"""State back-solving ("backsolve"): the adjoint with u(t) rebuilt backward in time, as torchdiffeq's
``odeint_adjoint`` does; kept to show why gradient flows make that fail."""

from __future__ import annotations

import warnings

import torch

from .core import Problem, query_value_and_grad, sweep_rows


class BacksolveWarning(RuntimeWarning):
    """The state reconstructed backward in time drifted away from the true one."""


def _back(p: Problem, y: tuple, hi: int, lo: int) -> tuple:
    """(u, a, q) at step ``lo`` from (u, a, q) at step ``hi``: state and adjoint run backward together.

    One vector each, or rows (one a horizon: each row its own state, a batched HVP a stage); q collects
    reg * integral of a, so the meta-gradient is a + q at step 0.
    """
    reg, flow = p.reg, p.flow()
    each = y[0].dim() == 2

    def field(t, z):
        x, lam = z[0], p.masked(z[1])
        g, hv = p.support.hvp_each(x, lam) if each else p.support.hvp(x, lam)
        if reg:
            return flow.velocity(x, g), hv + reg * lam, -reg * lam
        return flow.velocity(x, g), hv

    out = p.solve(field, y if reg else y[:2], [hi, lo])
    return out[0][-1], out[1][-1], (out[2][-1] if reg else y[2])


def backsolve_rows(p: Problem, ends, u_ends: torch.Tensor, cotangents: torch.Tensor) -> torch.Tensor:
    """Back-solving's meta-gradient of the inner loop stopped at step ``ends[j]``, a row each, in one sweep.

    Row j starts from (u(T_j), grad L_Q(u(T_j))) = (``u_ends[j]``, ``cotangents[j]``) and joins the backward
    solve when it reaches step ``ends[j]``; row j is what :func:`backsolve` gives with ``steps=ends[j]``.
    """
    with torch.no_grad():
        _, a, q = sweep_rows(
            ends, (u_ends, cotangents, torch.zeros_like(cotangents)), lambda hi, lo, rows: _back(p, rows, hi, lo)
        )
    return a + q


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
    with torch.no_grad():
        u_T = p.solve(p.flow(), p.theta, [0, p.steps])[-1]
        qloss, a = query_value_and_grad(p, u_T)
        try:
            u_0, a_0, q_0 = _back(p, (u_T, a, torch.zeros_like(a)), p.steps, 0)
            grad = a_0 + q_0
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


__all__ = ["backsolve", "backsolve_rows", "BacksolveWarning"]
