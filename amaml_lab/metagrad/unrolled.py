"""Back-propagation through the solver's steps ("maml")."""
from __future__ import annotations

import torch

from .core import Problem, query_value_and_grad


def maml(p: Problem):
    """Reverse-mode differentiation through every step torchdiffeq takes.

    * Exact: the gradient of the discretised inner loop (the reference the other
      methods are checked against); with ``dopri5`` it differentiates the
      accepted steps and the step-size control.
    * Memory: the graph of every step, growing linearly with ``steps``
      (rk4: four gradient evaluations and their activations a step).
    * Time: one forward pass with graph, one backward pass through it (about an
      HVP per gradient evaluation).
    """
    theta = p.theta.clone().requires_grad_(True)
    with torch.enable_grad():
        u_T = p.solve(p.flow(graph=True, theta=theta), theta, [0, p.steps])[-1]
        value = p.query.loss(u_T)
        (grad,) = torch.autograd.grad(value, theta)
    p.query.grad_evals += 1
    return grad, u_T.detach(), float(value.detach()), {"stored_states": p.steps + 1, "graph_steps": p.steps}


__all__ = ["maml"]
