"""Forward-mode sensitivities: carry du/dtheta along the flow."""

from __future__ import annotations

import torch

from .core import Problem, query_value_and_grad


def sensitivities(p: Problem, save) -> tuple[list, list]:
    """The states u and the sensitivities S = du/dtheta (P x P, flat) after each step count in ``save`` (which
    starts at 0, the start: S = I).

    Exact on a fixed grid: the solver applied to the variational equation equals differentiating its steps, so
    ``S`` is the product of the one-step maps' Jacobians (for Euler, prod (I - h H(u_k)) with reg = 0).  Cost: P
    Hessian-vector products a stage (batched), memory P x P times the stages.
    """
    n = p.theta.numel()
    eye = torch.eye(n, dtype=p.theta.dtype, device=p.theta.device)
    flow, reg = p.flow(), p.reg

    def field(t, y):
        u, S = y
        g, HS_rows = p.support.hvp_rows(u, S.T)  # row i: H S[:, i]
        dS = -HS_rows.T
        if reg:
            dS = dS - reg * (S - eye)
        if p.mask is not None:
            dS = dS * p.mask[:, None]
        return flow.velocity(u, g), dS

    with torch.no_grad():
        out = p.solve(field, (p.theta, eye), list(save))
    return list(out[0]), list(out[1])


def forward(p: Problem):
    """Integrate the sensitivity S(t) = du(t)/dtheta with the state: dS/dt = -(H(u) + reg I) S + reg I, S(0) = I.

    The meta-gradient is S(T)^T grad L_Q(u(T)).  The same solver integrates
    (u, S), and differentiating an explicit Runge-Kutta step equals applying it
    to the variational equation, so on a fixed grid this is ``"maml"``'s
    gradient to rounding.

    * Memory: constant in ``steps`` (no trajectory is kept), but S is a
      P x P matrix for P parameters, times the solver's stages.
    * Time: P Hessian-vector products a stage (batched), so it only suits small
      models; reverse mode costs one HVP a stage.  A teaching contrast, and the
      principle behind COMLN, whose sensitivities are small because only a
      linear head adapts.
    """
    states, sens = sensitivities(p, [0, p.steps])
    u_T, S_T = states[-1], sens[-1]
    with torch.no_grad():
        qloss, a = query_value_and_grad(p, u_T)
    return S_T.T @ a, u_T, qloss, {"stored_states": 1, "sensitivity_size": p.theta.numel() ** 2}
