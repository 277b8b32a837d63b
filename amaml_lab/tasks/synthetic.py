"""Synthetic regression tasks."""
from __future__ import annotations

import math

import torch


def cos_mixture_task(shots: int, query: int, dim: int = 2, seed: int = 0, dtype=torch.float64):
    """One CosMixture task: y = -c * sum_i cos(f pi x_i + p) - sum_i x_i^2, x uniform in [-1, 1]^dim.

    c in [0.1, 1], p in [0.5, 2], f in [3, 6] are drawn from ``seed``.  Returns
    ``(support, query)``, each an ``(x, y)`` pair with y of shape (n, 1).
    """
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(3, generator=gen, dtype=torch.float64)
    c, p, f = 0.1 + 0.9 * u[0], 0.5 + 1.5 * u[1], 3.0 + 3.0 * u[2]

    def sample(n):
        x = torch.rand(n, dim, generator=gen, dtype=torch.float64) * 2 - 1
        y = -c * torch.cos(f * math.pi * x + p).sum(1, keepdim=True) - (x ** 2).sum(1, keepdim=True)
        return x.to(dtype), y.to(dtype)

    return sample(shots), sample(query)
