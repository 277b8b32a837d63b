"""Each method's meta-gradient against the exact one, as the inner loop grows: the data the notebooks plot."""

from __future__ import annotations

from ..functional import cosine, flat_grad, relative_error
from .dispatch import flow_reg, meta_gradient, proximal_weight

DEFAULT_METHODS = (
    ("maml", "maml", {}),
    ("adjoint", "adjoint", {}),
    ("adjoint (discrete)", "adjoint", {"scheme": "discrete"}),
    ("fomaml", "fomaml", {}),
    ("reptile", "reptile", {"scale": "horizon"}),
    ("imaml", "imaml", {"lam": 2.0}),
    ("truncated (last 5)", "truncated", {"truncate": 5}),
)


def compare_methods(
    support_loss, query_loss, theta, steps_list, *, step_size, methods=DEFAULT_METHODS, solver="rk4", reg=0.0, **common
):
    """For every steps in ``steps_list`` and every ``(label, method, options)``: error and cost.

    The exact meta-gradient is ``"maml"``'s (back-propagation through the same
    solver steps, with the same reg; for ``imaml`` with reg = its ``lam``, the
    inner problem it solves).

    Args:
        support_loss, query_loss: the task's losses, callables ``params -> scalar tensor`` as for :func:`meta_gradient`.
        theta: the initialisation, a tensor or a dict of tensors.
        steps_list: the inner step counts to compare at, each an integer >= 1.
        step_size: the inner step size, > 0.
        methods: ``(label, method, options)`` triples, :data:`DEFAULT_METHODS` by default: ``label`` names the row,
            ``method`` is one of :data:`~amaml_lab.metagrad.dispatch.METHODS` (maml, adjoint, backsolve, fomaml,
            reptile, imaml, truncated, comln, forward) and ``options`` are its own.  ``truncate`` options larger than
            ``steps`` are clipped to ``steps``.
        solver: one of ``euler``, ``midpoint``, ``rk4``, ``dopri5``.
        reg: the flow's proximal weight, >= 0 (``imaml`` runs with its own ``lam`` instead).
        **common: further arguments of :func:`meta_gradient` given to every call (``rtol``, ``atol``, ``hvp``, ...).

    Returns:
        A list with one dict a (steps, method): ``steps``, ``label``, ``method``, ``rel_error`` = |g - g*| / |g*|,
        ``cosine`` between g and g*, ``query_loss``, ``wall_time``, ``grad_evals``, ``hvp_evals``, ``stored_states``.
    """
    rows = []
    for steps in steps_list:
        exact = {}
        for label, method, options in methods:
            opts = dict(options)
            run_reg = proximal_weight(method, reg, opts)
            if method == "truncated":
                opts["truncate"] = min(opts.get("truncate", steps), steps)
            if run_reg not in exact:
                exact[run_reg] = flat_grad(
                    meta_gradient(
                        support_loss,
                        query_loss,
                        theta,
                        method="maml",
                        steps=steps,
                        step_size=step_size,
                        solver=solver,
                        reg=run_reg,
                        **common,
                    ).grad
                )
            r = meta_gradient(
                support_loss,
                query_loss,
                theta,
                method=method,
                steps=steps,
                step_size=step_size,
                solver=solver,
                reg=flow_reg(method, reg),
                **common,
                **opts,
            )
            g, ref = flat_grad(r.grad), exact[run_reg]
            rows.append(
                {
                    "steps": steps,
                    "label": label,
                    "method": method,
                    "rel_error": relative_error(g, ref),
                    "cosine": cosine(g, ref),
                    "query_loss": r.query_loss,
                    "wall_time": r.stats["wall_time"],
                    "grad_evals": r.stats["grad_evals"],
                    "hvp_evals": r.stats["hvp_evals"],
                    "stored_states": r.stats["stored_states"],
                }
            )
    return rows
