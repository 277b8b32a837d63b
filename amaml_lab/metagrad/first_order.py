"""First-order meta-gradients: no derivative through the inner loop at all."""

from __future__ import annotations

import torch

from ..checks import check_choice
from .core import Problem, query_value_and_grad


def _adapt(p: Problem) -> torch.Tensor:
    with torch.no_grad():
        return p.solve(p.flow(), p.theta, [0, p.steps])[-1]


def fomaml(p: Problem):
    """First-order MAML: grad L_Q(u(T)), as if du(T)/dtheta were the identity.

    * Memory and time: one forward solve, no HVP; constant memory in ``steps``.
    * Exact only when du(T)/dtheta = I (no inner steps); biased otherwise, the
      more so the longer and the more curved the inner run.
    """
    u_T = _adapt(p)
    qloss, g = query_value_and_grad(p, u_T)
    return g, u_T, qloss, {"stored_states": 1}


def reptile(p: Problem, scale: str = "none"):
    """Reptile's direction theta - u(T): a descent step theta - lr * grad moves theta toward u(T).

    ``scale="none"`` returns theta - u(T) itself, so the outer learning rate is
    Reptile's interpolation rate epsilon; ``scale="horizon"`` divides by
    T = steps * step_size, which makes it tend to grad L_S(theta) as T -> 0.
    It never looks at the query set (``query_loss`` is only reported).

    * Memory and time: one forward solve; no HVP.
    * Not a gradient of the meta-objective; its expectation over tasks
      approximates one (Nichol et al., 2018).
    """
    check_choice("scale", scale, ("none", "horizon"))
    u_T = _adapt(p)
    qloss, _ = query_value_and_grad(p, u_T)
    return (
        reptile_direction(p.theta, u_T, p.steps * p.step_size if scale == "horizon" else 1.0),
        u_T,
        qloss,
        {"stored_states": 1},
    )


def reptile_direction(theta: torch.Tensor, u_T: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """(theta - u(T)) / scale: Reptile's direction (``scale`` = T makes it tend to grad L_S(theta) as T -> 0)."""
    g = theta - u_T
    return g / scale if scale != 1.0 else g
