"""Back-propagation through the solver's steps ("maml")."""

from __future__ import annotations

import math

import torch

from .core import Problem, query_value_and_grad


def maml(p: Problem, checkpoints=None):
    """Reverse-mode differentiation through every step torchdiffeq takes.

    * Exact: the gradient of the discretised inner loop (the reference the other
      methods are checked against); with ``dopri5`` it differentiates the
      accepted steps and the step-size control.
    * Memory: the graph of every step, growing linearly with ``steps``
      (rk4: four gradient evaluations and their activations a step).
    * Time: one forward pass with graph, one backward pass through it (about an
      HVP per gradient evaluation).
    * ``checkpoints=c`` (or ``"sqrt"``): keep c states from a forward pass
      without graph, then back-propagate segment by segment, rebuilding each
      segment's graph from its stored start: the same gradient to rounding,
      memory c states plus one segment's graph (steps / c steps), time one
      more forward pass.  Fixed-grid solvers only.
    """
    if checkpoints is not None:
        return _segmented(p, checkpoints)
    theta = p.theta.clone().requires_grad_(True)
    with torch.enable_grad():
        u_T = p.solve(p.flow(graph=True, theta=theta), theta, [0, p.steps])[-1]
        value = p.query.loss(u_T)
        (grad,) = torch.autograd.grad(value, theta)
    p.query.grad_evals += 1
    return grad, u_T.detach(), float(value.detach()), {"stored_states": p.steps + 1, "graph_steps": p.steps}


def _segmented(p: Problem, checkpoints):
    n = p.steps
    c = max(1, math.ceil(math.sqrt(n))) if checkpoints == "sqrt" else checkpoints
    length = math.ceil(n / c)
    starts = list(range(0, n, length))
    with torch.no_grad():
        out = p.solve(p.flow(), p.theta, starts + [n])
    stored, u_T = [row.clone() for row in out[:-1]], out[-1].clone()
    del out
    qloss, a = query_value_and_grad(p, u_T)
    q = torch.zeros_like(a)
    for j in range(len(starts) - 1, -1, -1):
        i0, i1 = starts[j], min(starts[j] + length, n)
        with torch.enable_grad():
            u0 = stored[j].requires_grad_(True)
            theta = p.theta.clone().requires_grad_(True)
            u1 = p.solve(p.flow(graph=True, theta=theta), u0, [i0, i1])[-1]
            inputs = (u0, theta) if p.reg else (u0,)
            grads = torch.autograd.grad(u1, inputs, a)
        a = grads[0].detach()
        if p.reg:
            q = q + grads[1].detach()
        del stored[j]
    return a + q, u_T, qloss, {"stored_states": len(starts) + length + 1, "graph_steps": length}


def truncated(p: Problem, truncate: int | None = None):
    """Back-propagation through the last ``truncate`` steps only (0 <= truncate <= steps).

    The state ``truncate`` steps before the end is treated as if it were theta:
    the gradient is the adjoint there (plus the reg terms of the last steps).
    ``truncate = steps`` is ``"maml"``; ``truncate = 0`` is ``"fomaml"``.

    * Memory: the graph of ``truncate`` steps.  Time: one forward pass, plus
      a backward pass through ``truncate`` steps.
    * Biased unless ``truncate = steps``.
    """
    if truncate is None:
        raise ValueError("method='truncated' needs truncate=k, the number of final steps to back-propagate through")
    if isinstance(truncate, bool) or not isinstance(truncate, int) or not 0 <= truncate <= p.steps:
        raise ValueError(f"truncate must be an integer in 0..steps={p.steps}; got {truncate!r}")
    n, k = p.steps, truncate
    with torch.no_grad():
        u_start = p.solve(p.flow(), p.theta, [0, n - k])[-1]
    grad, u_T, value = tail_gradient(p, u_start, n - k, n)
    return grad, u_T, value, {"stored_states": k + 1, "graph_steps": k}


def tail_gradient(p: Problem, u_start: torch.Tensor, start: int, end: int):
    """dL_Q(u_end)/d u_start (plus the reg terms of those steps): back-propagation through steps start..end only,
    the state at ``start`` treated as if it were theta.  Returns (gradient, u_end, L_Q(u_end))."""
    with torch.enable_grad():
        u0 = u_start.clone().requires_grad_(True)
        theta = p.theta.clone().requires_grad_(True)
        u_T = p.solve(p.flow(graph=True, theta=theta), u0, [start, end])[-1] if end > start else u0
        value = p.query.loss(u_T)
        inputs = (u0, theta) if (p.reg and end > start) else (u0,)
        grads = torch.autograd.grad(value, inputs)
    p.query.grad_evals += 1
    grad = grads[0] + grads[1] if len(grads) == 2 else grads[0]
    return grad, u_T.detach(), float(value.detach())


__all__ = ["maml", "tail_gradient", "truncated"]
