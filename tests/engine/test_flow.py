"""The inner flow itself: trajectories on the grid against the closed-form flow."""

import pytest
import torch

from amaml_lab import trajectory
from amaml_lab.flow import solve, time_grid


@pytest.mark.parametrize("reg", [0.0, 1.0])
def test_trajectory_matches_matrix_exponential(quad, reg):
    steps, h = 100, 0.01
    grid, states = trajectory(quad.support_loss, quad.theta, steps=steps, step_size=h, solver="rk4", reg=reg)
    assert grid.shape == (steps + 1,) and states.shape == (steps + 1, quad.n)
    M = quad.A + reg * torch.eye(quad.n, dtype=torch.float64)
    u_star = torch.linalg.solve(M, quad.A @ quad.c + reg * quad.theta)
    for k in (0, 7, steps):
        exact = u_star + torch.linalg.matrix_exp(-M * float(grid[k])) @ (quad.theta - u_star)
        assert torch.allclose(states[k], exact, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("solver", ["euler", "midpoint", "rk4"])
def test_fixed_grid_steps_equal_torchdiffeq_bit_for_bit(quad, solver):
    """solve's own loop takes torchdiffeq's steps: identical states forward, backward and for tuple states."""
    import torchdiffeq

    steps = 300
    grid = time_grid(steps, 0.004)

    def field(t, u):  # depends on t too, so the stage times must be torchdiffeq's
        return -quad.A @ (u - quad.c) * (1 + t)

    ours = solve(field, quad.theta, grid, [0, 120, steps], solver)
    ref = torchdiffeq.odeint(field, quad.theta, grid, method=solver)
    assert torch.equal(ours[1], ref[120]) and torch.equal(ours[2], ref[-1])
    back = solve(field, ref[-1], grid, [steps, 40, 0], solver)
    ref_back = torchdiffeq.odeint(field, ref[-1], grid.flip(0), method=solver)
    assert torch.equal(back[1], ref_back[steps - 40]) and torch.equal(back[2], ref_back[-1])

    def pair(t, y):
        return field(t, y[0]), -y[1] * (1 + t) + y[0].sum()

    y0 = (quad.theta, torch.ones(2, 3, dtype=torch.float64))
    ours = solve(pair, y0, grid, [0, steps], solver)
    ref = torchdiffeq.odeint(pair, y0, grid, method=solver)
    assert ours[1].shape == (2, 2, 3)
    assert torch.equal(ours[0][1], ref[0][-1]) and torch.equal(ours[1][1], ref[1][-1])
