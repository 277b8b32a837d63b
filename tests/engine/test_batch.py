"""A meta-batch through one vmapped problem equals a Python loop over the tasks; the loops (imaml, the vmap
fallback) equal references computed without meta_gradient (a dense implicit solve, hand-written unrolled steps)."""

import pytest
import torch
from helpers import rel
from torch.func import functional_call

from amaml_lab import VmapFallbackWarning, meta_gradient, meta_gradient_batch, module_params
from amaml_lab.flow import step_function
from amaml_lab.models import mlp

B = 3


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(5)
    model = mlp(2, (6, 6), 1, seed=3)

    def loss(params, data):
        x, y = data
        return torch.mean((functional_call(model, params, (x,)) - y) ** 2)

    def make(n):
        x = torch.rand(B, n, 2, generator=g, dtype=torch.float64) * 2 - 1
        amp = torch.rand(B, 1, 1, generator=g, dtype=torch.float64) + 0.5
        return x, amp * torch.sin(3 * x[..., :1]) + x[..., 1:]

    return loss, module_params(model), make(10), make(12)


def loop(loss, theta, sdata, qdata, **kw):
    grads, losses = [], []
    for b in range(B):
        s = (sdata[0][b], sdata[1][b])
        q = (qdata[0][b], qdata[1][b])
        r = meta_gradient(lambda p, s=s: loss(p, s), lambda p, q=q: loss(p, q), theta, **kw)
        grads.append(r.grad)
        losses.append(r.query_loss)
    return {k: torch.stack([g[k] for g in grads]) for k in grads[0]}, torch.tensor(losses, dtype=torch.float64)


def _task_functions(loss, theta, sdata, qdata, b):
    """Task b's support and query losses on the flat parameter vector, and the flat theta."""
    keys, shapes = list(theta), [theta[k].shape for k in theta]
    sizes = [theta[k].numel() for k in theta]

    def unflat(v):
        return {k: x.reshape(shape) for k, x, shape in zip(keys, torch.split(v, sizes), shapes)}

    s = (sdata[0][b], sdata[1][b])
    q = (qdata[0][b], qdata[1][b])
    th = torch.cat([theta[k].reshape(-1) for k in keys]).detach()
    return (lambda v: loss(unflat(v), s)), (lambda v: loss(unflat(v), q)), th, unflat


def _stack_flat(per_task, unflat):
    trees = [unflat(v) for v in per_task]
    return {k: torch.stack([t[k] for t in trees]) for k in trees[0]}


def dense_imaml_reference(loss, theta, sdata, qdata, *, lam, steps, step_size):
    """Per task: the proximal flow du/dt = -grad L_S(u) - lam (u - theta) by hand-written rk4 steps, then
    (I + H/lam) v = grad L_Q(u(T)) solved directly with the dense support Hessian H at u(T)."""
    grads, adapted = [], []
    rk4 = step_function("rk4")
    for b in range(B):
        support, query, th, unflat = _task_functions(loss, theta, sdata, qdata, b)

        def field(t, u, support=support, th=th):
            with torch.enable_grad():
                x = u.detach().requires_grad_(True)
                (g,) = torch.autograd.grad(support(x), x)
            return -g - lam * (u - th)

        u = th.clone()
        for k in range(steps):
            u = rk4(field, k * step_size, (k + 1) * step_size, u)
        H = torch.autograd.functional.hessian(support, u)
        x = u.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(query(x), x)
        v = torch.linalg.solve(torch.eye(len(u), dtype=u.dtype) + H / lam, g)
        grads.append(v)
        adapted.append(u)
    return _stack_flat(grads, unflat), _stack_flat(adapted, unflat)


def unrolled_euler_reference(loss, theta, sdata, qdata, *, steps, step_size, reg):
    """Per task: back-propagation through explicit euler steps u <- u - h (grad L_S(u) + reg (u - theta)),
    written out here with create_graph (no solver, no meta_gradient)."""
    grads, losses = [], []
    for b in range(B):
        support, query, th, unflat = _task_functions(loss, theta, sdata, qdata, b)
        theta_var = th.clone().requires_grad_(True)
        u = theta_var
        for _ in range(steps):
            (g,) = torch.autograd.grad(support(u), u, create_graph=True)
            u = u - step_size * (g + reg * (u - theta_var))
        value = query(u)
        (grad,) = torch.autograd.grad(value, theta_var)
        grads.append(grad)
        losses.append(float(value.detach()))
    return _stack_flat(grads, unflat), torch.tensor(losses, dtype=torch.float64)


@pytest.mark.parametrize(
    "method,options",
    [
        ("maml", {}),
        ("maml", {"checkpoints": 3}),
        ("adjoint", {}),
        ("adjoint", {"scheme": "discrete", "checkpoints": 4}),
        ("adjoint", {"scheme": "grid", "checkpoints": 4}),
        ("fomaml", {}),
        ("reptile", {}),
        ("truncated", {"truncate": 3}),
        ("backsolve", {}),
    ],
)
@pytest.mark.parametrize("reg", [0.0, 0.5])
def test_batch_equals_loop(batch, method, options, reg):
    """The vectorized batch against a loop of single-task meta_gradient calls (a different code path)."""
    loss, theta, sdata, qdata = batch
    kw = dict(method=method, steps=8, step_size=0.05, solver="rk4", reg=reg, **options)
    r = meta_gradient_batch(loss, loss, theta, sdata, qdata, **kw)
    grads, losses = loop(loss, theta, sdata, qdata, **kw)
    assert rel(r.grads, grads) < 1e-12
    assert torch.allclose(r.query_losses, losses, rtol=1e-12)
    assert rel(r.grad, {k: v.mean(0) for k, v in grads.items()}) < 1e-12
    assert r.stats["vectorized"]
    assert r.grads["0.weight"].shape == (B, *theta["0.weight"].shape)


@pytest.mark.parametrize("lam", [0.5, 2.0])
def test_imaml_batch_equals_dense_implicit_solve(batch, lam):
    """imaml loops over tasks; each task's result is the dense solve of (I + H/lam) v = grad L_Q(u(T)) (CG with as
    many steps as parameters is exact), at u(T) from hand-written rk4 steps of the proximal flow."""
    loss, theta, sdata, qdata = batch
    n = sum(v.numel() for v in theta.values())
    r = meta_gradient_batch(
        loss, loss, theta, sdata, qdata, method="imaml", lam=lam, cg_steps=n, steps=8, step_size=0.05, solver="rk4"
    )
    assert not r.stats["vectorized"]
    grads, adapted = dense_imaml_reference(loss, theta, sdata, qdata, lam=lam, steps=8, step_size=0.05)
    assert rel(r.adapted, adapted) < 1e-12
    for b in range(B):
        assert rel({k: v[b] for k, v in r.grads.items()}, {k: v[b] for k, v in grads.items()}) < 1e-9
    assert rel(r.grad, {k: v.mean(0) for k, v in grads.items()}) < 1e-9


@pytest.mark.parametrize("method,options", [("adjoint", {"scheme": "discrete"}), ("maml", {})])
@pytest.mark.parametrize("reg", [0.0, 0.5])
def test_unvmappable_loss_falls_back_to_loop_with_a_warning(batch, method, options, reg):
    """The fallback loop's per-task meta-gradients against back-propagation through hand-written euler steps."""
    loss, theta, sdata, qdata = batch

    def stubborn(params, data):
        value = loss(params, data)
        if value.item() < 0:  # data-dependent Python control flow: vmap cannot take it
            return -value
        return value

    kw = dict(steps=5, step_size=0.05, solver="euler", reg=reg)
    with pytest.warns(VmapFallbackWarning, match="cannot be vmapped"):
        r = meta_gradient_batch(stubborn, stubborn, theta, sdata, qdata, method=method, **kw, **options)
    assert not r.stats["vectorized"]
    grads, losses = unrolled_euler_reference(loss, theta, sdata, qdata, steps=5, step_size=0.05, reg=reg)
    for b in range(B):
        assert rel({k: v[b] for k, v in r.grads.items()}, {k: v[b] for k, v in grads.items()}) < 1e-12
    assert torch.allclose(r.query_losses, losses, rtol=1e-12)


def test_batch_bad_input(batch):
    loss, theta, sdata, qdata = batch
    with pytest.raises(ValueError, match="support_data has 3 tasks but query_data has 2"):
        meta_gradient_batch(
            loss, loss, theta, sdata, (qdata[0][:2], qdata[1][:2]), method="maml", steps=2, step_size=0.1
        )
    with pytest.raises(ValueError, match="needs a fixed-grid solver"):
        meta_gradient_batch(loss, loss, theta, sdata, qdata, method="maml", steps=2, step_size=0.1, solver="dopri5")
    with pytest.raises(ValueError, match="same leading task dimension"):
        meta_gradient_batch(loss, loss, theta, (sdata[0], sdata[1][:2]), qdata, method="maml", steps=2, step_size=0.1)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("transposed", [False, True])
def test_stacked_forward_is_the_module(activation, transposed):
    """models.stacked_forward computes the module's output, for one task and for a stack of tasks."""
    from amaml_lab.models import stacked_forward

    model = mlp(3, (5, 4), 2, activation=activation, seed=1)
    forward = stacked_forward(model, transposed=transposed)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, 7, 3, generator=g, dtype=torch.float64)
    stack = {
        k: v + 0.1 * torch.randn(B, *v.shape, generator=g, dtype=torch.float64) for k, v in module_params(model).items()
    }

    def call(params, inputs):
        return forward(params, inputs.mT).mT if transposed else forward(params, inputs)

    assert torch.allclose(call(module_params(model), x[0]), model(x[0]), rtol=1e-13, atol=1e-14)
    together = call(stack, x)
    for b in range(B):
        alone = functional_call(model, {k: v[b] for k, v in stack.items()}, (x[b],))
        assert torch.allclose(together[b], alone, rtol=1e-13, atol=1e-14)
    assert stacked_forward(torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3))) is None


@pytest.mark.parametrize(
    "method,options", [("maml", {}), ("adjoint", {}), ("fomaml", {}), ("imaml", {"lam": 1.0, "cg_steps": 3})]
)
def test_stacked_losses_equal_the_loop(batch, method, options):
    """Losses that take the whole stack (no vmap) give the per-task meta-gradients of a loop over tasks."""
    from amaml_lab.models import stacked_forward

    loss, theta, sdata, qdata = batch
    forward = stacked_forward(mlp(2, (6, 6), 1, seed=3))

    def stacked(params, data):
        x, y = data
        return ((forward(params, x) - y) ** 2).mean((-2, -1))

    kw = dict(method=method, steps=8, step_size=0.05, solver="rk4", reg=0.0 if method == "imaml" else 0.5, **options)
    r = meta_gradient_batch(stacked, stacked, theta, sdata, qdata, stacked_losses=True, **kw)
    grads, losses = loop(loss, theta, sdata, qdata, **kw)
    assert rel(r.grads, grads) < 1e-12
    assert torch.allclose(r.query_losses, losses, rtol=1e-12)
    if method == "imaml":  # loops over tasks: each call takes one task, the stack is never formed
        n = sum(v.numel() for v in theta.values())
        r = meta_gradient_batch(stacked, stacked, theta, sdata, qdata, stacked_losses=True, **{**kw, "cg_steps": n})
        dense, _ = dense_imaml_reference(loss, theta, sdata, qdata, lam=1.0, steps=8, step_size=0.05)
        assert rel(r.grads, dense) < 1e-9
        return
    with pytest.raises(ValueError, match=r"stacked_losses=True but support_loss returned shape \(\)"):
        meta_gradient_batch(lambda p, d: stacked(p, d).sum(), stacked, theta, sdata, qdata, stacked_losses=True, **kw)
