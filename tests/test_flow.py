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


def test_solve_in_chunks_equals_one_call(quad):
    """Handing torchdiffeq the grid in chunks takes the same steps: identical states."""
    import torchdiffeq

    steps = 700  # more than one chunk
    grid = time_grid(steps, 0.002)

    def field(t, u):
        return -quad.A @ (u - quad.c)

    ours = solve(field, quad.theta, grid, [0, 300, steps], "midpoint")
    ref = torchdiffeq.odeint(field, quad.theta, grid, method="midpoint")
    assert torch.equal(ours[1], ref[300]) and torch.equal(ours[2], ref[-1])
    back = solve(field, ref[-1], grid, [steps, 0], "euler")
    assert back.shape == (2, quad.n)
