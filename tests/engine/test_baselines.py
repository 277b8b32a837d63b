"""Baselines through the one entry point, against closed forms (float64)."""

import math

import pytest
import torch
from helpers import MLPTask, rel

from amaml_lab import meta_gradient


def one_step_map(quad, solver, h, reg):
    M = quad.A + reg * torch.eye(quad.n, dtype=torch.float64)
    Z, R, term = -h * M, torch.eye(quad.n, dtype=torch.float64), torch.eye(quad.n, dtype=torch.float64)
    for j in range(1, {"euler": 1, "midpoint": 2, "rk4": 4}[solver] + 1):
        term = term @ Z / j
        R = R + term
    return R, M


@pytest.mark.parametrize("reg", [0.0, 0.5])
def test_fomaml_is_query_gradient_at_adapted_state(quad, reg):
    _, u_T = quad.exact_steps("rk4", 20, 0.05, reg)
    r = meta_gradient(
        quad.support_loss, quad.query_loss, quad.theta, method="fomaml", steps=20, step_size=0.05, reg=reg
    )
    assert rel(r.grad, quad.B @ (u_T - quad.d)) < 1e-12
    assert r.stats["hvp_evals"] == 0


@pytest.mark.parametrize("scale", ["none", "horizon"])
def test_reptile_direction(quad, scale):
    _, u_T = quad.exact_steps("euler", 10, 0.1)
    r = meta_gradient(
        quad.support_loss,
        quad.query_loss,
        quad.theta,
        method="reptile",
        steps=10,
        step_size=0.1,
        solver="euler",
        scale=scale,
    )
    expected = (quad.theta - u_T) / (1.0 if scale == "none" else 10 * 0.1)
    assert rel(r.grad, expected) < 1e-12


def test_reptile_horizon_scaling_tends_to_support_gradient(quad):
    r = meta_gradient(
        quad.support_loss,
        quad.query_loss,
        quad.theta,
        method="reptile",
        steps=1,
        step_size=1e-6,
        solver="euler",
        scale="horizon",
    )
    assert rel(r.grad, quad.A @ (quad.theta - quad.c)) < 1e-5


@pytest.mark.parametrize("reg", [0.0, 0.5])
@pytest.mark.parametrize("k", [0, 1, 7, 20])
def test_truncated_matches_closed_form(quad, reg, k):
    steps, h = 20, 0.05
    S, M = one_step_map(quad, "rk4", h, reg)
    _, u_T = quad.exact_steps("rk4", steps, h, reg)
    Sk = torch.linalg.matrix_power(S, k)
    J = Sk + (torch.eye(quad.n, dtype=torch.float64) - Sk) @ torch.linalg.inv(M) * reg
    r = meta_gradient(
        quad.support_loss,
        quad.query_loss,
        quad.theta,
        method="truncated",
        truncate=k,
        steps=steps,
        step_size=h,
        reg=reg,
    )
    assert rel(r.grad, J.T @ quad.B @ (u_T - quad.d)) < 1e-10


def test_truncated_ends_are_maml_and_fomaml(mlp_task):
    t = mlp_task
    kw = dict(steps=12, step_size=0.05, reg=0.3)
    full = meta_gradient(t.support_loss, t.query_loss, t.theta, method="truncated", truncate=12, **kw)
    assert rel(full.grad, meta_gradient(t.support_loss, t.query_loss, t.theta, method="maml", **kw).grad) < 1e-12
    none = meta_gradient(t.support_loss, t.query_loss, t.theta, method="truncated", truncate=0, **kw)
    assert rel(none.grad, meta_gradient(t.support_loss, t.query_loss, t.theta, method="fomaml", **kw).grad) < 1e-12


@pytest.mark.parametrize("checkpoints", [3, 5, "sqrt", 40])
@pytest.mark.parametrize("reg", [0.0, 1.0])
@pytest.mark.parametrize("steps", [17, 23])
def test_checkpointed_maml_equals_maml(mlp_task, checkpoints, reg, steps):
    """Segment-by-segment back-propagation = one graph through every step, on the MLP (its Hessian changes along
    the path, so a segment rebuilt from the wrong stored state would differ)."""
    t = mlp_task
    kw = dict(steps=steps, step_size=0.05, solver="midpoint", reg=reg)
    ref = meta_gradient(t.support_loss, t.query_loss, t.theta, method="maml", **kw)
    assert ref.stats["graph_steps"] == steps
    r = meta_gradient(t.support_loss, t.query_loss, t.theta, method="maml", checkpoints=checkpoints, **kw)
    assert rel(r.grad, ref.grad) < 1e-12
    # c stored states cut the steps into segments of ceil(steps / c): only one segment's graph at a time
    c = math.ceil(math.sqrt(steps)) if checkpoints == "sqrt" else checkpoints
    assert r.stats["graph_steps"] <= math.ceil(steps / c)


@pytest.mark.parametrize("lam", [0.5, 2.0])
def test_imaml_matches_implicit_closed_form(quad, lam):
    """Long inner run to the proximal optimum, CG with as many steps as parameters."""
    eye = torch.eye(quad.n, dtype=torch.float64)
    phi = torch.linalg.solve(quad.A + lam * eye, quad.A @ quad.c + lam * quad.theta)
    exact = torch.linalg.solve(eye + quad.A / lam, quad.B @ (phi - quad.d))
    r = meta_gradient(
        quad.support_loss,
        quad.query_loss,
        quad.theta,
        method="imaml",
        lam=lam,
        cg_steps=quad.n,
        steps=600,
        step_size=0.05,
    )
    assert rel(r.adapted, phi) < 1e-8
    assert rel(r.grad, exact) < 1e-6
    assert r.stats["cg_iterations"] <= quad.n


def test_imaml_few_cg_steps_is_approximate_and_damping_shrinks(quad):
    kw = dict(method="imaml", lam=1.0, steps=400, step_size=0.05)
    exact = meta_gradient(quad.support_loss, quad.query_loss, quad.theta, cg_steps=quad.n, **kw).grad
    one = meta_gradient(quad.support_loss, quad.query_loss, quad.theta, cg_steps=1, **kw).grad
    assert rel(one, exact) > 1e-3
    damped = meta_gradient(quad.support_loss, quad.query_loss, quad.theta, cg_steps=quad.n, damping=1.0, **kw).grad
    assert damped.norm() < exact.norm()


@pytest.mark.parametrize("method", ["maml", "adjoint", "fomaml", "imaml"])
@pytest.mark.parametrize("reg", [0.0, 0.8])
def test_horizon_gradient_matches_finite_difference_in_T(quad, method, reg):
    if method == "imaml":
        reg = 0.8
    T = 1.3
    eps = 1e-5
    fd = (
        float(quad.query_loss(quad.exact_flow(T + eps, reg)[1]))
        - float(quad.query_loss(quad.exact_flow(T - eps, reg)[1]))
    ) / (2 * eps)
    opts = {"lam": reg} if method == "imaml" else {"reg": reg}
    r = meta_gradient(
        quad.support_loss,
        quad.query_loss,
        quad.theta,
        method=method,
        steps=130,
        step_size=0.01,
        learn_horizon=True,
        **opts,
    )
    assert r.horizon_grad == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_horizon_gradient_on_mlp_matches_finite_difference():
    t = MLPTask(hidden=6)
    kw = dict(method="adjoint", solver="rk4", reg=0.2)
    r = meta_gradient(t.support_loss, t.query_loss, t.theta, steps=200, step_size=0.005, learn_horizon=True, **kw)
    eps = 1e-3
    up = meta_gradient(t.support_loss, t.query_loss, t.theta, steps=200, step_size=0.005 + eps / 200, **kw)
    down = meta_gradient(t.support_loss, t.query_loss, t.theta, steps=200, step_size=0.005 - eps / 200, **kw)
    assert r.horizon_grad == pytest.approx((up.query_loss - down.query_loss) / (2 * eps), rel=1e-5)


@pytest.mark.parametrize(
    "overrides,pattern",
    [
        (dict(method="imaml", cg_steps=0), r"cg_steps must be >= 1"),
        (dict(method="imaml", lam=0.0), r"lam must be > 0"),
        (dict(method="imaml", damping=-1.0), r"damping must be >= 0"),
        (dict(method="imaml", lam=2.0, reg=1.0), r"reg = lam = 2.0; got reg=1.0"),
        (dict(method="truncated", truncate=6), r"truncate must be an integer in 0..steps=5; got 6"),
        (dict(method="truncated", truncate=-1), r"truncate must be an integer in 0..steps=5"),
        (dict(method="truncated"), r"method='truncated' needs truncate=k"),
        (dict(method="reptile", scale="sqrt"), r"scale='sqrt' is not known; allowed values: none, horizon"),
        (dict(method="maml", checkpoints=3, solver="dopri5"), r"solver='dopri5' is\s+adaptive"),
        (dict(method="fomaml", lam=1.0), r"option lam=1.0 is not known to method='fomaml'"),
        (dict(learn_horizon="yes"), r"learn_horizon must be True or False"),
    ],
)
def test_bad_baseline_options(quad, overrides, pattern):
    kw = dict(method="adjoint", steps=5, step_size=0.1)
    kw.update(overrides)
    with pytest.raises(ValueError, match=pattern):
        meta_gradient(quad.support_loss, quad.query_loss, quad.theta, **kw)


@pytest.mark.parametrize("solver", ["euler", "midpoint", "rk4"])
@pytest.mark.parametrize("reg", [0.0, 0.6])
@pytest.mark.parametrize("hvp", ["autograd", "func"])
def test_forward_sensitivities_equal_maml(solver, reg, hvp):
    t = MLPTask(hidden=5, shots=8)
    kw = dict(steps=9, step_size=0.08, solver=solver, reg=reg)
    ref = meta_gradient(t.support_loss, t.query_loss, t.theta, method="maml", **kw)
    r = meta_gradient(t.support_loss, t.query_loss, t.theta, method="forward", hvp=hvp, **kw)
    assert rel(r.grad, ref.grad) < 1e-10


def test_forward_sensitivities_adaptive_match_exact_flow(quad):
    exact, _ = quad.exact_flow(1.0, 0.4)
    r = meta_gradient(
        quad.support_loss,
        quad.query_loss,
        quad.theta,
        method="forward",
        steps=10,
        step_size=0.1,
        solver="dopri5",
        reg=0.4,
        rtol=1e-10,
        atol=1e-12,
    )
    assert rel(r.grad, exact) < 1e-7


def test_compare_methods_rows(mlp_task):
    from amaml_lab import compare_methods

    t = mlp_task
    rows = compare_methods(t.support_loss, t.query_loss, t.theta, [4, 16], step_size=0.05)
    by = {(r["steps"], r["label"]): r for r in rows}
    assert len(rows) == 2 * 7
    for steps in (4, 16):
        # the rows' errors are against maml's gradient, recomputed here through meta_gradient
        exact = meta_gradient(t.support_loss, t.query_loss, t.theta, method="maml", steps=steps, step_size=0.05).grad
        fo = meta_gradient(t.support_loss, t.query_loss, t.theta, method="fomaml", steps=steps, step_size=0.05).grad
        assert by[(steps, "fomaml")]["rel_error"] == pytest.approx(rel(fo, exact), rel=1e-9)
        assert by[(steps, "adjoint (discrete)")]["rel_error"] < 1e-10
        assert by[(steps, "adjoint (discrete)")]["cosine"] == pytest.approx(1.0, abs=1e-12)
        assert by[(steps, "fomaml")]["rel_error"] > 1e-4
        assert all(-1 - 1e-12 <= r["cosine"] <= 1 + 1e-12 for r in rows)
    assert by[(4, "truncated (last 5)")]["rel_error"] < 1e-12  # 5 > 4 steps: clipped, so exact
    assert by[(16, "fomaml")]["rel_error"] > by[(4, "fomaml")]["rel_error"]  # first order worsens with steps
