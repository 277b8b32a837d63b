"""COMLN: a linear head adapted by gradient flow on cross-entropy; meta-gradients for W0, embeddings and T."""

import pytest
import torch
from helpers import rel

from amaml_lab import comln_task, meta_gradient


@pytest.fixture
def episode():
    g = torch.Generator().manual_seed(11)
    ways, shots, queries, dim = 3, 4, 5, 6
    centers = torch.randn(ways, dim, generator=g, dtype=torch.float64)
    ys = torch.arange(ways).repeat_interleave(shots)
    yq = torch.arange(ways).repeat_interleave(queries)
    fs = centers[ys] + 0.5 * torch.randn(len(ys), dim, generator=g, dtype=torch.float64)
    fq = centers[yq] + 0.5 * torch.randn(len(yq), dim, generator=g, dtype=torch.float64)
    w0 = 0.1 * torch.randn(ways, dim, generator=g, dtype=torch.float64)
    return comln_task(fs, ys, fq, yq, w0)


@pytest.mark.parametrize("solver", ["euler", "rk4"])
def test_comln_discrete_equals_maml_on_the_head_alone(episode, solver):
    support_loss, query_loss, theta, adapt = episode
    kw = dict(steps=60, step_size=0.1, solver=solver, adapt=adapt)
    ref = meta_gradient(support_loss, query_loss, theta, method="maml", **kw)
    r = meta_gradient(support_loss, query_loss, theta, method="comln", scheme="discrete", checkpoints=6, **kw)
    assert set(r.grad) == {"weight", "bias", "support_features", "query_features"}
    assert rel(r.grad, ref.grad) < 1e-10
    assert r.stats["stored_states"] <= 6
    assert torch.equal(r.adapted["support_features"], theta["support_features"])


def test_comln_continuous_converges_to_the_flow(episode):
    support_loss, query_loss, theta, adapt = episode
    ref = meta_gradient(support_loss, query_loss, theta, method="maml", steps=400, step_size=0.005, adapt=adapt)
    r = meta_gradient(support_loss, query_loss, theta, method="comln", steps=400, step_size=0.005, adapt=adapt)
    assert rel(r.grad, ref.grad) < 1e-6


def test_comln_memory_does_not_grow_with_horizon(episode):
    support_loss, query_loss, theta, adapt = episode
    held = [
        meta_gradient(
            support_loss, query_loss, theta, method="comln", steps=steps, step_size=0.05, adapt=adapt, checkpoints=8
        ).stats["stored_states"]
        for steps in (50, 500)
    ]
    assert held == [8, 8]


def test_comln_horizon_gradient(episode):
    support_loss, query_loss, theta, adapt = episode
    steps, T, eps = 200, 2.0, 1e-4
    r = meta_gradient(
        support_loss,
        query_loss,
        theta,
        method="comln",
        steps=steps,
        step_size=T / steps,
        adapt=adapt,
        learn_horizon=True,
    )
    up, down = (
        meta_gradient(
            support_loss, query_loss, theta, method="comln", steps=steps, step_size=(T + s) / steps, adapt=adapt
        ).query_loss
        for s in (eps, -eps)
    )
    assert r.horizon_grad == pytest.approx((up - down) / (2 * eps), rel=1e-5)
    assert r.horizon_grad < 0  # training the head longer still helps here


def test_comln_needs_a_head(episode):
    support_loss, query_loss, theta, _ = episode
    with pytest.raises(ValueError, match="method='comln' adapts only a head"):
        meta_gradient(support_loss, query_loss, theta, method="comln", steps=5, step_size=0.1)
