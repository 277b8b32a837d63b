"""The peers beside the kit: each row's gradient against the exact one, and bench --peers's table."""

import warnings

import pytest
import torch

from amaml_lab import bench
from amaml_lab.bench import peers, suites, worker
from amaml_lab.cli import add_bench_arguments
from amaml_lab.functional import flat_grad, relative_error


@pytest.fixture(scope="module")
def task():
    return peers.peer_task(10, 4, 0)


@pytest.mark.parametrize("name", list(peers.ROWS))
def test_each_row_differentiates_its_loop(task, name):
    if not peers.available(name):
        pytest.skip(f"{peers.ROWS[name][0]} is not installed (pip install -e '.[peers]')")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = peers.gradient_fn(name, task, 6, 0.01)()
    ref = peers.exact(name, task, 6, 0.01)
    err = relative_error(g, ref)
    loop = peers.ROWS[name][1]
    if name.startswith("kit adjoint") or "odeint_adjoint" in name:
        assert 0 < err < 1e-6  # the continuous adjoint: the rk4 scheme's small error, not the discrete gradient
    elif loop == "imaml":
        assert 1e-8 < err < 1  # five CG steps: not converged on this system
    else:
        assert err < 1e-12  # unrolled: the same steps, the same gradient


def test_the_two_implicit_rows_agree(task):
    if not peers.available("TorchOpt implicit (custom_root, CG 5)"):
        pytest.skip("torchopt is not installed")
    a = peers.gradient_fn("kit imaml (CG 5)", task, 6, 0.01)()
    b = peers.gradient_fn("TorchOpt implicit (custom_root, CG 5)", task, 6, 0.01)()
    assert relative_error(b, a) < 1e-10


def test_back_solving_breaks_where_the_stored_adjoint_does_not():
    task = peers.peer_task(100, 32, 0)  # the bench's task: back-solving is fine at T = 1, broken by T = 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = peers.gradient_fn("torchdiffeq odeint_adjoint (rk4)", task, 300, 0.01)()
    ref = peers.exact("kit maml (rk4)", task, 300, 0.01)
    for row in ("kit adjoint (rk4, 32 states)", "kit adjoint (rk4, 32 states, grid)"):
        checkpointed = peers.gradient_fn(row, task, 300, 0.01)()
        assert relative_error(checkpointed, ref) < 1e-5 < 1e3 < relative_error(back, ref)


def test_bench_peers_prints_every_row_and_skips_missing_ones(monkeypatch, capsys):
    missing = "higher (unrolled SGD)"
    real = peers.available
    monkeypatch.setattr(peers, "available", lambda name: name != missing and real(name))
    monkeypatch.setattr(suites, "run_worker", lambda cfg: worker.measure_peer(cfg))  # in process: quick
    out = bench.report(bench_args(["--peers", "--steps", "3", "--shots", "5", "--hidden", "4", "--repeat", "1"]))
    lines = [line for line in out.splitlines() if line.startswith("| 3 |")]
    assert "λmax of the support Hessian at θ and at u(T): 3 steps:" in out
    assert len(lines) == len(peers.ROWS)
    assert any(missing in line and "skipped: higher is not installed" in line for line in lines)
    for line in lines:
        if "skipped" not in line:
            cells = [c.strip() for c in line.split("|")]
            assert float(cells[3]) > 0 and float(cells[5]) < 1.5, line  # iMAML's 5 CG steps: order one here
            rk4 = peers.ROWS[cells[2]][1] == "rk4"
            assert (cells[7] != "") == rk4, line  # the flow's column: the rk4 rows only
            if rk4 and "odeint_adjoint" not in line:
                assert float(cells[7]) < 1e-2, line


def bench_args(argv):
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--worker")
    add_bench_arguments(parser)
    return parser.parse_args(argv)


def test_unknown_row_is_named(task):
    with pytest.raises(ValueError, match="row 'nope' is not known"):
        peers.gradient_fn("nope", task, 2, 0.01)
    assert torch.isfinite(peers.exact("kit imaml (CG 5)", task, 2, 0.01)).all()


def test_flow_reference_is_the_flows_meta_gradient(task):
    """The "vs the flow" column's reference against back-propagation through rk4 on a 16 times finer grid, and the
    column itself: every rk4 row has one, the others none."""
    from amaml_lab import meta_gradient

    steps, h = 6, 0.05
    fine = flat_grad(
        meta_gradient(
            task["support_loss"], task["query_loss"], task["theta"], method="maml", steps=16 * steps, step_size=h / 16
        ).grad
    )
    ref = peers.flow_reference(task, steps, h)
    coarse = peers.gradient_fn("kit maml (rk4)", task, steps, h)()
    assert relative_error(ref, fine) < relative_error(coarse, fine) / 100  # 4^4 = 256 in theory


def test_curvature_is_the_hessians_largest_eigenvalue():
    lam = torch.tensor([0.5, 2.0, 7.0], dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    A = q @ torch.diag(lam) @ q.T
    task = {"flat_support": lambda u: 0.5 * u @ A @ u, "theta_flat": torch.ones(3, dtype=torch.float64)}
    assert peers.curvature(task, 5, 0.1) == pytest.approx((7.0, 7.0), rel=1e-12)
