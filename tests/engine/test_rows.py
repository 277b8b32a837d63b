"""The engine's multi-horizon functions (one sweep, a row per horizon) against meta_gradient run at each horizon
alone, in float64: with the proximal term (reg > 0) and both HVP back ends, horizons given out of order and of
both parities.  The horizon explorer draws its lines from these functions (tests/teach/test_horizons.py checks it
with reg = 0 on its own task)."""

import pytest
import torch

from amaml_lab.functional import flat_grad, module_params, task_losses
from amaml_lab.metagrad import meta_gradient
from amaml_lab.metagrad.backsolve import backsolve_rows
from amaml_lab.metagrad.core import build_problem, query_value_and_grad, sweep_rows
from amaml_lab.metagrad.sweeps import adjoint_rows
from amaml_lab.models import mlp

ENDS = [7, 2, 5, 1, 4]  # out of order, odd and even
H = 0.05


@pytest.fixture(scope="module")
def task():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(8, 1, generator=g, dtype=torch.float64) * 4 - 2
    xq = torch.rand(8, 1, generator=g, dtype=torch.float64) * 4 - 2
    model = mlp(1, (6,), 1, dtype=torch.float64, seed=1)
    support, query = task_losses(model, (x, torch.sin(2 * x)), (xq, torch.sin(2 * xq)))
    return support, query, module_params(model)


def _problem(task, solver, reg, hvp):
    support, query, theta = task
    return build_problem(
        support, query, theta, steps=max(ENDS), step_size=H, solver=solver, reg=reg, rtol=1e-7, atol=1e-9, hvp=hvp
    )


def _ends(p):
    with torch.no_grad():
        states = p.solve(p.flow(), p.theta, range(p.steps + 1))
    q = torch.stack([query_value_and_grad(p, states[k])[1] for k in ENDS])
    return states, q


def _alone(task, k, solver, reg, hvp, method, **options):
    support, query, theta = task
    r = meta_gradient(
        support, query, theta, method=method, steps=k, step_size=H, solver=solver, reg=reg, hvp=hvp, **options
    )
    return flat_grad(r.grad)


@pytest.mark.parametrize("hvp", ["autograd", "func"])
@pytest.mark.parametrize("reg", [0.0, 0.7])
@pytest.mark.parametrize("scheme", ["continuous", "discrete", "grid"])
@pytest.mark.parametrize("solver", ["euler", "midpoint", "rk4"])
def test_adjoint_rows_are_the_adjoint_at_each_horizon(task, solver, scheme, reg, hvp):
    p = _problem(task, solver, reg, hvp)
    states, q = _ends(p)
    rows = adjoint_rows(p, states, ENDS, q, scheme)
    for j, k in enumerate(ENDS):
        alone = _alone(task, k, solver, reg, hvp, "adjoint", scheme=scheme)
        assert torch.allclose(rows[j], alone, rtol=1e-11, atol=1e-13), (k, (rows[j] - alone).abs().max())


@pytest.mark.parametrize("reg", [0.0, 0.7])
@pytest.mark.parametrize("solver", ["euler", "rk4"])
def test_backsolve_rows_are_backsolve_at_each_horizon(task, solver, reg):
    p = _problem(task, solver, reg, "autograd")
    states, q = _ends(p)
    rows = backsolve_rows(p, ENDS, states[ENDS], q)
    for j, k in enumerate(ENDS):
        alone = _alone(task, k, solver, reg, "autograd", "backsolve", reconstruction_tol=1.0)  # euler drifts
        assert torch.allclose(rows[j], alone, rtol=1e-10, atol=1e-12), k


def test_sweep_rows_joins_each_row_at_its_step_and_returns_them_in_order():
    # step_back multiplies by 2 a step: row j, joining at ends[j], comes back as first[j] * 2**ends[j]
    ends = [3, 1, 4, 2]
    first = (torch.arange(1.0, 5.0),)
    (out,) = sweep_rows(ends, first, lambda hi, lo, rows: (rows[0] * 2.0 ** (hi - lo),))
    assert out.tolist() == [1 * 8, 2 * 2, 3 * 16, 4 * 4]


def test_adjoint_rows_refuse_horizons_outside_the_problem(task):
    p = _problem(task, "rk4", 0.0, "autograd")
    states, q = _ends(p)
    for bad in ([0, 2, 3, 4, 5], [8, 2, 3, 4, 5], [2, 2, 3, 4, 5]):
        with pytest.raises(ValueError, match="ends must be distinct steps"):
            adjoint_rows(p, states, bad, q, "continuous")
