"""Models the kit meta-learns: plain nn.Modules, used through torch.func.functional_call."""
from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def mlp(in_features: int, hidden=(32, 32), out_features: int = 1, activation: str = "tanh",
        dtype=torch.float64, seed: int | None = 0) -> nn.Sequential:
    """A fully connected regressor: Linear-act-...-Linear (the Adjoint MAML papers' 2x32 tanh MLP by default).

    ``seed`` makes the initialisation repeatable (None leaves torch's global RNG alone).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation={activation!r} is not known; allowed values: {', '.join(ACTIVATIONS)}")
    sizes = [in_features, *hidden, out_features]
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.Linear(a, b, dtype=dtype)
        if gen is not None:
            bound = 1.0 / a ** 0.5  # torch's default uniform(-1/sqrt(fan_in), 1/sqrt(fan_in))
            with torch.no_grad():
                lin.weight.uniform_(-bound, bound, generator=gen)
                lin.bias.uniform_(-bound, bound, generator=gen)
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)
