"""Back-solving the state: fine on short, well-conditioned horizons; blows up (and warns) on long, stiff ones."""

import math
import warnings

import pytest
from helpers import MLPTask, Quadratic, rel

from amaml_lab import BacksolveWarning, meta_gradient


def test_backsolve_accurate_on_short_benign_horizon(quad):
    exact, _ = quad.exact_flow(0.5, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BacksolveWarning)
        r = meta_gradient(
            quad.support_loss, quad.query_loss, quad.theta, method="backsolve", steps=50, step_size=0.01, solver="rk4"
        )
    assert rel(r.grad, exact) < 1e-6
    assert r.stats["reconstruction_error"] < 1e-8


@pytest.mark.parametrize("reg", [0.0, 1.0])
def test_backsolve_diverges_on_ill_conditioned_long_horizon(reg):
    """lambda_max = 40, T = 5: backward in time the error grows like exp(200); the stored adjoint stays exact."""
    q = Quadratic(n=8, seed=1, eig=(0.05, 40.0))
    h, steps = 0.01, 500
    exact, _ = q.exact_flow(h * steps, reg)
    with pytest.warns(BacksolveWarning, match="checkpoints"):
        bad = meta_gradient(
            q.support_loss, q.query_loss, q.theta, method="backsolve", steps=steps, step_size=h, solver="rk4", reg=reg
        )
    assert not (bad.stats["reconstruction_error"] < 1e3)  # astronomically large or non-finite
    # a quadratic's Hessian does not depend on u, so here the adjoint itself survives; on a nonlinear
    # task it does not (next test)
    good = meta_gradient(
        q.support_loss,
        q.query_loss,
        q.theta,
        method="adjoint",
        steps=steps,
        step_size=h,
        solver="rk4",
        reg=reg,
        checkpoints="sqrt",
    )
    assert rel(good.grad, exact) < 1e-6


def test_backsolve_gradient_wrong_on_nonlinear_long_horizon():
    t = MLPTask(hidden=16, shots=20)
    kw = dict(steps=400, step_size=0.05, solver="rk4", reg=0.0)
    ref = meta_gradient(t.support_loss, t.query_loss, t.theta, method="maml", **kw)
    with pytest.warns(BacksolveWarning):
        bad = meta_gradient(t.support_loss, t.query_loss, t.theta, method="backsolve", **kw)
    assert not (rel(bad.grad, ref.grad) < 1e-2)  # far off, or NaN
    good = meta_gradient(t.support_loss, t.query_loss, t.theta, method="adjoint", scheme="discrete", **kw)
    assert rel(good.grad, ref.grad) < 1e-10


def test_backsolve_error_grows_like_exp_lambda_max_T():
    """Once past rounding, each unit of horizon multiplies the reconstruction error by about exp(lambda_max)."""
    lam_max = 20.0
    q = Quadratic(n=4, seed=2, eig=(0.5, lam_max))
    errors = []
    for steps in (200, 300, 400):  # T = 2, 3, 4
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BacksolveWarning)
            r = meta_gradient(
                q.support_loss, q.query_loss, q.theta, method="backsolve", steps=steps, step_size=0.01, solver="rk4"
            )
        errors.append(r.stats["reconstruction_error"])
    rates = [math.log(b / a) for a, b in zip(errors, errors[1:])]  # per unit of T
    assert all(0.7 * lam_max < rate < 1.3 * lam_max for rate in rates), (errors, rates)


def test_backsolve_adaptive_failure_warns_instead_of_hanging():
    q = Quadratic(n=4, seed=3, eig=(0.5, 60.0))
    with pytest.warns(BacksolveWarning):
        r = meta_gradient(
            q.support_loss,
            q.query_loss,
            q.theta,
            method="backsolve",
            steps=10,
            step_size=0.5,
            solver="dopri5",
            rtol=1e-8,
            atol=1e-10,
        )
    assert not (r.stats["reconstruction_error"] < 1e-3)
