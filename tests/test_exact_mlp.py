"""Meta-gradients on a nonlinear MLP with dict params (float64): discrete adjoint = maml, finite differences, orders."""
import pytest
import torch

from amaml_lab import meta_gradient
from conftest import MLPTask, flat, rel


@pytest.mark.parametrize("solver", ["euler", "midpoint", "rk4"])
@pytest.mark.parametrize("reg", [0.0, 1.0])
@pytest.mark.parametrize("checkpoints", [None, 3, "sqrt"])
def test_discrete_adjoint_equals_maml(mlp_task, solver, reg, checkpoints):
    kw = dict(steps=23, step_size=0.05, solver=solver, reg=reg)
    t = mlp_task
    ref = meta_gradient(t.support_loss, t.query_loss, t.theta, method="maml", **kw)
    r = meta_gradient(t.support_loss, t.query_loss, t.theta, method="adjoint", scheme="discrete",
                      checkpoints=checkpoints, **kw)
    assert set(r.grad) == set(t.theta)
    assert all(r.grad[k].shape == t.theta[k].shape for k in t.theta)
    assert rel(r.grad, ref.grad) < 1e-10
    assert rel(r.adapted, ref.adapted) < 1e-12
    if isinstance(checkpoints, int):
        assert r.stats["stored_states"] <= checkpoints
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


@pytest.mark.parametrize("checkpoints", [None, 4])
def test_checkpointed_continuous_equals_stored(mlp_task, checkpoints):
    t = mlp_task
    kw = dict(method="adjoint", steps=30, step_size=0.05, solver="rk4", reg=0.5)
    full = meta_gradient(t.support_loss, t.query_loss, t.theta, **kw)
    r = meta_gradient(t.support_loss, t.query_loss, t.theta, checkpoints=checkpoints, **kw)
    assert rel(r.grad, full.grad) < 1e-13
    if checkpoints:
        assert r.stats["stored_states"] < full.stats["stored_states"]


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


def test_maml_agrees_with_gradcheck():
    """torch.autograd.gradcheck on theta -> L_Q(u(T)) computed by back-propagating through torchdiffeq."""
    t = MLPTask(hidden=3, shots=5)
    keys = list(t.theta)

    def objective(*tensors):
        return meta_gradient(t.support_loss, t.query_loss, dict(zip(keys, tensors)), method="adjoint",
                             scheme="discrete", steps=6, step_size=0.1, solver="midpoint")

    # gradcheck needs a differentiable function; use the adjoint's gradient as a custom backward
    class Objective(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *tensors):
            r = objective(*tensors)
            ctx.grads = [r.grad[k] for k in keys]
            return torch.tensor(r.query_loss, dtype=torch.float64)

        @staticmethod
        def backward(ctx, g):
            return tuple(g * x for x in ctx.grads)

    inputs = tuple(t.theta[k].clone().requires_grad_(True) for k in keys)
    assert torch.autograd.gradcheck(Objective.apply, inputs, eps=1e-6, atol=1e-7, rtol=1e-6)


def test_continuous_differs_from_discrete_on_nonlinear_task(mlp_task):
    """Coarse euler: the continuous adjoint approximates the flow, not the steps, so it is not maml's gradient."""
    t = mlp_task
    kw = dict(steps=8, step_size=0.25, solver="euler")
    ref = meta_gradient(t.support_loss, t.query_loss, t.theta, method="maml", **kw)
    cont = meta_gradient(t.support_loss, t.query_loss, t.theta, method="adjoint", scheme="continuous", **kw)
    assert rel(cont.grad, ref.grad) > 1e-4


@pytest.mark.parametrize("solver,order", [("euler", 1), ("midpoint", 2), ("rk4", 4)])
def test_continuous_order_on_nonlinear_task(mlp_task, solver, order):
    """Error against a fine rk4 reference falls by about 2^order per halving of step_size."""
    t = mlp_task
    T, reg = 1.0, 0.5
    ref = meta_gradient(t.support_loss, t.query_loss, t.theta, method="adjoint", steps=320, step_size=T / 320,
                        solver="rk4", reg=reg).grad
    errs = []
    for steps in (10, 20, 40):
        r = meta_gradient(t.support_loss, t.query_loss, t.theta, method="adjoint", steps=steps,
                          step_size=T / steps, solver=solver, reg=reg)
        errs.append(rel(r.grad, ref))
    rates = [torch.log2(torch.tensor(a / b)).item() for a, b in zip(errs, errs[1:])]
    assert all(order - 0.4 < p < order + 0.8 for p in rates), (errs, rates)


def test_meta_gradient_does_not_touch_theta(mlp_task):
    t = mlp_task
    before = flat(t.theta).clone()
    meta_gradient(t.support_loss, t.query_loss, t.theta, method="adjoint", steps=5, step_size=0.1)
    assert torch.equal(flat(t.theta), before)
