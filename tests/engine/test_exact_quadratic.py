"""Every meta-gradient against closed forms on quadratic tasks (float64)."""

import warnings

import pytest
import torch
from helpers import Quadratic, rel

from amaml_lab import meta_gradient

SOLVERS = ["euler", "midpoint", "rk4"]


@pytest.mark.parametrize("reg", [0.0, 1.0])
@pytest.mark.parametrize("checkpoints", [None, 4, "sqrt"])
def test_continuous_adjoint_rk4_matches_exact_flow(quad, reg, checkpoints):
    h, steps = 0.01, 150
    exact, u_T = quad.exact_flow(h * steps, reg)
    r = meta_gradient(
        quad.support_loss,
        quad.query_loss,
        quad.theta,
        method="adjoint",
        steps=steps,
        step_size=h,
        solver="rk4",
        reg=reg,
        checkpoints=checkpoints,
    )
    assert rel(r.grad, exact) < 1e-6
    assert rel(r.adapted, u_T) < 1e-6
    assert r.query_loss == pytest.approx(float(quad.query_loss(u_T)), rel=1e-6)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("reg", [0.0, 0.7])
@pytest.mark.parametrize(
    "method,options",
    [
        ("maml", {}),
        ("adjoint", {"scheme": "discrete"}),
        ("adjoint", {"scheme": "discrete", "checkpoints": 5}),
        ("adjoint", {"scheme": "discrete", "checkpoints": "sqrt", "hvp": "func"}),
    ],
)
def test_discrete_methods_equal_product_of_one_step_maps(quad, solver, reg, method, options):
    h, steps = 0.05, 37
    exact, u_T = quad.exact_steps(solver, steps, h, reg)
    r = meta_gradient(
        quad.support_loss,
        quad.query_loss,
        quad.theta,
        method=method,
        steps=steps,
        step_size=h,
        solver=solver,
        reg=reg,
        **options,
    )
    assert rel(r.grad, exact) < 1e-10
    assert rel(r.adapted, u_T) < 1e-10


def _taylor(Z, order):
    """The stability polynomial of an explicit scheme of ``order`` stages = order (1 + Z + ... + Z^order / order!)."""
    R = term = torch.eye(Z.shape[0], dtype=Z.dtype)
    for j in range(1, order + 1):
        term = term @ Z / j
        R = R + term
    return R


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("reg", [0.0, 0.7])
@pytest.mark.parametrize("steps", [36, 37])
@pytest.mark.parametrize("checkpoints", [None, 4, "sqrt"])
def test_grid_scheme_equals_product_of_its_one_step_maps(quad, solver, reg, steps, checkpoints):
    """scheme="grid" on a quadratic: the backward system y = (a, q), dy/dt = N y with N = [[M, 0], [-reg, 0]],
    M = A + reg I, stepped by the solver's polynomial over -2h (euler: -h); an odd first step over -h.

    grad = [I I] R(-hN)^(steps mod 2) R(-2hN)^(steps // 2) [B (u_T - d); 0], u_T from the forward steps.
    """
    h = 0.05
    n = quad.n
    order = {"euler": 1, "midpoint": 2, "rk4": 4}[solver]
    _, u_T = quad.exact_steps(solver, steps, h, reg)
    eye, zero = torch.eye(n, dtype=torch.float64), torch.zeros(n, n, dtype=torch.float64)
    N = torch.cat([torch.cat([quad.A + reg * eye, zero], 1), torch.cat([-reg * eye, zero], 1)])
    if solver == "euler":
        P = torch.linalg.matrix_power(_taylor(-h * N, 1), steps)
    else:
        P = torch.linalg.matrix_power(_taylor(-2 * h * N, order), steps // 2)
        if steps % 2:
            P = _taylor(-h * N, order) @ P
    y = P @ torch.cat([quad.B @ (u_T - quad.d), torch.zeros(n, dtype=torch.float64)])
    exact = y[:n] + y[n:]
    r = meta_gradient(
        quad.support_loss,
        quad.query_loss,
        quad.theta,
        method="adjoint",
        scheme="grid",
        steps=steps,
        step_size=h,
        solver=solver,
        reg=reg,
        checkpoints=checkpoints,
    )
    assert rel(r.grad, exact) < 1e-12
    assert rel(r.adapted, u_T) < 1e-12
    if checkpoints is not None:
        assert r.stats["stored_states"] <= (4 if checkpoints == 4 else steps)


@pytest.mark.parametrize("scheme", ["continuous", "grid"])
@pytest.mark.parametrize("solver,order", [("euler", 1), ("midpoint", 2), ("rk4", 4)])
@pytest.mark.parametrize("reg", [0.0, 1.0])
def test_continuous_scheme_converges_at_its_order(quad, scheme, solver, order, reg):
    T = 1.2
    errors = []
    for steps in (12, 24, 48) if scheme == "continuous" else (24, 48, 96):  # grid: steps of 2h
        r = meta_gradient(
            quad.support_loss,
            quad.query_loss,
            quad.theta,
            method="adjoint",
            scheme=scheme,
            steps=steps,
            step_size=T / steps,
            solver=solver,
            reg=reg,
        )
        errors.append(rel(r.grad, quad.exact_flow(T, reg)[0]))
    rates = [torch.log2(torch.tensor(a / b)).item() for a, b in zip(errors, errors[1:])]
    assert all(order - 0.3 < p < order + 0.6 for p in rates), (errors, rates)


@pytest.mark.parametrize("method,options", [("maml", {}), ("adjoint", {}), ("backsolve", {})])
def test_adaptive_dopri5_matches_exact_flow(quad, method, options):
    T = 1.0
    exact, u_T = quad.exact_flow(T, 0.5)
    r = meta_gradient(
        quad.support_loss,
        quad.query_loss,
        quad.theta,
        method=method,
        steps=40,
        step_size=T / 40,
        solver="dopri5",
        reg=0.5,
        rtol=1e-10,
        atol=1e-12,
        **options,
    )
    assert rel(r.grad, exact) < 1e-6
    assert rel(r.adapted, u_T) < 1e-8


def test_tensor_theta_gives_tensor_grad(quad):
    r = meta_gradient(quad.support_loss, quad.query_loss, quad.theta, method="adjoint", steps=5, step_size=0.1)
    assert torch.is_tensor(r.grad) and r.grad.shape == quad.theta.shape
    assert not r.grad.requires_grad


def test_discrete_adjoint_counts_one_backward_step_per_forward_step(quad):
    """Euler: steps forward gradients, steps recomputed gradients, steps HVPs: n backward steps, not n+1."""
    steps = 9
    r = meta_gradient(
        quad.support_loss,
        quad.query_loss,
        quad.theta,
        method="adjoint",
        scheme="discrete",
        steps=steps,
        step_size=0.1,
        solver="euler",
    )
    assert r.stats["hvp_evals"] == steps
    assert r.stats["grad_evals"] == 2 * steps
    assert r.stats["query_grad_evals"] == 1


@pytest.mark.parametrize("solver,limit", [("rk4", 2.785), ("midpoint", 2.0), ("euler", 2.0)])
def test_grid_scheme_warns_past_its_stability_limit_and_only_there(solver, limit):
    """λmax = 10: steps of h with h·λmax just under the forward solver's limit; the grid scheme's backward step
    (2h for rk4 and midpoint) passes its own and warns, naming the cure; well inside it, no warning.
    The reported step x curvature never exceeds step x λmax (a Rayleigh quotient)."""
    from amaml_lab import GridSchemeWarning

    quad = Quadratic(eig=(0.5, 10.0))
    pairs = solver != "euler"
    T = 3.0
    # h·λmax = 0.95 limit: the forward steps are stable, the grid's 2h ones are not; then 2h·λmax = 0.5 limit
    for h, unstable in ((0.95 * limit / 10, pairs), (0.5 * limit / 10 / (2 if pairs else 1), False)):
        steps = round(T / h)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            r = meta_gradient(
                quad.support_loss,
                quad.query_loss,
                quad.theta,
                method="adjoint",
                scheme="grid",
                steps=steps,
                step_size=h,
                solver=solver,
            )
        warned = [w for w in caught if issubclass(w.category, GridSchemeWarning)]
        step = h * (2 if pairs else 1)
        assert r.stats["step_curvature"] <= step * 10.0 * (1 + 1e-12)
        assert bool(warned) == unstable, (h, r.stats["step_curvature"])
        if unstable:
            assert "scheme='continuous'" in str(warned[0].message)
            assert rel(r.grad, quad.exact_flow(steps * h)[0]) > 1.0  # the grown adjoint: off by orders
