"""Meta-gradients on a nonlinear MLP with dict params (float64): discrete adjoint = maml, finite differences,
gradcheck, checkpointing on a state-dependent Hessian, the continuous adjoint's order against a fine maml reference."""

import pytest
import torch
from helpers import MLPTask, flat, rel

from amaml_lab import meta_gradient


@pytest.mark.parametrize("solver", ["euler", "midpoint", "rk4"])
@pytest.mark.parametrize("reg", [0.0, 1.0])
@pytest.mark.parametrize("checkpoints", [None, 3, "sqrt"])
@pytest.mark.parametrize("steps", [17, 23])
def test_discrete_adjoint_equals_maml(mlp_task, solver, reg, checkpoints, steps):
    """The MLP's support Hessian changes along the path, so a sweep that used a wrong stored state would differ."""
    kw = dict(steps=steps, step_size=0.05, solver=solver, reg=reg)
    t = mlp_task
    ref = meta_gradient(t.support_loss, t.query_loss, t.theta, method="maml", **kw)
    r = meta_gradient(
        t.support_loss, t.query_loss, t.theta, method="adjoint", scheme="discrete", checkpoints=checkpoints, **kw
    )
    assert set(r.grad) == set(t.theta)
    assert all(r.grad[k].shape == t.theta[k].shape for k in t.theta)
    assert rel(r.grad, ref.grad) < 1e-10
    assert rel(r.adapted, ref.adapted) < 1e-12
    if isinstance(checkpoints, int):
        assert r.stats["stored_states"] <= checkpoints
    if checkpoints is not None:  # really checkpointed: fewer states than the uncheckpointed sweep's steps + 1
        assert r.stats["stored_states"] < steps + 1
    assert r.query_loss == pytest.approx(ref.query_loss, rel=1e-12)


@pytest.mark.parametrize("reg", [0.0, 1.0])
def test_func_hvp_backend_agrees(mlp_task, reg):
    t = mlp_task
    kw = dict(steps=15, step_size=0.05, solver="rk4", reg=reg, method="adjoint")
    a = meta_gradient(t.support_loss, t.query_loss, t.theta, hvp="autograd", **kw)
    b = meta_gradient(t.support_loss, t.query_loss, t.theta, hvp="func", **kw)
    assert rel(b.grad, a.grad) < 1e-12
    ref = meta_gradient(t.support_loss, t.query_loss, t.theta, **{**kw, "method": "maml"})
    c = meta_gradient(t.support_loss, t.query_loss, t.theta, hvp="func", scheme="discrete", **kw)
    assert rel(c.grad, ref.grad) < 1e-10


@pytest.mark.parametrize("scheme", ["continuous", "grid"])
@pytest.mark.parametrize("checkpoints", [3, 5, "sqrt"])
@pytest.mark.parametrize("steps", [17, 30])
@pytest.mark.parametrize("reg", [0.0, 0.5])
def test_checkpointed_continuous_equals_stored(mlp_task, scheme, checkpoints, steps, reg):
    """Checkpointed continuous (and grid) adjoint = the one that stores every state (state-dependent Hessian)."""
    t = mlp_task
    kw = dict(method="adjoint", steps=steps, step_size=0.05, solver="rk4", reg=reg, scheme=scheme)
    full = meta_gradient(t.support_loss, t.query_loss, t.theta, **kw)
    assert full.stats["stored_states"] == steps + 1 + (scheme == "grid" and steps % 2)  # grid holds u_1 once
    r = meta_gradient(t.support_loss, t.query_loss, t.theta, checkpoints=checkpoints, **kw)
    assert rel(r.grad, full.grad) < 1e-12
    assert r.stats["stored_states"] < full.stats["stored_states"]
    if isinstance(checkpoints, int):
        assert r.stats["stored_states"] <= checkpoints


def test_maml_matches_finite_differences():
    t = MLPTask(hidden=4, shots=8)
    kw = dict(steps=10, step_size=0.1, solver="rk4", reg=0.3)
    r = meta_gradient(t.support_loss, t.query_loss, t.theta, method="maml", **kw)
    eps = 1e-6
    fd = {}
    for k, v in t.theta.items():
        g = torch.zeros_like(v).reshape(-1)
        for i in range(v.numel()):
            vals = []
            for s in (eps, -eps):
                th = {kk: vv.clone() for kk, vv in t.theta.items()}
                th[k].reshape(-1)[i] += s
                vals.append(meta_gradient(t.support_loss, t.query_loss, th, method="maml", **kw).query_loss)
            g[i] = (vals[0] - vals[1]) / (2 * eps)
        fd[k] = g.reshape(v.shape)
    assert rel(r.grad, fd) < 1e-7


def _gradcheck_meta_gradient(task, **kw):
    """torch.autograd.gradcheck of theta -> L_Q(u(T)): the forward value is meta_gradient's query_loss, the
    backward is meta_gradient's grad, so gradcheck compares that grad with central differences of the value."""
    keys = list(task.theta)

    class Objective(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *tensors):
            r = meta_gradient(task.support_loss, task.query_loss, dict(zip(keys, tensors)), **kw)
            ctx.grads = [r.grad[k] for k in keys]
            return torch.tensor(r.query_loss, dtype=torch.float64)

        @staticmethod
        def backward(ctx, g):
            return tuple(g * x for x in ctx.grads)

    inputs = tuple(task.theta[k].clone().requires_grad_(True) for k in keys)
    # central differences in float64 are good to ~1e-10 here; a missing step or a wrong sign is >= 1e-4 off
    return torch.autograd.gradcheck(Objective.apply, inputs, eps=1e-6, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("solver", ["euler", "rk4"])
@pytest.mark.parametrize("reg", [0.0, 1.0])
def test_maml_gradcheck(solver, reg):
    """maml's meta-gradient against finite differences of its own forward value (gradcheck)."""
    t = MLPTask(hidden=3, shots=5)
    assert _gradcheck_meta_gradient(t, method="maml", steps=8, step_size=0.1, solver=solver, reg=reg)


@pytest.mark.parametrize("reg", [0.0, 1.0])
def test_discrete_adjoint_gradcheck(reg):
    """The discrete adjoint's meta-gradient (checkpointed) against finite differences (gradcheck)."""
    t = MLPTask(hidden=3, shots=5)
    assert _gradcheck_meta_gradient(
        t, method="adjoint", scheme="discrete", checkpoints=3, steps=7, step_size=0.1, solver="midpoint", reg=reg
    )


def test_continuous_differs_from_discrete_on_nonlinear_task(mlp_task):
    """Coarse euler: the continuous adjoint approximates the flow, not the steps, so it is not maml's gradient."""
    t = mlp_task
    kw = dict(steps=8, step_size=0.25, solver="euler")
    ref = meta_gradient(t.support_loss, t.query_loss, t.theta, method="maml", **kw)
    cont = meta_gradient(t.support_loss, t.query_loss, t.theta, method="adjoint", scheme="continuous", **kw)
    assert rel(cont.grad, ref.grad) > 1e-4


ORDER_T, ORDER_REG, ORDER_REF_STEPS = 1.0, 0.5, 2048


@pytest.fixture(scope="module")
def flow_reference():
    """The exact flow's meta-gradient, by back-propagation through rk4 on a fine grid (method="maml").

    maml on rk4 is the gradient of the rk4 solution, which converges to the flow's at order 4: its error is
    about (10 / 2048)^4 ~ 6e-10 times rk4's at 10 steps (~5e-5), ~3e-14 relative (2048 and 4096 steps agree to
    2e-14), far below the smallest error measured against it (rk4 at 40 steps, ~2e-7).
    """
    t = MLPTask()
    ref = meta_gradient(
        t.support_loss,
        t.query_loss,
        t.theta,
        method="maml",
        steps=ORDER_REF_STEPS,
        step_size=ORDER_T / ORDER_REF_STEPS,
        solver="rk4",
        reg=ORDER_REG,
    ).grad
    return t, ref


@pytest.mark.parametrize("scheme", ["continuous", "grid"])
@pytest.mark.parametrize("solver,order", [("euler", 1), ("midpoint", 2), ("rk4", 4)])
def test_continuous_order_on_nonlinear_task(flow_reference, scheme, solver, order):
    """The continuous (and grid) adjoint's error against the flow's meta-gradient falls by 2^order per halving."""
    t, ref = flow_reference
    errs = []
    for steps in (10, 20, 40) if scheme == "continuous" else (20, 40, 80):  # grid: steps of 2h
        r = meta_gradient(
            t.support_loss,
            t.query_loss,
            t.theta,
            method="adjoint",
            scheme=scheme,
            steps=steps,
            step_size=ORDER_T / steps,
            solver=solver,
            reg=ORDER_REG,
        )
        errs.append(rel(r.grad, ref))
    rates = [torch.log2(torch.tensor(a / b)).item() for a, b in zip(errs, errs[1:])]
    assert all(abs(p - order) < 0.5 for p in rates), (errs, rates)


def test_meta_gradient_does_not_touch_theta(mlp_task):
    t = mlp_task
    before = flat(t.theta).clone()
    meta_gradient(t.support_loss, t.query_loss, t.theta, method="adjoint", steps=5, step_size=0.1)
    assert torch.equal(flat(t.theta), before)


def test_auto_checkpoints_store_everything_that_fits_and_checkpoint_the_rest(mlp_task):
    """checkpoints="auto": every state within memory_budget_mb, else as many as fit; the same gradient."""
    t = mlp_task
    kw = dict(method="adjoint", steps=40, step_size=0.02, reg=0.5)
    stored = meta_gradient(t.support_loss, t.query_loss, t.theta, **kw)
    state_mb = sum(v.numel() for v in t.theta.values()) * 8 / 2**20
    roomy = meta_gradient(t.support_loss, t.query_loss, t.theta, checkpoints="auto", **kw)
    tight = meta_gradient(
        t.support_loss, t.query_loss, t.theta, checkpoints="auto", memory_budget_mb=7.5 * state_mb, **kw
    )
    assert roomy.stats["stored_states"] == 41 and roomy.stats["checkpoints"] is None
    assert tight.stats["checkpoints"] == 7 and tight.stats["stored_states"] <= 7
    for r in (roomy, tight):
        assert rel(r.grad, stored.grad) < 1e-12
    with pytest.raises(ValueError, match="memory_budget_mb must be > 0"):
        meta_gradient(t.support_loss, t.query_loss, t.theta, checkpoints="auto", memory_budget_mb=0, **kw)
    with pytest.raises(ValueError, match="checkpoints='auto' is not allowed; allowed values: None"):
        meta_gradient(t.support_loss, t.query_loss, t.theta, method="maml", checkpoints="auto", steps=4, step_size=0.1)
