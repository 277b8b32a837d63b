"""Evaluating a meta-trained theta on meta-test tasks, and checking a domain's meta-gradients on one episode.

:func:`evaluate` is the reference's protocol: fine-tune a copy of theta on each meta-test task's support set with
Adam and log the RMSE on standardised targets (nRMSE) every few iterations; :func:`evaluate_inner_loop` measures
what the meta-gradient optimises instead, the error after the run's own inner loop (or after any other number of
its steps: the cross-evaluation).  :func:`regression_evaluation` gathers every number a run reports, per task.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from ..flow import GradientFlow, solve, time_grid
from ..functional import Derivatives, ParamSpec, flat_loss
from ..progress import progress
from ..tasks.domains import load_domain
from .builders import CONV4_HEAD, build_model, losses_for, on_device
from .config import RunConfig, inner_reg


def evaluate(
    model,
    theta: dict,
    evalset,
    steps: int = 5000,
    every: int = 10,
    lr: float = 1e-3,
    weight_decay: float = 1e-6,
    show_progress: bool | None = None,
) -> dict:
    """Fine-tune theta on every meta-test task's support set with Adam; nRMSE on its target set every ``every`` steps.

    All tasks run at once (parameters stacked along a task dimension, the
    losses vmapped and summed): Adam and its weight decay act element-wise and
    the tasks share no parameter, so this equals fine-tuning each task alone
    (a test checks it).  Returns ``{"iterations", "nrmse" (tasks x logs)}``.
    """
    tasks = evalset.tasks
    ref = next(iter(theta.values()))
    params = {k: v.detach().expand(tasks, *v.shape).clone().requires_grad_(True) for k, v in theta.items()}

    def cast(data):
        return tuple(t.to(ref.device, ref.dtype) for t in data)

    (sx, sy), (tx, ty) = cast(evalset.support), cast(evalset.target)
    predict = torch.func.vmap(lambda p, x: torch.func.functional_call(model, p, (x,)))
    optimizer = torch.optim.Adam(params.values(), lr=lr, weight_decay=weight_decay)
    iterations, curves = [], []
    bar = progress(steps, "fine-tuning", enabled=show_progress, part=True)
    try:
        for it in range(steps + 1):
            if it % every == 0 or it == steps:
                with torch.no_grad():
                    curves.append(((predict(params, tx) - ty) ** 2).mean((1, 2)).sqrt().double().cpu())
                iterations.append(it)
            if it == steps:
                break
            optimizer.zero_grad()
            ((predict(params, sx) - sy) ** 2).mean((1, 2)).sum().backward()
            optimizer.step()
            bar.update(1)
    finally:
        bar.close()
    return {"iterations": iterations, "nrmse": torch.stack(curves, 1)}


def adapt_batch(
    support_loss, theta: dict, support, steps: int, step_size: float, solver: str = "rk4", reg: float = 0.0, keys=None
) -> dict:
    """The inner loop of every task of a batch at once: the flow of the summed, vmapped support loss.

    ``support`` holds tensors with a leading task dimension; returns the adapted
    parameters stacked along it.  ``keys`` limits adaptation to those entries
    (COMLN's head).  No graph is kept: this is for evaluation.
    """
    return adapt_batch_at(support_loss, theta, support, [steps], step_size, solver, reg, keys)[0]


def adapt_batch_at(
    support_loss, theta: dict, support, horizons, step_size: float, solver: str = "rk4", reg: float = 0.0, keys=None
) -> list[dict]:
    """:func:`adapt_batch` after each number of steps in ``horizons`` (any order; 0 is theta), from one solve."""
    size = support[0].shape[0]
    stacked = {k: v.detach().expand(size, *v.shape).clone() for k, v in theta.items()}
    spec = ParamSpec.of(stacked)
    start = spec.flatten(stacked)
    batched = torch.func.vmap(support_loss)
    d = Derivatives(flat_loss(lambda p: batched(p, support).sum(), spec, "support_loss"))
    mask = None
    if keys is not None:
        mask = spec.flatten({k: torch.full_like(v, float(k in keys)) for k, v in stacked.items()})
    horizons = list(horizons)
    if not horizons or any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in horizons):
        raise ValueError(f"horizons must be step counts >= 0; got {horizons!r}")
    save = [0, *sorted(set(horizons) - {0})]
    grid = time_grid(max(save[-1], 1), step_size, start.dtype, start.device)
    with torch.no_grad():
        states = solve(GradientFlow(d, start, reg, mask=mask), start, grid, save, solver)
    return [spec.unflatten(states[save.index(n)]) for n in horizons]


def _inner_loop_outputs(model, theta: dict, evalset, cfg: RunConfig, chunk: int, show_progress, what: str):
    """(model outputs on each chunk's target inputs after the run's own inner loop on its support set, targets)."""
    support_loss, _ = losses_for(cfg, model)
    predict = torch.func.vmap(lambda p, x: torch.func.functional_call(model, p, (x,)))
    keys = CONV4_HEAD if cfg.method == "comln" else None
    bar = progress(evalset.tasks, what, enabled=show_progress, part=True)
    try:
        for a in range(0, evalset.tasks, chunk):
            support = on_device(tuple(t[a : a + chunk] for t in evalset.support), cfg)
            x, y = on_device(tuple(t[a : a + chunk] for t in evalset.target), cfg)
            adapted = adapt_batch(
                support_loss, theta, support, cfg.inner_steps, cfg.step_size, cfg.solver, inner_reg(cfg), keys
            )
            with torch.no_grad():
                yield predict(adapted, x), y
            bar.update(len(y))
    finally:
        bar.close()


def evaluate_episodes(
    model, theta: dict, evalset, cfg: RunConfig, chunk: int = 50, show_progress: bool | None = None
) -> torch.Tensor:
    """Accuracy on each meta-test episode's query set after the run's own inner loop on its support set."""
    outputs = _inner_loop_outputs(model, theta, evalset, cfg, chunk, show_progress, "meta-test episodes")
    return torch.cat([(out.argmax(-1) == y).double().mean(1).cpu() for out, y in outputs])


def evaluate_inner_loop(
    model, theta: dict, evalset, cfg: RunConfig, chunk: int = 50, show_progress: bool | None = None
) -> torch.Tensor:
    """nRMSE of each meta-test task on its target points after the run's own inner loop on its support set.

    This is what the run's meta-gradient optimises (the flow of ``inner_steps``
    steps from theta, with the run's proximal weight), unlike :func:`evaluate`'s
    long Adam fine-tuning.
    """
    outputs = _inner_loop_outputs(model, theta, evalset, cfg, chunk, show_progress, "inner loops")
    return torch.cat([((out - y) ** 2).mean((1, 2)).sqrt().double().cpu() for out, y in outputs])


def loop_evaluation(model, theta: dict, evalset, cfg: RunConfig, horizons=(), chunk: int = 50) -> dict:
    """nRMSE of each task on its target points at theta (``theta``), after the run's own inner loop (``inner``) and
    after N steps of it for each N > 0 in ``horizons`` (``adapt<N>``): one solve to the longest, no Adam.

    The same numbers as :func:`evaluate_inner_loop` at each horizon (a test checks it), at the cost of one loop of
    ``max(inner_steps, *horizons)`` steps: what a run measures along training (``RunConfig.interval_horizons``)
    and what choosing a setting on meta-validation tasks reads.
    """
    if cfg.classification:
        raise ValueError(
            f"loop_evaluation measures regression errors; domain={cfg.domain!r} is classification"
            " (use evaluate_episodes)"
        )
    support_loss, _ = losses_for(cfg, model)
    predict = torch.func.vmap(lambda p, x: torch.func.functional_call(model, p, (x,)))
    wanted = sorted({0, cfg.inner_steps, *horizons})
    errors = {n: [] for n in wanted}
    for a in range(0, evalset.tasks, chunk):
        support = on_device(tuple(t[a : a + chunk] for t in evalset.support), cfg)
        x, y = on_device(tuple(t[a : a + chunk] for t in evalset.target), cfg)
        states = adapt_batch_at(support_loss, theta, support, wanted, cfg.step_size, cfg.solver, inner_reg(cfg))
        with torch.no_grad():
            for n, params in zip(wanted, states):
                errors[n].append(((predict(params, x) - y) ** 2).mean((1, 2)).sqrt().double().cpu())
    per_task = {"theta": torch.cat(errors[0]), "inner": torch.cat(errors[cfg.inner_steps])}
    for n in sorted(set(horizons) - {0}):
        per_task[f"adapt{n}"] = torch.cat(errors[n])
    return per_task


def task_spread(values: torch.Tensor) -> dict:
    """Mean, standard error and standard deviation (the reference reports the last) over tasks."""
    mean, se = mean_se(values)
    return {"mean": mean, "se": se, "std": float(values.std()) if values.numel() > 1 else float("nan")}


# Adam fine-tuning iterations reported beside the reference's long run (where the run fine-tunes longer)
FEW_ITERATIONS = (10, 100, 1000)


def regression_evaluation(model, theta: dict, evalset, cfg: RunConfig, show_progress: bool | None = None) -> dict:
    """Every number a regression run reports about theta, each per meta-test task, and the fine-tuning curve.

    ``theta``: nRMSE at theta itself; ``inner``: after the run's own inner loop;
    ``ft10``, ``ft100``, ``ft1000``: after 10, 100 and 1,000 Adam iterations (where logged and fewer than
    ``cfg.eval_steps``);
    ``finetuned``: after ``cfg.eval_steps`` (the reference's protocol);
    ``adapt<N>``: after N steps of the run's inner loop, for each N > 0 in
    ``cfg.test_horizons`` (N = 0 is ``theta``).
    """
    curve = evaluate(
        model,
        theta,
        evalset,
        steps=cfg.eval_steps,
        every=cfg.eval_every,
        lr=cfg.eval_lr,
        weight_decay=cfg.eval_weight_decay,
        show_progress=show_progress,
    )
    its = curve["iterations"]
    per_task = {
        "theta": curve["nrmse"][:, 0],
        "inner": evaluate_inner_loop(model, theta, evalset, cfg, show_progress=show_progress),
    }
    for n in FEW_ITERATIONS:
        if n in its and n < its[-1]:
            per_task[f"ft{n}"] = curve["nrmse"][:, its.index(n)]
    per_task["finetuned"] = curve["nrmse"][:, -1]
    for n in sorted(set(cfg.test_horizons) - {0}):
        per_task[f"adapt{n}"] = evaluate_inner_loop(
            model, theta, evalset, replace(cfg, inner_steps=n), show_progress=show_progress
        )
    return {"per_task": per_task, "curve": curve}


def evaluation_row(step: int, per_task: dict) -> dict:
    """One row of evals.csv: the meta-step and, per measure, mean, s.e. and std over the meta-test tasks."""
    row = {"meta_step": step}
    for name, values in per_task.items():
        for stat, v in task_spread(values).items():
            row[f"{name}_{stat}"] = v
    return row


def mean_se(values: torch.Tensor) -> tuple[float, float]:
    """Mean and standard error (sample standard deviation / sqrt(n)) of a 1-D tensor."""
    n = values.numel()
    se = float(values.std() / math.sqrt(n)) if n > 1 else float("nan")
    return float(values.mean()), se


def final_metrics(evaluation: dict, losses: list, per_task: dict | None = None) -> dict:
    """The numbers a run reports: nRMSE after fine-tuning (mean, s.e. over tasks), at theta itself, and the best.

    With ``per_task`` (from :func:`regression_evaluation`) also the standard
    deviations over tasks and the nRMSE after the run's own inner loop
    (``nrmse_inner``) and after a few fine-tuning iterations (``nrmse_ft10``, ...).
    """
    curve = evaluation["nrmse"]
    means = curve.mean(0)
    best = int(torch.argmin(means))
    last, last_se = mean_se(curve[:, -1])
    start, start_se = mean_se(curve[:, 0])
    tail = losses[-100:]
    return {
        "nrmse": last,
        "nrmse_se": last_se,
        "nrmse_at_theta": start,
        "nrmse_at_theta_se": start_se,
        "nrmse_best": float(means[best]),
        "nrmse_best_se": mean_se(curve[:, best])[1],
        "best_iteration": evaluation["iterations"][best],
        "eval_tasks": curve.shape[0],
        "eval_steps": evaluation["iterations"][-1],
        "meta_query_loss": sum(tail) / len(tail) if tail else float("nan"),
        **(_per_task_metrics(per_task) if per_task else {}),
    }


def _per_task_metrics(per_task: dict) -> dict:
    out = {
        "nrmse_std": task_spread(per_task["finetuned"])["std"],
        "nrmse_at_theta_std": task_spread(per_task["theta"])["std"],
    }
    for name, values in per_task.items():
        if name not in ("theta", "finetuned"):
            spread = task_spread(values)
            out.update(
                {f"nrmse_{name}": spread["mean"], f"nrmse_{name}_se": spread["se"], f"nrmse_{name}_std": spread["std"]}
            )
    return out


def classification_metrics(accuracies: torch.Tensor, losses: list) -> dict:
    """Mean accuracy over the meta-test episodes with its 95% confidence interval (1.96 standard errors)."""
    mean, se = mean_se(accuracies)
    tail = losses[-100:]
    return {
        "accuracy": mean,
        "accuracy_ci95": 1.96 * se,
        "eval_tasks": accuracies.numel(),
        "meta_query_loss": sum(tail) / len(tail) if tail else float("nan"),
    }


def episode_check(
    cfg: RunConfig,
    methods=("maml", "adjoint", "adjoint (discrete)", "fomaml", "reptile", "imaml"),
    data_root=None,
    seed: int = 0,
) -> list[dict]:
    """Each method's meta-gradient on one meta-train episode of ``cfg``'s domain, against the exact one.

    The model is the run's at initialisation (``cfg.seed``), the inner loop the
    run's (steps, step size, solver, reg; float64 for the comparison), the
    episode the first task of a batch drawn with ``seed``.  Rows of
    :func:`amaml_lab.metagrad.compare_methods`: ``rel_error`` and ``cosine`` to
    back-propagation through the same steps.  What the notebooks assert, so
    that a wrong meta-gradient fails them whatever the training noise.
    """
    from ..metagrad import compare_methods
    from ..metagrad.compare import DEFAULT_METHODS

    cfg = cfg.resolved().check()
    domain = load_domain(
        cfg.domain,
        cfg.shots,
        cfg.query,
        data_root=data_root,
        tasks=cfg.tasks,
        pool=cfg.pool,
        ways=cfg.ways,
        subset=cfg.subset,
    )
    model = build_model(cfg, getattr(domain, "in_features", None)).to(torch.float64)
    support, query = domain.train_batch(torch.Generator().manual_seed(seed), 1, cfg.shots, cfg.query)

    def one(batch):
        return tuple(t[0].to(torch.float64) if t.is_floating_point() else t[0] for t in batch)

    support, query = one(support), one(query)
    s_loss, q_loss = losses_for(cfg, model)
    theta = {k: v.detach().clone() for k, v in model.named_parameters()}
    wanted = [m for m in DEFAULT_METHODS if m[0] in methods]  # by label (see DEFAULT_METHODS)
    return compare_methods(
        lambda p: s_loss(p, support),
        lambda p: q_loss(p, query),
        theta,
        [cfg.inner_steps],
        step_size=cfg.step_size,
        methods=wanted,
        solver=cfg.solver,
        reg=0.0 if cfg.classification else cfg.reg,
    )
