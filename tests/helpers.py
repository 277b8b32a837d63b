"""Shared test helpers: quadratic tasks with closed forms, a small MLP task with dict params, relative errors,
the command line in-process and the support flow written out by hand.  Tests import them from here
(``tests`` is on pytest's pythonpath); conftest.py only turns them into fixtures."""

from pathlib import Path

import torch

from amaml_lab.functional import module_params, task_losses
from amaml_lab.models import mlp

DT = torch.float64


class Quadratic:
    """L_S(u) = 1/2 (u-c)^T A (u-c), L_Q(u) = 1/2 (u-d)^T B (u-d): the flow and its meta-gradient in closed form."""

    def __init__(self, n=6, seed=0, eig=(0.2, 3.0)):
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=DT))
        lam = torch.linspace(eig[0], eig[1], n, dtype=DT)
        self.A = q @ torch.diag(lam) @ q.T
        b = torch.randn(n, n, generator=g, dtype=DT)
        self.B = b @ b.T / n + 0.1 * torch.eye(n, dtype=DT)
        self.c = torch.randn(n, generator=g, dtype=DT)
        self.d = torch.randn(n, generator=g, dtype=DT)
        self.theta = torch.randn(n, generator=g, dtype=DT)
        self.n = n

    def support_loss(self, u):
        r = u - self.c
        return 0.5 * r @ self.A @ r

    def query_loss(self, u):
        r = u - self.d
        return 0.5 * r @ self.B @ r

    def _grad_from_propagator(self, S, reg):
        """u(T) = u* + S (theta - u*), u* = M^-1 (A c + reg theta); returns (meta-gradient, u(T))."""
        eye = torch.eye(self.n, dtype=DT)
        M = self.A + reg * eye
        u_star = torch.linalg.solve(M, self.A @ self.c + reg * self.theta)
        u_T = u_star + S @ (self.theta - u_star)
        J = S + (eye - S) @ torch.linalg.solve(M, reg * eye)
        return J.T @ self.B @ (u_T - self.d), u_T

    def exact_flow(self, T, reg=0.0):
        """The continuous flow: S = expm(-(A + reg I) T)."""
        M = self.A + reg * torch.eye(self.n, dtype=DT)
        return self._grad_from_propagator(torch.linalg.matrix_exp(-M * T), reg)

    def exact_steps(self, solver, steps, h, reg=0.0):
        """A fixed-grid solver: S = R(-hM)^steps with R the solver's stability polynomial."""
        M = self.A + reg * torch.eye(self.n, dtype=DT)
        Z = -h * M
        order = {"euler": 1, "midpoint": 2, "rk4": 4}[solver]
        R = torch.eye(self.n, dtype=DT)
        term = torch.eye(self.n, dtype=DT)
        for j in range(1, order + 1):
            term = term @ Z / j
            R = R + term
        return self._grad_from_propagator(torch.linalg.matrix_power(R, steps), reg)


def rel(a, b):
    if isinstance(a, dict):
        a = torch.cat([a[k].reshape(-1) for k in sorted(a)])
        b = torch.cat([b[k].reshape(-1) for k in sorted(b)])
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


class MLPTask:
    """A random nonlinear regression task on a 2-8-8-1 tanh MLP with dict params (float64)."""

    def __init__(self, seed=0, hidden=8, shots=12):
        g = torch.Generator().manual_seed(seed)
        self.model = mlp(2, (hidden, hidden), 1, dtype=DT, seed=seed)
        xs = torch.rand(shots, 2, generator=g, dtype=DT) * 2 - 1
        xq = torch.rand(shots, 2, generator=g, dtype=DT) * 2 - 1
        f = lambda x: torch.sin(3 * x[:, :1]) * torch.cos(2 * x[:, 1:]) + 0.3 * x[:, :1]
        self.support_loss, self.query_loss = task_losses(self.model, (xs, f(xs)), (xq, f(xq)))
        self.theta = module_params(self.model)


def flat(params):
    return torch.cat([params[k].reshape(-1) for k in params]) if isinstance(params, dict) else params.reshape(-1)


def run_cli(capsys, *args):
    """The command line in-process: (exit status, stdout, stderr)."""
    from amaml_lab.cli import main

    try:
        code = main([str(a) for a in args])
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def euler_by_hand(theta: dict, x, y, steps: int, h: float, reg: float):
    """The support flow by explicit Euler written out with autograd on one task: 1/2 MSE + reg/2 |u - theta|^2."""
    u = {k: v.clone() for k, v in theta.items()}
    for _ in range(steps):
        w = {k: v.detach().requires_grad_(True) for k, v in u.items()}
        hidden = torch.tanh(x @ w["0.weight"].T + w["0.bias"])
        hidden = torch.tanh(hidden @ w["2.weight"].T + w["2.bias"])
        loss = 0.5 * ((hidden @ w["4.weight"].T + w["4.bias"] - y) ** 2).mean()
        loss = loss + 0.5 * reg * sum(((w[k] - theta[k]) ** 2).sum() for k in w)
        grads = torch.autograd.grad(loss, list(w.values()))
        u = {k: v.detach() - h * g for (k, v), g in zip(w.items(), grads)}
    return u


def write_ratings(folder: Path, fmt: str, users=30, items=40, per_user=12, seed=0) -> Path:
    """Ratings in the real file formats: u.data (tabs), ratings.dat (::), jester_ratings.dat (spaces, floats)."""
    g = torch.Generator().manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for u in range(1, users + 1):
        for i in torch.randperm(items, generator=g)[:per_user].tolist():
            if fmt == "jester":
                lines.append(f"{u}\t\t{i + 1}\t\t{float(torch.rand((), generator=g)) * 20 - 10:.3f}\n")
            else:
                r = int(torch.randint(1, 6, (1,), generator=g))
                sep = "\t" if fmt == "ml100k" else "::"
                lines.append(sep.join([str(u), str(i + 1), str(r), f"88125{u:04d}"]) + "\n")
    name = {"ml100k": "u.data", "ml1m": "ratings.dat", "jester": "jester_ratings.dat"}[fmt]
    (folder / name).write_text("".join(lines))
    return folder


# a small run's options for the command line (tests of run, compare, reevaluate and the long runs' reading)
SMALL_RUN = [
    "--meta-batch",
    "2",
    "--hidden",
    "4",
    "--eval-tasks",
    "3",
    "--eval-steps",
    "20",
    "--checkpoint-every",
    "2",
    "--quiet",
]
