"""Models the kit meta-learns: plain nn.Modules, used through torch.func.functional_call."""

from __future__ import annotations

import torch
from torch import nn

from .checks import check_choice

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def mlp(
    in_features: int,
    hidden=(32, 32),
    out_features: int = 1,
    activation: str = "tanh",
    dtype=torch.float64,
    seed: int | None = 0,
) -> nn.Sequential:
    """A fully connected regressor: Linear-act-...-Linear (the Adjoint MAML papers' 2x32 tanh MLP by default).

    ``seed`` makes the initialisation repeatable (None leaves torch's global RNG alone).
    """
    check_choice("activation", activation, ACTIVATIONS)
    sizes = [in_features, *hidden, out_features]
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.Linear(a, b, dtype=dtype)
        if gen is not None:
            bound = 1.0 / a**0.5  # torch's default uniform(-1/sqrt(fan_in), 1/sqrt(fan_in))
            with torch.no_grad():
                lin.weight.uniform_(-bound, bound, generator=gen)
                lin.bias.uniform_(-bound, bound, generator=gen)
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def stacked_forward(model: nn.Module, transposed: bool = False):
    """``f(params, x)`` for an MLP built by :func:`mlp`, on one task's parameters or on a stack of them.

    With parameters of their own shapes and ``x`` of shape (n, in) it is the
    model's output, (n, out); with a leading task dimension on both (weights
    (B, out, in), inputs (B, n, in)) it is every task's output at once, by
    batched matrix products.  It computes what ``torch.func.vmap`` of
    ``functional_call`` does, without its per-call bookkeeping (a third of a
    small model's gradient on a CPU), so a meta-batch's losses can be taken
    on the stacked parameters directly.  ``transposed=True`` takes and gives
    the points along the last dimension instead ((..., in, n) to (..., out,
    n)): no transposed view of a weight enters the graph, which makes a
    gradient another 10% cheaper.  Returns None for other models.
    """
    if not isinstance(model, nn.Sequential):
        return None
    plan = []
    for name, layer in model.named_children():
        if isinstance(layer, nn.Linear):
            plan.append((f"{name}.weight", f"{name}.bias" if layer.bias is not None else None))
        elif type(layer) in (nn.Tanh, nn.ReLU):
            plan.append(torch.tanh if isinstance(layer, nn.Tanh) else torch.relu)
        else:
            return None

    def forward(params, x):
        h = x if transposed else x.transpose(-2, -1)
        for step in plan:
            if callable(step):
                h = step(h)
                continue
            w = params[step[0]]
            b = params[step[1]].unsqueeze(-1) if step[1] is not None else None
            if b is not None and h.dim() == w.dim() == 3:  # a stack of tasks: one fused batched product
                h = torch.baddbmm(b, w, h)
            elif b is not None and h.dim() == w.dim() == 2:
                h = torch.addmm(b, w, h)
            else:
                h = torch.matmul(w, h)
                h = h + b if b is not None else h
        return h if transposed else h.transpose(-2, -1)

    return forward


def conv4(
    ways: int, in_channels: int = 1, hidden: int = 64, dtype=torch.float32, seed: int | None = 0
) -> nn.Sequential:
    """The few-shot Conv-4: four blocks of 3x3 convolution (stride 2), batch norm, ReLU; mean-pool; a linear head.

    Batch norm keeps no running statistics (``track_running_stats=False``): it
    normalises with each batch's own statistics, in training and at test time,
    as MAML's and iMAML's code do, which is what lets ``torch.func.vmap`` run
    a meta-batch of tasks through ``functional_call``.  Parameters are named
    ``features.*`` (the embedding) and ``head.weight`` / ``head.bias`` (the
    classifier COMLN adapts).  ``seed`` makes the initialisation repeatable
    without touching torch's global random state.
    """
    from collections import OrderedDict

    if not isinstance(ways, int) or ways < 2:
        raise ValueError(f"ways must be an integer >= 2; got {ways!r}")
    with torch.random.fork_rng(devices=[]):  # saves and restores the CPU generator, the only one seeded here
        if seed is not None:
            torch.random.default_generator.manual_seed(seed)
        blocks = []
        for i in range(4):
            blocks += [
                nn.Conv2d(in_channels if i == 0 else hidden, hidden, 3, stride=2, padding=1, dtype=dtype),
                nn.BatchNorm2d(hidden, track_running_stats=False, dtype=dtype),
                nn.ReLU(),
            ]
        features = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        return nn.Sequential(OrderedDict(features=features, head=nn.Linear(hidden, ways, dtype=dtype)))
