"""The notebooks' computations: closed forms, the schemes' orders, the backward blow-up, the baselines sweep."""

import math

import pytest
import torch

from amaml_lab import compare_methods, meta_gradient
from amaml_lab.tasks.examples import build_task
from amaml_lab.teach import backward as explore_backward
from amaml_lab.teach import baselines as explore_baselines
from amaml_lab.teach import surfaces as explore


def rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("reg", [0.0, 0.7])
def test_quadratic_closed_form_matches_back_propagation_through_fine_steps(reg):
    task = explore.QuadraticTask(n=5, eig=(0.3, 4.0), seed=2)
    u_T, exact = task.exact(1.5, reg)
    r = meta_gradient(
        task.support_loss,
        task.query_loss,
        task.theta,
        method="maml",
        steps=600,
        step_size=1.5 / 600,
        solver="rk4",
        reg=reg,
    )
    assert rel(r.adapted, u_T) < 1e-11
    assert rel(r.grad, exact) < 1e-10


def test_quadratic_closed_form_matches_finite_differences():
    task = explore.QuadraticTask(n=4, seed=1)
    _, exact = task.exact(2.0, 0.5)
    eps = 1e-6
    fd = torch.zeros(4, dtype=torch.float64)
    theta = task.theta.clone()
    for i in range(4):
        for sign in (1, -1):
            task.theta = theta.clone()
            task.theta[i] += sign * eps
            u_T, _ = task.exact(2.0, 0.5)
            fd[i] += sign * task.query_loss(u_T) / (2 * eps)
    task.theta = theta
    assert rel(fd, exact) < 1e-7


def test_scheme_orders_are_one_two_four():
    rows = explore.scheme_order(explore.QuadraticTask(), horizon=2.0, steps_list=(10, 20, 40))
    slopes = {r["solver"]: r["slope"] for r in rows if r["steps"] == 40}
    assert slopes["euler"] == pytest.approx(1, abs=0.15)
    assert slopes["midpoint"] == pytest.approx(2, abs=0.2)
    assert slopes["rk4"] == pytest.approx(4, abs=0.3)


def test_agreement_discrete_to_rounding_continuous_converging():
    support_loss, query_loss, theta = build_task(10, "float64", "cpu", 6, 0)
    rows = explore.agreement(support_loss, query_loss, theta, horizon=0.4, steps_list=(2, 4, 8), solver="midpoint")
    assert all(r["discrete"] < 1e-12 for r in rows)
    cont = [r["continuous"] for r in rows]
    assert cont[0] > cont[1] > cont[2] > 0
    assert math.log2(cont[1] / cont[2]) == pytest.approx(2, abs=0.5)


def test_running_the_flow_backward_blows_up_with_lambda_T():
    rows = explore_backward.reconstruction_sweep([1.0, 10.0, 40.0], horizon=2.0, steps=200)
    errors = [r["error"] for r in rows]
    assert errors[0] < 1e-10 and errors[2] > 1e6 and errors[0] < errors[1] < errors[2]
    assert [r["lam_T"] for r in rows] == [2.0, 20.0, 80.0]
    one = explore_backward.reconstruction(explore.QuadraticTask(eig=(0.2, 1.0)), 2.0, 100)
    assert one["forward"].shape == one["backward"].shape == (101, 6)
    torch.testing.assert_close(one["forward"][-1], one["backward"][-1], rtol=0, atol=0)


def test_backsolve_sweep_stored_adjoint_stays_exact():
    support_loss, query_loss, theta = build_task(10, "float64", "cpu", 6, 0)
    rows = explore_backward.backsolve_sweep(support_loss, query_loss, theta, [10, 40], step_size=0.01, checkpoints=4)
    assert [r["horizon"] for r in rows] == [0.1, 0.4]
    assert all(r["adjoint"] < 1e-7 and r["checkpointed"] < 1e-7 for r in rows)
    assert all(r["checkpointed"] == pytest.approx(r["adjoint"], rel=1e-6) for r in rows)


def test_inner_paths_gradient_descent_is_euler_and_flow_reaches_the_minimum():
    paths = explore.inner_paths("quadratic", horizon=8.0, step_size=0.1, solver="midpoint")
    assert set(paths) == {"gradient descent", "midpoint steps", "gradient flow"}
    a = torch.tensor([[4.0, 3.5], [3.5, 4.0]], dtype=torch.float64)
    u = torch.tensor(explore.SURFACES["quadratic"].start, dtype=torch.float64)
    for _ in range(3):
        u = u - 0.1 * a @ u
    torch.testing.assert_close(paths["gradient descent"][3], u, rtol=1e-12, atol=1e-14)
    assert float(paths["gradient flow"][-1].norm()) < 0.1  # the bowl's minimum is 0
    unstable = explore.inner_paths("quadratic", horizon=30.0, step_size=0.3, solver="euler")  # |1 - 0.3 * 7.5| > 1
    assert float(unstable["gradient descent"].abs().max()) == 1e3  # stopped and clipped where it left the box
    assert len(unstable["gradient descent"]) < 101


def test_baseline_sweep_rows():
    support_loss, query_loss, theta = build_task(10, "float64", "cpu", 6, 0)
    rows = compare_methods(
        support_loss,
        query_loss,
        theta,
        [4, 8],
        step_size=0.01,
        methods=explore_baselines.baseline_methods(lam=3.0, cg_steps=2, truncate=6),
    )
    labels = {r["label"] for r in rows}
    assert labels == {"adjoint", "fomaml", "reptile", "imaml", "truncated (last 6)"}
    assert all(r["rel_error"] < 1e-6 for r in rows if r["label"] == "adjoint")
    trunc = {r["steps"]: r["rel_error"] for r in rows if r["method"] == "truncated"}
    assert trunc[4] < 1e-12 < trunc[8]  # the truncation covers all 4 steps, not all 8


def test_bad_surface_and_solver():
    with pytest.raises(ValueError, match="surface='bowl' is not known; allowed values: quadratic, valley, wells"):
        explore.inner_paths("bowl")
    with pytest.raises(ValueError, match="solver='dopri5' is not known"):
        explore.inner_paths("quadratic", solver="dopri5")


def test_checkpoint_costs_counts_what_each_schedule_does():
    """Stored rk4: 4 gradients a forward step, then per step 3 (continuous: the state's and two interpolated ones)
    or 1 (grid); checkpointed: at most c states, each step advanced more than once, the same gradient."""
    support_loss, query_loss, theta = build_task(10, "float64", "cpu", 6, 0)
    n = 40
    rows = explore_backward.checkpoint_costs(support_loss, query_loss, theta, [n], checkpoints=5)
    by = {r["scheme"]: r for r in rows}
    assert by["continuous"]["stored"] == {"states": n + 1, "evals": 7 * n + 1, "repetitions": 1}
    assert by["grid"]["stored"] == {"states": n + 1, "evals": 5 * n + 1, "repetitions": 1}
    for r in rows:
        assert r["c"]["states"] <= 5 and r["c"]["repetitions"] >= 3 and r["c"]["evals"] > r["stored"]["evals"]
        assert r["sqrt"]["repetitions"] == 2 and r["sqrt"]["states"] < n + 1
        assert r["difference"] < 1e-12
