"""The dispatcher behind :func:`meta_gradient`: each method registered in :data:`METHODS` with its options,
their allowed values and the solvers it accepts; a method is a function
``method(problem, **options) -> (grad, u_T, query_loss, stats)``."""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass

import torch

from ..checks import check_choice, check_number
from ..compiled import compile_failed
from ..flow import FIXED_SOLVERS, SOLVERS
from .adjoint import adjoint
from .backsolve import backsolve
from .comln import comln
from .core import MetaGradient, build_problem, check_checkpoints, finish
from .first_order import fomaml, reptile
from .forward import forward, sensitivities
from .implicit import imaml
from .unrolled import maml, truncated

SCHEMES = ("continuous", "grid", "discrete")


@dataclass(frozen=True)
class Method:
    name: str
    fn: object
    solvers: tuple
    summary: str

    @property
    def options(self) -> dict:
        sig = inspect.signature(self.fn)
        return {k: v.default for k, v in list(sig.parameters.items())[1:]}


METHODS = {
    m.name: m
    for m in (
        Method("maml", maml, SOLVERS, "back-propagation through every solver step (exact, memory grows with steps)"),
        Method("adjoint", adjoint, SOLVERS, "A-MAML: adjoint ODE backward with HVPs (stored or checkpointed states)"),
        Method("backsolve", backsolve, SOLVERS, "adjoint with the state run backward in time (unstable; for teaching)"),
        Method("fomaml", fomaml, SOLVERS, "first-order MAML: grad L_Q(u(T)), no derivative through the inner loop"),
        Method("reptile", reptile, SOLVERS, "Reptile's direction theta - u(T)"),
        Method("imaml", imaml, SOLVERS, "implicit MAML: CG on (I + H/lam) v = grad L_Q at the proximal optimum"),
        Method("truncated", truncated, SOLVERS, "back-propagation through the last `truncate` steps only"),
        Method(
            "comln",
            comln,
            SOLVERS,
            "COMLN: a linear head's flow on cross-entropy, checkpointed adjoint (use comln_task)",
        ),
        Method(
            "forward", forward, SOLVERS, "forward-mode sensitivities du/dtheta along the flow (exact; P HVPs a stage)"
        ),
    )
}


def _check_options(method: Method, options: dict, steps: int, solver: str) -> dict:
    allowed = method.options
    for name in options:
        if name not in allowed:
            names = ", ".join(allowed) or "none"
            raise ValueError(
                f"option {name}={options[name]!r} is not known to method={method.name!r}; its options: {names}"
            )
    opts = {**allowed, **options}
    if "scheme" in opts:
        check_choice("scheme", opts["scheme"], SCHEMES)
        if opts["scheme"] in ("discrete", "grid") and solver not in FIXED_SOLVERS:
            what = {"discrete": "transposes fixed grid steps", "grid": "takes its stages on a fixed grid's states"}
            raise ValueError(
                f"scheme={opts['scheme']!r} {what[opts['scheme']]}; solver={solver!r} is adaptive."
                f" Use solver in {', '.join(FIXED_SOLVERS)} or scheme='continuous'"
            )
    if "checkpoints" in opts:
        opts["checkpoints"] = check_checkpoints(opts["checkpoints"], auto=method.name in ("adjoint", "comln"))
        if method.name == "maml" and opts["checkpoints"] is not None and solver not in FIXED_SOLVERS:
            raise ValueError(
                f"method='maml' with checkpoints recomputes fixed grid segments; solver={solver!r} is"
                f" adaptive. Use solver in {', '.join(FIXED_SOLVERS)} or checkpoints=None"
            )
    if "memory_budget_mb" in opts:
        opts["memory_budget_mb"] = check_number("memory_budget_mb", opts["memory_budget_mb"], positive=True)
    if "reconstruction_tol" in opts:
        opts["reconstruction_tol"] = check_number("reconstruction_tol", opts["reconstruction_tol"], positive=True)
    return opts


def proximal_weight(method: str, reg: float, options: dict) -> float:
    """The proximal weight of ``method``'s inner problem: iMAML's own ``lam`` (its default unless given), else
    the flow's ``reg``.  The one place the iMAML rule is written."""
    if method == "imaml":
        return float(options.get("lam", METHODS["imaml"].options["lam"]))
    return reg


def flow_reg(method: str, reg: float) -> float:
    """The ``reg`` to hand :func:`meta_gradient` for ``method``: iMAML takes its proximal weight as ``lam``, so 0."""
    return 0.0 if method == "imaml" else reg


def meta_gradient(
    support_loss,
    query_loss,
    theta,
    *,
    method: str,
    steps: int,
    step_size: float,
    solver: str = "rk4",
    reg: float = 0.0,
    rtol: float = 1e-7,
    atol: float = 1e-9,
    hvp: str = "autograd",
    learn_horizon: bool = False,
    adapt=None,
    compile: bool = False,
    **options,
) -> MetaGradient:
    """d L_Q(u(T)) / d theta for the inner flow du/dt = -grad L_S(u) - reg (u - theta), u(0) = theta.

    Args:
        support_loss, query_loss: callables ``params -> scalar tensor`` taking params in the structure of ``theta``.
        theta: u(0), a floating-point tensor or a dict of tensors (all on one dtype and device).
        method: one of :data:`METHODS` (maml, adjoint, backsolve, fomaml, reptile, imaml, truncated, comln, forward);
            its docstring says what it costs and when it is exact.
        steps, step_size: an integer >= 1 and a number > 0; the flow runs to T = steps * step_size with ``solver``.
        solver: ``euler``, ``midpoint``, ``rk4`` take exactly ``steps`` steps; ``dopri5`` adapts to ``rtol``/``atol``.
        reg: the proximal weight, >= 0 (0: the plain gradient flow).
        rtol, atol: ``dopri5``'s relative and absolute tolerances, each > 0.
        hvp: how Hessian-vector products are taken, ``"autograd"`` or ``"func"`` (see :mod:`amaml_lab.functional`).
        learn_horizon: True adds ``horizon_grad`` = dL_Q/dT = <grad L_Q(u(T)), du/dt(T)>, the flow's velocity against
            the query gradient (exact for the continuous flow; two gradient evaluations), so that T can be meta-learned.
        adapt: the keys of a dict ``theta`` the inner loop adapts (ANIL- or COMLN-style: only a head); the others stay
            at theta during the inner run, and their meta-gradient still comes back (through the adjoint's mixed terms).
        compile: True runs torch.compile graphs (:mod:`amaml_lab.compiled`).
        **options: the method's own (``scheme``, ``checkpoints``, ...); one it does not know raises a ValueError.

    Returns:
        A :class:`MetaGradient`: ``grad`` and ``adapted`` (u(T)) in theta's structure, ``query_loss``, ``stats``.
    """
    check_choice("method", method, METHODS)
    m = METHODS[method]
    started = time.perf_counter()
    problem = build_problem(
        support_loss,
        query_loss,
        theta,
        steps=steps,
        step_size=step_size,
        solver=solver,
        reg=reg,
        rtol=rtol,
        atol=atol,
        hvp=hvp,
        adapt=adapt,
        compile=compile,
    )
    opts = _check_options(m, options, problem.steps, solver)
    if not isinstance(learn_horizon, bool):
        raise ValueError(f"learn_horizon must be True or False; got {learn_horizon!r}")
    grad, u_T, qloss, stats = m.fn(problem, **opts)
    horizon_grad = None
    if learn_horizon:
        velocity = problem.flow().velocity(u_T, problem.support.grad(u_T))
        horizon_grad = float(torch.dot(problem.query.grad(u_T), velocity))
    stats = {
        "method": method,
        "solver": solver,
        "steps": problem.steps,
        "step_size": problem.step_size,
        "reg": problem.reg,
        **stats,
        **({"compiled": compile_failed() or True} if compile else {}),
    }
    result = finish(problem, grad, u_T, qloss, stats, started)
    result.horizon_grad = horizon_grad
    return result


def loop_jacobian(
    support_loss, theta, *, horizons, step_size: float, solver: str = "rk4", reg: float = 0.0, adapt=None
) -> dict:
    """{N: du(N steps)/dtheta} for each step count N in ``horizons``: the inner loop's Jacobian, a P x P matrix on the
    flat parameters (:class:`~amaml_lab.functional.ParamSpec` order), from one forward pass.

    Exact in float64 on a fixed grid (the product of the one-step maps' Jacobians: forward sensitivities,
    :func:`.forward.sensitivities`); P Hessian-vector products a stage, so for small models.  Its singular values
    say how many directions of theta still move the loop's end point: for a quadratic support loss with Hessian
    H and Euler steps of h, it is (I - h H)^N, close to exp(-H T) (a test checks both).
    """
    horizons = sorted(set(horizons))
    if not horizons or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in horizons):
        raise ValueError(f"horizons must be step counts >= 1; got {horizons!r}")
    check_choice("solver", solver, FIXED_SOLVERS)
    problem = build_problem(
        support_loss,
        support_loss,
        theta,
        steps=horizons[-1],
        step_size=step_size,
        solver=solver,
        reg=reg,
        rtol=1e-7,
        atol=1e-9,
        hvp="autograd",
        adapt=adapt,
    )
    _, sens = sensitivities(problem, [0, *horizons])
    return dict(zip(horizons, sens[1:]))
