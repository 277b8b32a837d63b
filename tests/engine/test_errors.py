"""Bad input gets a ValueError naming the argument and the allowed values, never a deep torchdiffeq trace."""

import pytest
import torch

from amaml_lab import meta_gradient


def call(quad, **overrides):
    kw = dict(method="adjoint", steps=5, step_size=0.1)
    kw.update(overrides)
    theta = kw.pop("theta", quad.theta)
    support = kw.pop("support_loss", quad.support_loss)
    query = kw.pop("query_loss", quad.query_loss)
    return meta_gradient(support, query, theta, **kw)


@pytest.mark.parametrize(
    "overrides,pattern",
    [
        (dict(method="sgd"), r"method='sgd' is not known; allowed values: maml, adjoint, backsolve"),
        (dict(solver="rk45"), r"solver='rk45' is not known; allowed values: euler, midpoint, rk4, dopri5"),
        (dict(steps=0), r"steps must be >= 1"),
        (dict(steps=-3), r"steps must be >= 1"),
        (dict(steps=2.5), r"steps must be an integer"),
        (dict(steps=True), r"steps must be an integer"),
        (dict(step_size=0.0), r"step_size must be > 0"),
        (dict(step_size=-0.1), r"step_size must be > 0"),
        (dict(step_size=float("nan")), r"step_size must be finite"),
        (dict(step_size="0.1"), r"step_size must be a real number"),
        (dict(reg=-1.0), r"reg must be >= 0"),
        (dict(hvp="jax"), r"hvp='jax' is not known; allowed values: autograd, func"),
        (dict(scheme="exact"), r"scheme='exact' is not known; allowed values: continuous, grid, discrete"),
        (dict(scheme="grid", solver="dopri5"), r"scheme='grid' .* solver='dopri5' is adaptive"),
        (dict(scheme="discrete", solver="dopri5"), r"scheme='discrete' .* solver='dopri5' is adaptive"),
        (dict(checkpoints=1), r"checkpoints=1 is not allowed; allowed values: None .* >= 3"),
        (dict(checkpoints="log"), r"checkpoints='log' is not allowed"),
        (dict(truncate=3), r"option truncate=3 is not known to method='adjoint'; its options: scheme, checkpoints"),
        (dict(method="maml", scheme="discrete"), r"option scheme='discrete' is not known to method='maml'"),
        (dict(method="backsolve", reconstruction_tol=0), r"reconstruction_tol must be > 0"),
    ],
)
def test_bad_arguments(quad, overrides, pattern):
    with pytest.raises(ValueError, match=pattern):
        call(quad, **overrides)


def test_loss_that_is_not_scalar(quad):
    with pytest.raises(ValueError, match=r"support_loss must return a scalar tensor; it returned \(6,\)"):
        call(quad, support_loss=lambda u: u**2)
    with pytest.raises(ValueError, match=r"query_loss must return a scalar tensor; it returned float"):
        call(quad, query_loss=lambda u: 1.0)


def test_loss_that_is_not_callable(quad):
    with pytest.raises(ValueError, match=r"support_loss must be a callable"):
        call(quad, support_loss=3.0)


def test_theta_structure_the_losses_cannot_take(mlp_task):
    t = mlp_task
    missing = {k: v for k, v in t.theta.items() if k != "0.weight"}
    with pytest.raises(
        ValueError, match=r"support_loss cannot take theta \(a dict with keys .*Pass theta in the structure"
    ):
        meta_gradient(t.support_loss, t.query_loss, missing, method="maml", steps=2, step_size=0.1)
    with pytest.raises(ValueError, match=r"cannot take theta \(a tensor"):
        meta_gradient(
            t.support_loss, t.query_loss, torch.zeros(7, dtype=torch.float64), method="maml", steps=2, step_size=0.1
        )


@pytest.mark.parametrize(
    "theta,pattern",
    [
        ([1.0, 2.0], r"theta is a list; it must be a tensor or a dict of tensors"),
        ({}, r"theta is an empty dict"),
        ({"w": 1.0}, r"theta\['w'\] is a float"),
        (torch.arange(3), r"theta has dtype torch.int64; parameters must be floating point"),
        ({"a": torch.zeros(2), "b": torch.zeros(2, dtype=torch.float64)}, r"put every parameter on one dtype"),
    ],
)
def test_bad_theta(quad, theta, pattern):
    with pytest.raises(ValueError, match=pattern):
        call(quad, theta=theta)
