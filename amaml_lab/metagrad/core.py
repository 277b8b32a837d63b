"""What every meta-gradient method shares: the problem, the result, option checks."""

from __future__ import annotations

import numbers
import time
from dataclasses import dataclass, field

import torch

from ..checks import check_choice, check_number
from ..compiled import CompiledDerivatives
from ..flow import SOLVERS, GradientFlow, solve, time_grid
from ..functional import HVP_BACKENDS, Derivatives, ParamSpec, check_loss, flat_loss


@dataclass
class MetaGradient:
    """The result of :func:`amaml_lab.meta_gradient`.

    ``grad`` has the structure of theta; ``adapted`` is u(T) in that structure;
    ``query_loss`` is L_Q(u(T)); ``stats`` counts support-gradient and HVP
    evaluations, stored states and wall time; ``horizon_grad`` is dL_Q/dT when
    asked for (``learn_horizon=True``).
    """

    grad: object
    adapted: object
    query_loss: float
    stats: dict = field(default_factory=dict)
    horizon_grad: float | None = None


@dataclass
class Problem:
    """A task's losses on the flat parameter vector, and the inner loop's numbers."""

    spec: ParamSpec
    theta: torch.Tensor  # flat, detached
    support: Derivatives
    query: Derivatives
    steps: int
    step_size: float
    solver: str
    reg: float
    rtol: float
    atol: float
    grid: torch.Tensor
    mask: torch.Tensor | None = None  # 1 where the inner loop adapts a parameter, 0 where it is frozen

    def flow(self, graph: bool = False, theta: torch.Tensor | None = None) -> GradientFlow:
        return GradientFlow(self.support, self.theta if theta is None else theta, self.reg, graph=graph, mask=self.mask)

    def masked(self, v: torch.Tensor) -> torch.Tensor:
        return v * self.mask if self.mask is not None else v

    def solve(self, field, u0, save, grid=None):
        return solve(field, u0, self.grid if grid is None else grid, save, self.solver, self.rtol, self.atol)


def check_checkpoints(checkpoints, auto: bool = False):
    """None (keep every state), "sqrt", an integer number of stored states >= 3, or (``auto``) "auto"."""
    if checkpoints is None or checkpoints == "sqrt" or (auto and checkpoints == "auto"):
        return checkpoints
    if isinstance(checkpoints, bool) or not isinstance(checkpoints, numbers.Integral) or checkpoints < 3:
        extra = " 'auto' (every state if they fit memory_budget_mb, else as many as fit)," if auto else ""
        raise ValueError(
            f"checkpoints={checkpoints!r} is not allowed; allowed values: None (keep every state),{extra}"
            " 'sqrt', or an integer number of stored states >= 3"
        )
    return int(checkpoints)


def adapt_mask(adapt, spec: ParamSpec, theta_flat: torch.Tensor):
    """The 0/1 vector of adapted parameters: ``adapt`` is None (all), or the keys of theta the inner loop adapts."""
    if adapt is None:
        return None
    if spec.keys is None:
        raise ValueError("adapt names keys of a dict theta; with a tensor theta every entry adapts (leave adapt=None)")
    keys = [adapt] if isinstance(adapt, str) else list(adapt)
    unknown = [k for k in keys if k not in spec.keys]
    if unknown or not keys:
        raise ValueError(
            f"adapt={adapt!r} names no key or unknown keys {unknown}; allowed values: keys of theta {list(spec.keys)}"
        )
    parts = [
        torch.full((n,), float(k in keys), dtype=theta_flat.dtype, device=theta_flat.device)
        for k, n in zip(spec.keys, spec.sizes)
    ]
    return torch.cat(parts)


def build_problem(
    support_loss,
    query_loss,
    theta,
    *,
    steps,
    step_size,
    solver,
    reg,
    rtol,
    atol,
    hvp,
    adapt=None,
    compile: bool = False,
) -> Problem:
    steps = check_number("steps", steps, integer=True)
    if steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}")
    step_size = check_number("step_size", step_size, positive=True)
    reg = check_number("reg", reg, nonnegative=True)
    rtol = check_number("rtol", rtol, positive=True)
    atol = check_number("atol", atol, positive=True)
    check_choice("solver", solver, SOLVERS)
    check_choice("hvp", hvp, HVP_BACKENDS)
    if not isinstance(compile, bool):
        raise ValueError(f"compile must be True or False; got {compile!r}")
    spec = ParamSpec.of(theta)
    th = spec.flatten(theta).detach().clone()
    check_loss(support_loss, th, spec, "support_loss")
    check_loss(query_loss, th, spec, "query_loss")

    def derivatives(loss):  # compile=True: the compiled graphs (torch.func underneath, whatever ``hvp`` says)
        return CompiledDerivatives(loss) if compile else Derivatives(loss, hvp)

    return Problem(
        spec=spec,
        theta=th,
        support=derivatives(flat_loss(support_loss, spec, "support_loss")),
        query=derivatives(flat_loss(query_loss, spec, "query_loss")),
        steps=steps,
        step_size=step_size,
        solver=solver,
        reg=reg,
        rtol=rtol,
        atol=atol,
        grid=time_grid(steps, step_size, th.dtype, th.device),
        mask=adapt_mask(adapt, spec, th),
    )


def query_value_and_grad(p: Problem, u: torch.Tensor):
    with torch.enable_grad():
        x = u.detach().requires_grad_(True)
        value = p.query.loss(x)
        (g,) = torch.autograd.grad(value, x)
    p.query.grad_evals += 1
    return float(value.detach()), g


def sweep_rows(ends, first: tuple, step_back) -> tuple:
    """A linear backward sweep carrying several horizons at once, a row each.

    Row j of the tensors in ``first`` starts at step ``ends[j]``; ``step_back(hi, lo, rows)`` carries the rows
    that have started (a tuple of (rows, ...) tensors) from step hi down to lo; a row joins when the sweep
    reaches its step.  Returns the rows at step 0, in the order of ``ends``.
    """
    order = sorted(range(len(ends)), key=lambda j: -ends[j])
    stops = sorted(set(ends) | {0}, reverse=True)
    live, joined = None, []
    for hi, lo in zip(stops[:-1], stops[1:]):
        joining = [j for j in order if ends[j] == hi]
        joined += joining
        new = tuple(x[joining] for x in first)
        live = new if live is None else tuple(torch.cat([a, b]) for a, b in zip(live, new))
        live = step_back(hi, lo, live)
    back = torch.argsort(torch.tensor(joined))
    return tuple(x[back] for x in live)


def finish(p: Problem, grad_flat, adapted_flat, qloss, stats: dict, started: float) -> MetaGradient:
    stats = {
        "grad_evals": p.support.grad_evals,
        "hvp_evals": p.support.hvp_evals,
        "query_grad_evals": p.query.grad_evals,
        **stats,
        "wall_time": time.perf_counter() - started,
    }
    return MetaGradient(
        grad=p.spec.unflatten(grad_flat.detach()),
        adapted=p.spec.unflatten(adapted_flat.detach()),
        query_loss=qloss,
        stats=stats,
    )


__all__ = ["MetaGradient", "Problem", "build_problem", "finish", "query_value_and_grad", "sweep_rows"]
