"""A meta-batch of tasks through one vmapped problem.

Tasks are independent, so the gradient flow of the *summed* support loss of B
tasks, started from B copies of theta, is the B task flows side by side, and
the meta-gradient of the summed query loss with respect to the B copies is the
B per-task meta-gradients.  Every per-task loss evaluation is one
``torch.func.vmap`` call over the tasks; the solver sees one stacked state.  On
a fixed grid this equals a Python loop over tasks to rounding.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch

from ..flow import FIXED_SOLVERS
from .dispatch import meta_gradient

# methods whose batched form is not the per-task one: CG on the joint system explores a
# different Krylov space than per-task CG; forward sensitivities would be (B P) x (B P)
LOOP_ONLY = ("imaml", "forward")


class VmapFallbackWarning(RuntimeWarning):
    """The tasks could not be vmapped; a Python loop over tasks ran instead."""


@dataclass
class BatchMetaGradient:
    """Per-task results stacked along a leading task dimension, and their means.

    ``grad`` is the mean of the per-task meta-gradients (the meta-batch's
    gradient for the shared theta); ``grads`` holds them per task.
    """

    grad: object
    grads: object
    adapted: object
    query_loss: float
    query_losses: torch.Tensor
    stats: dict = field(default_factory=dict)


def _leading(data, name: str) -> int:
    leaves = [x for x in torch.utils._pytree.tree_leaves(data) if torch.is_tensor(x)]
    if not leaves:
        raise ValueError(f"{name} must hold tensors with a leading task dimension")
    sizes = {x.shape[0] if x.dim() else None for x in leaves}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(
            f"every tensor in {name} needs the same leading task dimension; got sizes {sorted(map(str, sizes))}"
        )
    return sizes.pop()


def _task(data, b: int):
    return torch.utils._pytree.tree_map(lambda x: x[b] if torch.is_tensor(x) else x, data)


def _stack(items):
    if torch.is_tensor(items[0]):
        return torch.stack(items)
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def _mean(tree):
    return tree.mean(0) if torch.is_tensor(tree) else {k: v.mean(0) for k, v in tree.items()}


def _loop(support_loss, query_loss, theta, support_data, query_data, size, why, **kw):
    results = [
        meta_gradient(
            lambda p, d=_task(support_data, b): support_loss(p, d),
            lambda p, d=_task(query_data, b): query_loss(p, d),
            theta,
            **kw,
        )
        for b in range(size)
    ]
    grads = _stack([r.grad for r in results])
    losses = torch.tensor([r.query_loss for r in results], dtype=torch.float64)
    stats = {
        "vectorized": False,
        "why_loop": why,
        "tasks": size,
        "wall_time": sum(r.stats["wall_time"] for r in results),
        "grad_evals": sum(r.stats["grad_evals"] for r in results),
        "hvp_evals": sum(r.stats["hvp_evals"] for r in results),
    }
    return BatchMetaGradient(
        grad=_mean(grads),
        grads=grads,
        adapted=_stack([r.adapted for r in results]),
        query_loss=float(losses.mean()),
        query_losses=losses,
        stats=stats,
    )


def _checked_stacked(support_loss, query_loss, stacked, support_data, query_data, size):
    """Losses that take the stack themselves: their shape checked once, no vmap to probe."""
    with torch.no_grad():
        for name, loss, data in (("support_loss", support_loss, support_data), ("query_loss", query_loss, query_data)):
            shape = tuple(loss(stacked, data).shape)
            if shape != (size,):
                raise ValueError(
                    f"stacked_losses=True but {name} returned shape {shape} on the stacked"
                    f" parameters and data; it must return the {size} per-task losses, shape ({size},)"
                )
    return support_loss, query_loss


def _vmapped(support_loss, query_loss, stacked, support_data, query_data, size):
    """The losses vmapped over the task dimension, probed once; the error instead where vmap cannot take them."""
    batched_support, batched_query = torch.func.vmap(support_loss), torch.func.vmap(query_loss)
    try:
        with torch.no_grad():
            batched_support(stacked, support_data)
            batched_query(stacked, query_data)
    except (RuntimeError, NotImplementedError, ValueError, TypeError) as err:
        return err
    return batched_support, batched_query


def meta_gradient_batch(
    support_loss,
    query_loss,
    theta,
    support_data,
    query_data,
    *,
    method: str,
    vectorize: bool = True,
    stacked_losses: bool = False,
    **kwargs,
) -> BatchMetaGradient:
    """Meta-gradients of B tasks sharing the initialisation ``theta``.

    Fixed-grid solvers only (an adaptive solver would pick one step size for the whole batch).  ``imaml`` and
    ``forward``, and any loss that ``torch.func.vmap`` cannot take, run as a loop over tasks (the latter with a
    :class:`VmapFallbackWarning` that says why); ``stats["vectorized"]`` tells which ran.

    Args:
        support_loss, query_loss: ``support_loss(params, data)`` and ``query_loss(params, data)`` take one task's data.
        theta: the shared initialisation, a tensor or a dict of tensors, as for :func:`meta_gradient`.
        support_data, query_data: that data with a leading task dimension B (tensors, tuples or dicts of tensors).
        method: one of :data:`METHODS`, as for :func:`meta_gradient`.
        vectorize: False runs the loop over tasks (one :func:`meta_gradient` a task) instead of one vmapped problem.
        stacked_losses: True says the losses already take the stack: given parameters and data with the leading task
            dimension they return the B per-task losses (and given one task's, its scalar loss, for the methods that
            loop).  Then no ``vmap`` runs, which saves its per-call bookkeeping (a third of a small MLP's gradient on
            a CPU; see :func:`~amaml_lab.models.stacked_forward`).  Same numbers to rounding.
        **kwargs: other arguments are :func:`meta_gradient`'s; ``solver`` must be ``euler``, ``midpoint`` or ``rk4``.

    Returns:
        A :class:`BatchMetaGradient`: ``grads`` and ``adapted`` stacked along a leading task dimension B, ``grad``
        the mean of ``grads``, ``query_losses`` (float64, shape (B,)) and their mean ``query_loss``, and ``stats``
        (with ``vectorized``, ``tasks`` and, for a loop, ``why_loop``).

    Raises:
        ValueError: data without one leading task dimension, support and query data of different B, an adaptive
            solver, or (``stacked_losses=True``) a loss that does not return the B per-task losses on the stack.
    """
    size = _leading(support_data, "support_data")
    if _leading(query_data, "query_data") != size:
        raise ValueError(f"support_data has {size} tasks but query_data has {_leading(query_data, 'query_data')}")
    solver = kwargs.get("solver", "rk4")
    if solver not in FIXED_SOLVERS:
        raise ValueError(
            f"meta_gradient_batch needs a fixed-grid solver ({', '.join(FIXED_SOLVERS)}); got"
            f" solver={solver!r}. Loop over tasks with meta_gradient for adaptive steps"
        )
    kw = dict(kwargs, method=method)
    if not vectorize or method in LOOP_ONLY:
        why = "vectorize=False" if not vectorize else f"method={method!r} is not separable over tasks"
        return _loop(support_loss, query_loss, theta, support_data, query_data, size, why, **kw)

    stacked = (
        theta.expand(size, *theta.shape).clone()
        if torch.is_tensor(theta)
        else {k: v.expand(size, *v.shape).clone() for k, v in theta.items()}
    )
    losses = (_checked_stacked if stacked_losses else _vmapped)(
        support_loss, query_loss, stacked, support_data, query_data, size
    )
    if isinstance(losses, Exception):
        err = losses
        message = " ".join(str(err).split())[:300]
        warnings.warn(
            f"meta_gradient_batch: the losses cannot be vmapped ({type(err).__name__}: {message});"
            " looping over tasks instead",
            VmapFallbackWarning,
            stacklevel=2,
        )
        return _loop(
            support_loss, query_loss, theta, support_data, query_data, size, f"vmap failed: {type(err).__name__}", **kw
        )
    batched_support, batched_query = losses
    r = meta_gradient(
        lambda p: batched_support(p, support_data).sum(), lambda p: batched_query(p, query_data).sum(), stacked, **kw
    )
    with torch.no_grad():
        losses = batched_query(r.adapted, query_data).to(torch.float64)
    stats = dict(r.stats, vectorized=True, tasks=size)
    return BatchMetaGradient(
        grad=_mean(r.grad),
        grads=r.grad,
        adapted=r.adapted,
        query_loss=float(losses.mean()),
        query_losses=losses,
        stats=stats,
    )
