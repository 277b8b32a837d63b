"""COMLN (Deleu et al., 2022): only a linear head adapts, by gradient flow on cross-entropy, to a learned horizon."""

from __future__ import annotations

import torch

from .adjoint import adjoint
from .core import Problem

HEAD_KEYS = ("weight", "bias")  # the linear head's entries in comln_task's theta


def comln(p: Problem, checkpoints=32, scheme: str = "continuous"):
    """The COMLN meta-gradient: the head's flow differentiated by the checkpointed adjoint.

    Use it on the problem :func:`comln_task` builds (theta = head weight and
    bias plus the support and query embeddings; ``adapt`` = the head), so the
    meta-gradient covers W0, the embeddings' outputs (to back-propagate into the
    embedding network) and, with ``learn_horizon=True``, the horizon T.

    Why the adjoint with checkpoints and not the paper's forward sensitivities:
    both are exact in memory that does not grow with T.  The paper's
    sensitivities have O(M^2 N^2) entries (M support points, N ways) and hold
    only for cross-entropy on a linear head; the adjoint here holds
    ``checkpoints`` states of the head and embeddings whatever T is, costs one
    HVP a stage plus a recompute forward pass or two, and works for any loss
    and any head.  ``scheme="discrete"`` equals back-propagation through the
    same solver steps to rounding; ``"continuous"`` converges to the exact
    flow's gradient at the solver's order.
    """
    if p.mask is None:
        raise ValueError(
            "method='comln' adapts only a head: build the task with comln_task() and pass its adapt"
            " (or adapt=[head keys])"
        )
    return adjoint(p, scheme=scheme, checkpoints=checkpoints)


def comln_task(support_features, support_labels, query_features, query_labels, weight, bias=None):
    """``(support_loss, query_loss, theta, adapt)`` for COMLN on fixed embeddings.

    ``weight`` (N x d) and ``bias`` (N) start the head; the features are the
    embedding network's outputs (M x d support, Q x d query), labels class
    indices.  The losses are the mean cross-entropy of ``features @ weight.T + bias``.
    """
    if bias is None:
        bias = torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device)
    theta = {"weight": weight, "bias": bias, "support_features": support_features, "query_features": query_features}

    def support_loss(params):
        logits = params["support_features"] @ params["weight"].T + params["bias"]
        return torch.nn.functional.cross_entropy(logits, support_labels)

    def query_loss(params):
        logits = params["query_features"] @ params["weight"].T + params["bias"]
        return torch.nn.functional.cross_entropy(logits, query_labels)

    return support_loss, query_loss, theta, list(HEAD_KEYS)
