"""Notebook 04's computations: every baseline against the exact meta-gradient, and what each one costs.

:func:`baseline_table` holds every row the baseline explorer can show (fixed methods, truncation, iMAML at each
λ); :func:`baseline_methods` names the rows for :func:`~amaml_lab.metagrad.compare_methods`.
"""

from __future__ import annotations

import time

import torch

from ..flow import STAGES, solve, step_function, time_grid
from ..functional import flat_grad, relative_error
from ..metagrad import compare_methods, meta_gradient


def baseline_table(
    support_loss,
    query_loss,
    theta,
    steps_list,
    *,
    step_size: float,
    lams,
    cg_steps: int,
    truncates,
    solver: str = "rk4",
) -> dict:
    """Every row the baselines' comparison can show for iMAML's λ in ``lams`` and CG steps 1..``cg_steps``, and
    for every truncation in ``truncates``: {"fixed": rows of adjoint, fomaml and reptile, "truncated": {k: rows},
    "imaml": {(λ, CG steps): rows}}, rows as :func:`compare_methods` gives them (reg 0), one a steps.

    adjoint, fomaml and reptile are :func:`compare_methods`' rows; truncated and iMAML come from
    :func:`truncated_rows` and :func:`imaml_rows`, which share the work between their settings.  Same numbers
    as :func:`compare_methods` to rounding, and the same counts of evaluations.
    """
    fixed = [m for m in baseline_methods() if m[1] in ("adjoint", "fomaml", "reptile")]
    rows = compare_methods(
        support_loss, query_loss, theta, steps_list, step_size=step_size, methods=fixed, solver=solver
    )
    common = dict(step_size=step_size, solver=solver)
    return {
        "fixed": rows,
        "truncated": truncated_rows(support_loss, query_loss, theta, steps_list, truncates, **common),
        "imaml": imaml_rows(support_loss, query_loss, theta, steps_list, lams, cg_steps, **common),
    }


def rows_at(table: dict, lam: float, cg_steps: int, truncate: int) -> list[dict]:
    """The rows of :func:`baseline_table`'s ``table`` that one setting shows: adjoint, fomaml and reptile, iMAML at
    (λ, CG steps) and truncation at ``truncate``, in that order."""
    fixed = [r for m in ("adjoint", "fomaml", "reptile") for r in table["fixed"] if r["method"] == m]
    return [*fixed, *table["imaml"][(float(lam), int(cg_steps))], *table["truncated"][int(truncate)]]


def _row(steps, label, method, g, exact, query_loss, seconds, grad_evals, hvp_evals, stored_states) -> dict:
    from ..functional import cosine

    return {
        "steps": steps,
        "label": label,
        "method": method,
        "rel_error": relative_error(g, exact),
        "cosine": cosine(g, exact),
        "query_loss": query_loss,
        "wall_time": seconds,
        "grad_evals": grad_evals,
        "hvp_evals": hvp_evals,
        "stored_states": stored_states,
    }


def truncated_rows(
    support_loss, query_loss, theta, steps_list, truncates, *, step_size: float, solver: str = "rk4"
) -> dict:
    """{k: :func:`compare_methods`' rows of ``("truncated (last k)", "truncated", {"truncate": k})``} for every k
    in ``truncates``: for each steps one back-propagation through the whole loop gives every truncation (the
    gradient at the state k steps before the end, :func:`tail_gradients`)."""
    out = {int(k): [] for k in truncates}
    evals = STAGES[solver]
    for steps in steps_list:
        kw = dict(steps=steps, step_size=step_size, solver=solver)
        started = time.perf_counter()
        exact = flat_grad(meta_gradient(support_loss, query_loss, theta, method="maml", **kw).grad)
        tails, qloss = tail_gradients(support_loss, query_loss, theta, **kw)
        seconds = time.perf_counter() - started
        for k, rows in out.items():
            j = min(k, steps)  # compare_methods clips a truncation to the steps
            rows.append(
                _row(
                    steps,
                    f"truncated (last {k})",
                    "truncated",
                    tails[steps - j],
                    exact,
                    qloss,
                    seconds,
                    evals * steps,
                    evals * j,
                    j + 1,
                )
            )
    return out


def imaml_rows(
    support_loss, query_loss, theta, steps_list, lams, cg_steps: int, *, step_size: float, solver: str = "rk4"
) -> dict:
    """{(λ, k): :func:`compare_methods`' rows of ``("imaml", "imaml", {"lam": λ, "cg_steps": k})``} for every λ
    in ``lams`` and k = 1..``cg_steps``: for each steps one solve of every λ's proximal loop side by side gives
    their references and end points (:func:`proximal_meta_gradients`), and one CG run a λ every k (CG's k-th
    iterate is what k steps return)."""
    from ..metagrad.core import build_problem
    from ..metagrad.implicit import implicit_direction

    lams = [float(lam) for lam in lams]
    out = {(lam, k): [] for lam in lams for k in range(1, cg_steps + 1)}
    evals = STAGES[solver]
    for steps in steps_list:
        kw = dict(steps=steps, step_size=step_size, solver=solver)
        started = time.perf_counter()
        refs, ends = proximal_meta_gradients(support_loss, query_loss, theta, lams, **kw)
        for b, lam in enumerate(lams):
            p = build_problem(support_loss, query_loss, theta, **kw, reg=lam, rtol=1e-7, atol=1e-9, hvp="autograd")
            iterates = []
            qloss, _, _, _ = implicit_direction(p, ends[b], lam, cg_steps, iterates=iterates)
            seconds = time.perf_counter() - started
            for k in range(1, cg_steps + 1):
                done = min(k, len(iterates))
                out[(lam, k)].append(
                    _row(
                        steps, "imaml", "imaml", iterates[done - 1], refs[b], qloss, seconds, evals * steps + 1, done, 1
                    )
                )
    return out


def tail_gradients(support_loss, query_loss, theta, *, steps: int, step_size: float, solver: str = "rk4"):
    """dL_Q(u_n)/du_j for every state j = 0..n of the plain loop (reg 0), flat, (n + 1, P), and L_Q(u_n).

    Row n - k is back-propagation through the last k steps (:func:`~amaml_lab.metagrad.unrolled.tail_gradient`,
    method ``"truncated"``); row 0 is maml's.  One forward pass keeping its graph, one backward pass.
    """
    from ..metagrad.core import build_problem

    p = build_problem(
        support_loss,
        query_loss,
        theta,
        steps=steps,
        step_size=step_size,
        solver=solver,
        reg=0.0,
        rtol=1e-7,
        atol=1e-9,
        hvp="autograd",
    )
    step = step_function(solver)
    times = p.grid.tolist()
    with torch.enable_grad():
        states = [p.theta.clone().requires_grad_(True)]
        field = p.flow(graph=True)
        for k in range(steps):
            states.append(step(field, times[k], times[k + 1], states[-1]))
        value = p.query.loss(states[-1])
        grads = torch.autograd.grad(value, states)
    return torch.stack(grads), float(value.detach())


def proximal_meta_gradients(
    support_loss, query_loss, theta, regs, *, steps: int, step_size: float, solver: str = "rk4"
):
    """maml's meta-gradient through the proximal loop du/dt = -grad L_S(u) - reg (u - theta) for every reg in
    ``regs``, flat (B, P), and each loop's end point u(T) (B, P).

    All B loops in one solve, side by side from B copies of theta (as :func:`~amaml_lab.metagrad.batch.
    meta_gradient_batch` runs tasks): the copies' losses through ``torch.func.vmap``, their gradients by
    autograd on the sum (a copy's gradient is its own loss's), each copy its own reg; the gradient of the
    summed query losses with respect to the copies is every loop's meta-gradient.  Equals
    ``meta_gradient(..., method="maml", reg=reg)`` for each reg to rounding.
    """
    from ..functional import ParamSpec, flat_loss

    spec = ParamSpec.of(theta)
    th = spec.flatten(theta).detach()
    support = torch.func.vmap(flat_loss(support_loss, spec, "support_loss"))
    query = torch.func.vmap(flat_loss(query_loss, spec, "query_loss"))
    reg = torch.tensor([float(r) for r in regs], dtype=th.dtype, device=th.device)[:, None]
    with torch.enable_grad():
        copies = th.expand(len(reg), -1).clone().requires_grad_(True)

        def field(t, u):
            (g,) = torch.autograd.grad(support(u).sum(), u, create_graph=True)
            return -g - reg * (u - copies)

        end = solve(field, copies, time_grid(steps, step_size, th.dtype, th.device), [0, steps], solver)[-1]
        (grads,) = torch.autograd.grad(query(end).sum(), copies)
    return grads, end.detach()


def baseline_methods(lam: float = 2.0, cg_steps: int = 5, truncate: int = 5):
    """The (label, method, options) rows of the baselines' comparison (for :func:`compare_methods`)."""
    return (
        ("adjoint", "adjoint", {}),
        ("fomaml", "fomaml", {}),
        ("reptile", "reptile", {"scale": "horizon"}),
        ("imaml", "imaml", {"lam": float(lam), "cg_steps": int(cg_steps)}),
        (f"truncated (last {truncate})", "truncated", {"truncate": int(truncate)}),
    )
