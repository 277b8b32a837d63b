"""What a run is made of, from its :class:`~amaml_lab.training.config.RunConfig`: the model, its losses, and batches on
the run's device and dtype."""

from __future__ import annotations

import torch

from ..models import conv4, mlp, stacked_forward
from .config import DTYPES, RunConfig

CONV4_HEAD = ("head.weight", "head.bias")  # Conv-4's linear head in its parameters: what COMLN adapts


def _mse(model, scale: float = 1.0):
    forward = stacked_forward(model, transposed=True)  # points along the last dimension: the cheapest graph
    if forward is None:

        def loss(params, data):
            x, y = data
            return scale * ((torch.func.functional_call(model, params, (x,)) - y) ** 2).mean((-2, -1))

        return loss

    def stacked_loss(params, data):  # one task: a scalar; a stack of tasks: one loss per task
        x, y = data  # transposed by transpose(-2, -1), not .mT, which a compiled scan cannot take (torch 2.13)
        return scale * ((forward(params, x.transpose(-2, -1)) - y.transpose(-2, -1)) ** 2).mean((-2, -1))

    return stacked_loss


def _cross_entropy(model):
    def loss(params, data):
        x, y = data
        return torch.nn.functional.cross_entropy(torch.func.functional_call(model, params, (x,)), y)

    return loss


def build_model(cfg: RunConfig, in_features: int | None = None):
    """Conv-4 for Omniglot, else the tanh MLP with two hidden layers of ``cfg.hidden``."""
    cfg = cfg.resolved()
    if cfg.classification:
        return conv4(cfg.ways, hidden=cfg.hidden, dtype=DTYPES[cfg.dtype], seed=cfg.seed)
    return mlp(in_features, (cfg.hidden, cfg.hidden), 1, dtype=DTYPES[cfg.dtype], seed=cfg.seed)


def losses_for(cfg: RunConfig, model):
    """(support_loss, query_loss) of (params, data): cross-entropy for Omniglot, 1/2 MSE and MSE for regression.

    The regression losses also take a stack of tasks (parameters and data with
    a leading task dimension) and return one loss per task: see
    :func:`~amaml_lab.models.stacked_forward`.
    """
    if cfg.classification:
        return _cross_entropy(model), _cross_entropy(model)
    return _mse(model, 0.5), _mse(model)


def on_device(data, cfg):
    """Inputs to the run's dtype and device; integer labels keep their type."""
    return tuple(t.to(cfg.device) if not t.is_floating_point() else t.to(cfg.device, DTYPES[cfg.dtype]) for t in data)
