"""adapt=: only some parameters move in the inner loop; every parameter still gets its meta-gradient."""

import pytest
import torch
from helpers import MLPTask, rel

from amaml_lab import meta_gradient

HEAD = ["4.weight", "4.bias"]


@pytest.mark.parametrize("reg", [0.0, 0.5])
@pytest.mark.parametrize(
    "method,options,tol",
    [
        ("adjoint", {"scheme": "discrete"}, 1e-10),
        ("adjoint", {"scheme": "discrete", "checkpoints": 4}, 1e-10),
        ("adjoint", {"checkpoints": 5}, 1e-7),
        ("adjoint", {"scheme": "grid", "checkpoints": 5}, 2e-6),
        ("adjoint", {"scheme": "grid", "hvp": "func"}, 2e-6),
        ("forward", {}, 1e-10),
        ("maml", {"checkpoints": 3}, 1e-10),
        ("truncated", {"truncate": 40}, 1e-10),
        ("backsolve", {}, 1e-6),
    ],
)
def test_head_only_inner_loop_matches_maml(method, options, tol, reg):
    t = MLPTask(hidden=5, shots=10)
    kw = dict(steps=40, step_size=0.02, solver="rk4", reg=reg, adapt=HEAD)
    ref = meta_gradient(t.support_loss, t.query_loss, t.theta, method="maml", **kw)
    r = meta_gradient(t.support_loss, t.query_loss, t.theta, method=method, **kw, **options)
    assert rel(r.grad, ref.grad) < tol
    for k in t.theta:
        moved = not torch.equal(r.adapted[k], t.theta[k])
        assert moved == (k in HEAD)
    assert r.grad["0.weight"].abs().max() > 0  # frozen, but meta-learned


def test_adapt_everything_is_the_default(mlp_task):
    t = mlp_task
    kw = dict(method="adjoint", steps=10, step_size=0.05)
    a = meta_gradient(t.support_loss, t.query_loss, t.theta, adapt=list(t.theta), **kw)
    b = meta_gradient(t.support_loss, t.query_loss, t.theta, **kw)
    assert rel(a.grad, b.grad) < 1e-14


def test_adapt_bad_input(mlp_task, quad):
    t = mlp_task
    with pytest.raises(ValueError, match=r"unknown keys \['head'\]; allowed values: keys of theta"):
        meta_gradient(t.support_loss, t.query_loss, t.theta, method="maml", steps=2, step_size=0.1, adapt=["head"])
    with pytest.raises(ValueError, match="adapt names keys of a dict theta"):
        meta_gradient(
            quad.support_loss, quad.query_loss, quad.theta, method="maml", steps=2, step_size=0.1, adapt=["x"]
        )
    with pytest.raises(ValueError, match="imaml' adapts every parameter"):
        meta_gradient(t.support_loss, t.query_loss, t.theta, method="imaml", steps=2, step_size=0.1, adapt=HEAD)
