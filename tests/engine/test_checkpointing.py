"""The checkpointing schedule: the fewest forward steps for a number of held states, every state once and right."""

import math
from functools import cache

import pytest
import torch
from helpers import MLPTask

from amaml_lab import meta_gradient
from amaml_lab.metagrad.checkpointing import Reverse, forward_steps, split_point
from amaml_lab.metagrad.core import build_problem


@cache
def fewest_steps(length: int, slots: int) -> int:
    """By exhaustive search: the fewest forward steps giving ``length`` states in reverse from the first, holding
    ``slots`` stored states (the first among them) and one working state."""
    if length == 1:
        return 0
    if slots == 1:  # each state advanced afresh from the first
        return length * (length - 1) // 2
    return min(m + fewest_steps(length - m, slots - 1) + fewest_steps(m, slots) for m in range(1, length))


@pytest.mark.parametrize("slots", range(1, 7))
def test_closed_form_is_the_optimum(slots):
    for length in range(1, 70):
        assert forward_steps(length, slots) == fewest_steps(length, slots), (length, slots)


@pytest.mark.parametrize("slots", range(2, 7))
def test_split_attains_the_optimum(slots):
    for length in range(slots + 2, 70):
        m = split_point(length, slots)
        assert 1 <= m < length
        assert m + forward_steps(length - m, slots - 1) + forward_steps(m, slots) == forward_steps(length, slots)


def test_known_values():
    """Griewank's count for 1,000 steps: 31 stored states take 2,442 forward steps (each step at most 3 times)."""
    assert forward_steps(1001, 31) == 3 * 1001 - math.comb(34, 32) == 2442
    assert forward_steps(1001, 1000) == 1000  # everything stored: one forward solve


@pytest.mark.parametrize("budget", [2, 3, 4, 7, 12])
@pytest.mark.parametrize("steps", [1, 2, 9, 40])
def test_reverse_gives_every_state_once_in_order(budget, steps):
    """On an MLP (state-dependent flow): the states as stored by one solve, n down to 0, within the budget, and
    exactly as many forward steps as the closed form (counted by the gradient evaluations: rk4 takes 4 a step)."""
    t = MLPTask(hidden=4, shots=6)
    p = build_problem(
        t.support_loss,
        t.query_loss,
        t.theta,
        steps=steps,
        step_size=0.05,
        solver="rk4",
        reg=0.0,
        rtol=1e-7,
        atol=1e-9,
        hvp="autograd",
    )
    with torch.no_grad():
        stored = p.solve(p.flow(), p.theta, range(steps + 1))
    before = p.support.grad_evals
    reverse = Reverse(p, budget)
    seen = []
    with torch.no_grad():
        for i, rows in reverse.blocks():
            for j in range(len(rows) - 1, -1, -1):
                seen.append(i + j)
                assert torch.allclose(rows[j], stored[i + j], rtol=0, atol=1e-14)
    assert seen == list(range(steps, -1, -1))
    assert reverse.peak <= max(budget, 2)
    assert (p.support.grad_evals - before) == 4 * forward_steps(steps + 1, budget - 1)


@pytest.mark.parametrize("steps", [40, 41])
def test_grid_scheme_costs_one_gradient_and_two_hvps_a_step(steps):
    """rk4, scheme="grid": 4 gradients a forward step, then one linearisation a state and 2 HVPs a step."""
    t = MLPTask(hidden=4, shots=6)
    for checkpoints in (None, 6):
        r = meta_gradient(
            t.support_loss,
            t.query_loss,
            t.theta,
            method="adjoint",
            scheme="grid",
            steps=steps,
            step_size=0.05,
            checkpoints=checkpoints,
        )
        s = r.stats
        if steps % 2 == 0:
            assert s["grad_evals"] == 4 * s["forward_steps"] + steps + 1
            assert s["hvp_evals"] == 2 * steps
        else:  # the odd first step is the continuous scheme's: both ends again, two interpolated HVPs
            assert s["grad_evals"] == 4 * s["forward_steps"] + steps + 2 + 2
            assert s["hvp_evals"] == 2 * (steps - 1) + 4
        if checkpoints:
            assert s["stored_states"] <= checkpoints and s["repetitions"] >= 2


def test_many_slots_and_many_steps_need_no_recursion(quad):
    """2,000 states for 5,000 steps (as checkpoints="auto" picks on small models): a stack, not a recursion, so no
    depth limit; the same gradient as storing everything, within the budget, at revolve's count."""
    kw = dict(method="adjoint", scheme="grid", steps=5000, step_size=0.001, solver="euler")
    stored = meta_gradient(quad.support_loss, quad.query_loss, quad.theta, **kw)
    r = meta_gradient(quad.support_loss, quad.query_loss, quad.theta, checkpoints=2000, **kw)
    assert torch.equal(r.grad, stored.grad)
    assert r.stats["stored_states"] <= 2000 and r.stats["repetitions"] == 2
    assert r.stats["grad_evals"] == forward_steps(5001, 1999) + 5000


@pytest.mark.parametrize(
    "solver,stages,grid_states,off_grid",
    [
        ("euler", 1, lambda n: n, 0),  # the backward Euler stage sits on t_n ... t_1
        ("midpoint", 2, lambda n: n + 1, 1),  # t_n ... t_0, and each step's midpoint between them
        ("rk4", 4, lambda n: n + 1, 2),  # t_n ... t_0, and the 3/8 rule's two stages at t + h/3, t + 2h/3
    ],
)
@pytest.mark.parametrize("steps", [1, 2, 10, 57, 200])
def test_every_state_stored_costs_exactly_one_forward_solve(solver, stages, grid_states, off_grid, steps):
    """With every state stored the continuous adjoint takes one forward solve (stages gradients a step), one
    gradient per grid state its backward stages linearise, and one per stage between grid points; one HVP per
    backward stage.  A schedule that needlessly splits a piece that fits (it would still give the same gradient)
    costs more and fails here: at 200 rk4 steps 1,401 evaluations are right."""
    t = MLPTask()
    r = meta_gradient(
        t.support_loss, t.query_loss, t.theta, method="adjoint", steps=steps, step_size=0.01, solver=solver
    )
    assert r.stats["grad_evals"] == stages * steps + grid_states(steps) + off_grid * steps
    assert r.stats["hvp_evals"] == stages * steps
    assert r.stats["forward_steps"] == steps


@pytest.mark.parametrize("scheme", ["continuous", "discrete", "grid"])
@pytest.mark.parametrize("solver", ["euler", "rk4"])
@pytest.mark.parametrize("checkpoints", [3, 4, 7])
@pytest.mark.parametrize("steps", [20, 21])
def test_the_states_a_sweep_counts_itself_holding_stay_within_the_budget(quad, scheme, solver, checkpoints, steps):
    """stored_states counts the schedule's states and what the backward sweep holds of its own at each moment
    (the continuous scheme: the state above each block; the grid scheme: u_1 for an odd first step), not only what
    the sweep declared: for every scheme, budget and parity it stays within the budget, and the gradient is the one
    with every state stored."""
    kw = dict(method="adjoint", steps=steps, step_size=0.05, solver=solver, scheme=scheme)
    tight = meta_gradient(quad.support_loss, quad.query_loss, quad.theta, checkpoints=checkpoints, **kw)
    full = meta_gradient(quad.support_loss, quad.query_loss, quad.theta, **kw)
    assert tight.stats["stored_states"] <= checkpoints
    assert tight.stats["checkpoints"] == checkpoints
    torch.testing.assert_close(tight.grad, full.grad, rtol=1e-11, atol=1e-13)
