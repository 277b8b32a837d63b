"""Synthetic regression task families of the Adjoint MAML and MAML papers, seeded and reproducible.

Each family draws a task's parameters and maps inputs x in its box to targets.
:func:`make_split` builds the paper's protocol: per task a support pool and a
query pool of uniform points and a test set (a 31 x 31 grid in 2-D, 1000
points in 1-D), inputs and targets standardised with statistics of the
meta-train pools.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..checks import check_choice


@dataclass(frozen=True)
class Family:
    name: str
    dim: int
    low: float
    high: float
    draw: object  # (generator, bug_compatible) -> parameter tensor
    fn: object  # (params, x) -> y of shape (n, 1)
    doc: str = ""


def _uniform(gen, low, high, *shape):
    return low + (high - low) * torch.rand(*shape, generator=gen, dtype=torch.float64)


def _alpine_draw(gen, bug_compatible=False):
    k = _uniform(gen, -5.0, 5.0, 2)
    if bug_compatible:  # the reference code used the first phase for both dimensions
        k = k[:1].expand(2).clone()
    return k * math.pi / 12


def _alpine(params, x):
    return (x * torch.sin(x + math.pi + params) + x / 10).abs().sum(1, keepdim=True)


def _cos_draw(gen, bug_compatible=False):
    return torch.stack([_uniform(gen, 0.1, 1.0, ()), _uniform(gen, 0.5, 2.0, ()), _uniform(gen, 3.0, 6.0, ())])


def _cos_mixture(params, x):
    c, p, f = params
    return -c * torch.cos(f * math.pi * x + p).sum(1, keepdim=True) - (x**2).sum(1, keepdim=True)


def _sine_draw(gen, bug_compatible=False):
    return torch.stack([_uniform(gen, 0.1, 5.0, ()), _uniform(gen, 0.0, math.pi, ())])


def _sinusoid(params, x):
    amplitude, phase = params
    return amplitude * torch.sin(x[:, :1] - phase)


FAMILIES = {
    f.name: f
    for f in (
        Family(
            "Alpine2D",
            2,
            -10.0,
            10.0,
            _alpine_draw,
            _alpine,
            "y = sum_i |x_i sin(x_i + pi + s_i) + x_i / 10|, s = k pi / 12, k in [-5, 5]^2",
        ),
        Family(
            "CosMixture",
            1,
            -1.0,
            1.0,
            _cos_draw,
            _cos_mixture,
            "y = -c sum_i cos(f pi x_i + p) - sum_i x_i^2, c in [0.1, 1], p in [0.5, 2], f in [3, 6]",
        ),
        Family("CosMixture2D", 2, -1.0, 1.0, _cos_draw, _cos_mixture, "CosMixture in two dimensions"),
        Family(
            "Sinusoid", 1, -5.0, 5.0, _sine_draw, _sinusoid, "y = A sin(x - phase), A in [0.1, 5], phase in [0, pi]"
        ),
    )
}


def family(name: str) -> Family:
    """The task family ``name``: its input dimension and box, its parameters' draw and its target function.

    Args:
        name: one of :data:`FAMILIES`: ``Alpine2D``, ``CosMixture``, ``CosMixture2D``, ``Sinusoid``.

    Returns:
        The :class:`Family`.

    Raises:
        ValueError: ``name`` is not a family (the message calls it ``domain``).
    """
    check_choice("domain", name, FAMILIES)
    return FAMILIES[name]


@dataclass
class Split:
    """Pools of one split, standardised: x (tasks, pool, dim), y (tasks, pool, 1) for support and query; test set."""

    family: str
    params: torch.Tensor
    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    stats: dict = field(default_factory=dict)

    @property
    def tasks(self) -> int:
        return self.support_x.shape[0]


def _test_inputs(fam: Family, points_1d: int = 1000, grid: int = 31) -> torch.Tensor:
    if fam.dim == 1:
        return torch.linspace(fam.low, fam.high, points_1d, dtype=torch.float64)[:, None]
    axis = torch.linspace(fam.low, fam.high, grid, dtype=torch.float64)
    gx, gy = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)


def make_split(
    name: str,
    tasks: int = 100,
    pool: int = 1000,
    task_seed: int = 100,
    design_seed: int = 200,
    bug_compatible: bool = False,
    standardise_with: dict | None = None,
) -> Split:
    """``tasks`` functions of family ``name`` (parameters from ``task_seed``), pools from ``design_seed``.

    Targets and inputs are standardised with ``standardise_with`` (the
    meta-train split's ``stats``) or, when None, with this split's own pools.

    Args:
        name: the family, one of :data:`FAMILIES`: ``Alpine2D``, ``CosMixture``, ``CosMixture2D``, ``Sinusoid``.
        tasks: the number of functions, an integer >= 1.
        pool: the size of each task's support pool and of its query pool, an integer >= 1.
        task_seed: seeds the draw of the functions' parameters.
        design_seed: seeds the pools' inputs, uniform on the family's box.
        bug_compatible: True draws Alpine2D's phases as the reference code did (the first phase for both
            dimensions); the other families ignore it.
        standardise_with: a dict with ``x_mean``, ``x_std`` (per input dimension), ``y_mean`` and ``y_std``, or None.

    Returns:
        A :class:`Split` (float64, with float64 or plain-number statistics): ``params`` (tasks, P), P = 2 for
        Alpine2D and Sinusoid, 3 for the CosMixtures; ``support_x`` and ``query_x`` (tasks, pool, dim),
        ``support_y`` and ``query_y`` (tasks, pool, 1); ``test_x`` (tasks, n, dim), the same points for every task
        (an expanded view), and ``test_y`` (tasks, n, 1), n = 1000 in 1-D or 31 x 31 = 961 in 2-D; ``stats``, the
        statistics it standardised with.

    Raises:
        ValueError: an unknown ``name``, or ``tasks`` or ``pool`` not an integer >= 1.
    """
    fam = family(name)
    if not isinstance(tasks, int) or tasks < 1 or not isinstance(pool, int) or pool < 1:
        raise ValueError(f"tasks and pool must be integers >= 1; got tasks={tasks!r}, pool={pool!r}")
    task_gen = torch.Generator().manual_seed(task_seed)
    params = torch.stack([fam.draw(task_gen, bug_compatible) for _ in range(tasks)])
    gen = torch.Generator().manual_seed(design_seed)
    sx = _uniform(gen, fam.low, fam.high, tasks, pool, fam.dim)
    qx = _uniform(gen, fam.low, fam.high, tasks, pool, fam.dim)
    tx = _test_inputs(fam)
    sy = torch.stack([fam.fn(p, x) for p, x in zip(params, sx)])
    qy = torch.stack([fam.fn(p, x) for p, x in zip(params, qx)])
    ty = torch.stack([fam.fn(p, tx) for p in params])
    stats = standardise_with or {
        "x_mean": sx.mean((0, 1)),
        "x_std": sx.std((0, 1)),
        "y_mean": sy.mean(),
        "y_std": sy.std(),
    }

    def nx(x):
        return (x - stats["x_mean"]) / stats["x_std"]

    def ny(y):
        return (y - stats["y_mean"]) / stats["y_std"]

    test_x = nx(tx).expand(tasks, *tx.shape)
    return Split(name, params, nx(sx), ny(sy), nx(qx), ny(qy), test_x, ny(ty), stats)


def sample_episode(split: Split, task: int, shots: int, query: int, generator: torch.Generator):
    """A support batch of ``shots`` points and a query batch of ``query`` points from task ``task``'s pools.

    Args:
        split: the :class:`Split` to draw from.
        task: the task's index, 0 <= task < ``split.tasks``.
        shots: the number of support points, drawn without replacement from the task's support pool.
        query: the number of query points, drawn without replacement from the task's query pool.
        generator: the torch.Generator that draws both.

    Returns:
        ``((support_x, support_y), (query_x, query_y))``: x of shape (n, dim) and y of shape (n, 1), n = ``shots``
        or ``query``.

    Raises:
        ValueError: ``shots`` or ``query`` outside 1..pool (the pool size).
    """
    pool = split.support_x.shape[1]
    if not 1 <= shots <= pool or not 1 <= query <= pool:
        raise ValueError(f"shots and query must be in 1..{pool} (the pool size); got shots={shots}, query={query}")
    s = torch.randperm(pool, generator=generator)[:shots]
    q = torch.randperm(pool, generator=generator)[:query]
    return (split.support_x[task, s], split.support_y[task, s]), (split.query_x[task, q], split.query_y[task, q])


def family_task(name: str, shots: int, query: int, seed: int = 0):
    """One unstandardised task of family ``name`` drawn with ``seed``: ``(support, query, params)``.

    ``support`` and ``query`` are ``(x, y)`` pairs (y of shape (n, 1)) of points uniform on the family's
    box; ``family(name).fn(params, x)`` evaluates the task anywhere else.

    Args:
        name: one of :data:`FAMILIES`: ``Alpine2D``, ``CosMixture``, ``CosMixture2D``, ``Sinusoid``.
        shots: the number of support points.
        query: the number of query points.
        seed: seeds one torch.Generator that draws the parameters, then the support points, then the query points.

    Returns:
        ``(support, query, params)``, float64: x of shape (n, dim); ``params`` the task's parameter vector, of 2
        entries (Alpine2D, Sinusoid) or 3 (the CosMixtures).

    Raises:
        ValueError: an unknown ``name``.
    """
    fam = family(name)
    gen = torch.Generator().manual_seed(seed)
    params = fam.draw(gen)

    def sample(n):
        x = _uniform(gen, fam.low, fam.high, n, fam.dim)
        return x, fam.fn(params, x).reshape(n, 1)

    return sample(shots), sample(query), params


def cos_mixture_task(shots: int, query: int, dim: int = 2, seed: int = 0, dtype=torch.float64):
    """One unstandardised CosMixture task in ``dim`` dimensions (the benchmark's and the tour's task).

    c, p, f come from one draw of ``seed``; returns ``(support, query)``, each an
    ``(x, y)`` pair with y of shape (n, 1).

    Args:
        shots: the number of support points.
        query: the number of query points.
        dim: the input dimension (2 for the benchmark's CosMixture2D task).
        seed: seeds the draw of c in [0.1, 1], p in [0.5, 2] and f in [3, 6], then of the points.
        dtype: the returned tensors' dtype (the targets are computed in float64, then cast).

    Returns:
        ``(support, query)``: ``(x, y)`` pairs, x of shape (n, dim) uniform on [-1, 1]^dim, y of shape (n, 1).
    """
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(3, generator=gen, dtype=torch.float64)
    params = torch.stack([0.1 + 0.9 * u[0], 0.5 + 1.5 * u[1], 3.0 + 3.0 * u[2]])

    def sample(n):
        x = torch.rand(n, dim, generator=gen, dtype=torch.float64) * 2 - 1
        return x.to(dtype), _cos_mixture(params, x).to(dtype)

    return sample(shots), sample(query)
