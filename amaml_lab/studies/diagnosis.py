"""Why a first-order direction can train better through a long loop than the exact meta-gradient: the
measurements behind ``results/diagnose_directions.py`` (issue 33), each at one theta of a run.

* :func:`direction_stats`: over many meta-batches, the exact meta-gradient's, FOMAML's and Reptile's norms, how
  well each agrees with itself from batch to batch (mean pairwise cosine; the norm of the mean over the mean of the
  norms), and the cosines between them;
* :func:`gradient_scale`: each batch's norm of a direction, the largest over the median, and how Adam's second
  moment compares with the gradients it now sees;
* :func:`adam_step`: Adam's effective step, mean |m_hat| / (sqrt(v_hat) + eps), read from an optimiser state;
* :func:`jacobian_spectrum`: the singular values of the loop's Jacobian du(N)/dtheta (exact, float64,
  :func:`amaml_lab.loop_jacobian`) at several N from one pass;
* :func:`loss_slice`: the own-loop query loss along a normalised direction, at a resolution finer than an Adam step.

Everything takes a run's :class:`~amaml_lab.training.config.RunConfig` and theta; nothing trains.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import torch

from ..functional import ParamSpec
from ..metagrad import loop_jacobian
from ..tasks.domains import load_domain
from ..training.builders import build_model, losses_for
from ..training.config import RunConfig
from ..training.evaluate import adapt_batch_at
from ..training.train import batch_gradient

DIRECTIONS = {"exact": "maml", "fomaml": "fomaml", "reptile": "reptile"}  # name: the method that gives it


def setting(cfg: RunConfig):
    """(resolved cfg, its domain, its model): what every measurement here needs."""
    cfg = cfg.resolved().check()
    domain = load_domain(
        cfg.domain,
        cfg.shots,
        cfg.query,
        tasks=cfg.tasks,
        pool=cfg.pool,
        bug_compatible=cfg.bug_compatible,
        protocol=cfg.protocol,
    )
    return cfg, domain, build_model(cfg, domain.in_features)


def meta_batches(cfg: RunConfig, domain, count: int, seed: int = 0) -> list:
    """``count`` meta-batches of the run's meta-train tasks, drawn with a generator seeded ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return [domain.train_batch(gen, cfg.meta_batch, cfg.shots, cfg.query) for _ in range(count)]


def agreement(vectors: list) -> dict:
    """Mean norm, mean pairwise cosine and coherence (norm of the mean / mean of the norms) of flat vectors."""
    V = torch.stack(vectors)
    norms = V.norm(dim=1)
    unit = V / norms[:, None]
    pairs = [float(unit[i] @ unit[j]) for i, j in itertools.combinations(range(len(vectors)), 2)]
    return {
        "mean_norm": float(norms.mean()),
        "pairwise_cosine": sum(pairs) / len(pairs),
        "coherence": float(V.mean(0).norm() / norms.mean()),
    }


def directions_over_batches(cfg: RunConfig, theta: dict, steps: int, count: int = 20, seed: int = 0) -> dict:
    """{name: [flat direction on each of ``count`` meta-batches]} at ``theta`` with a loop of ``steps`` steps: the
    exact meta-gradient (maml's), FOMAML's and Reptile's on the same seeded batches."""
    cfg, domain, model = setting(replace(cfg, inner_steps=steps))
    spec = ParamSpec.of(theta)
    found = {name: [] for name in DIRECTIONS}
    for support, query in meta_batches(cfg, domain, count, seed):
        for name, method in DIRECTIONS.items():
            grad, _, _ = batch_gradient(replace(cfg, method=method), model, theta, support, query)
            found[name].append(spec.flatten(grad))
    return found


def direction_stats(found: dict) -> dict:
    """:func:`agreement` of each direction of :func:`directions_over_batches`, and the mean over batches of the
    cosine between each pair of directions (on the same batch)."""
    out = {name: agreement(vs) for name, vs in found.items()}
    for a, b in itertools.combinations(found, 2):
        cosines = [float(x @ y / (x.norm() * y.norm())) for x, y in zip(found[a], found[b])]
        out[f"cosine_{a}_{b}"] = sum(cosines) / len(cosines)
    return out


def adam_step(optimizer_state: dict) -> float:
    """Adam's effective step per unit learning rate, mean over every parameter of |m_hat| / (sqrt(v_hat) + eps)
    with the bias corrections: 1 when every gradient of the window agrees in sign and size, near 0 when they cancel."""
    group = optimizer_state["param_groups"][0]
    (beta1, beta2), eps = group["betas"], group["eps"]
    ratios = []
    for state in optimizer_state["state"].values():
        t = float(state["step"])
        m_hat = state["exp_avg"] / (1 - beta1**t)
        v_hat = state["exp_avg_sq"] / (1 - beta2**t)
        ratios.append((m_hat.abs() / (v_hat.sqrt() + eps)).reshape(-1))
    return float(torch.cat(ratios).mean())


def gradient_scale(vectors: list, optimizer_state: dict | None = None) -> dict:
    """How unevenly a direction's size is spread over meta-batches, and whether Adam's memory of it is stale.

    ``norms``: each batch's norm, ascending; ``max_over_median``: the largest over the median (a heavy tail means a
    few batches dominate Adam's second moment); with the run's ``optimizer_state`` (Adam),
    ``sqrt_v_over_rms``: sum over parameters of sqrt(v_hat) over the sum of the root mean square of these gradients,
    1 when Adam's second moment matches the gradients it now sees, much more when it remembers larger ones."""
    V = torch.stack(vectors)
    norms = V.norm(dim=1).sort().values
    out = {"norms": norms.tolist(), "max_over_median": float(norms[-1] / norms.median())}
    if optimizer_state is not None and optimizer_state["state"]:
        beta2 = optimizer_state["param_groups"][0]["betas"][1]
        v_hat = torch.cat(
            [(s["exp_avg_sq"] / (1 - beta2 ** float(s["step"]))).reshape(-1) for s in optimizer_state["state"].values()]
        )
        out["sqrt_v_over_rms"] = float(v_hat.sqrt().sum() / V.pow(2).mean(0).sqrt().sum())
    return out


def jacobian_spectrum(cfg: RunConfig, theta: dict, horizons, tasks: int = 1, seed: int = 0) -> dict:
    """{N: [singular values of du(N)/dtheta, descending] per task} for ``tasks`` meta-train tasks' support sets (the
    run's step size, solver and reg), each from one pass to the longest N."""
    cfg, domain, model = setting(cfg)
    support_loss, _ = losses_for(cfg, model)
    (sx, sy), _ = meta_batches(replace(cfg, meta_batch=tasks), domain, 1, seed)[0]
    out = {n: [] for n in sorted(set(horizons))}
    for b in range(tasks):
        data = (sx[b], sy[b])
        found = loop_jacobian(
            lambda p, data=data: support_loss(p, data),
            theta,
            horizons=list(out),
            step_size=cfg.step_size,
            solver=cfg.solver,
            reg=cfg.reg,
        )
        for n, J in found.items():
            out[n].append(torch.linalg.svdvals(J).tolist())
    return out


def loss_slice(cfg: RunConfig, theta: dict, direction: torch.Tensor, alphas, count: int = 4, seed: int = 1) -> list:
    """The mean query MSE after the run's own loop from theta + alpha * direction / |direction|, for each alpha,
    over the tasks of ``count`` meta-batches (seeded ``seed``): the meta-loss the exact gradient descends."""
    cfg, domain, model = setting(cfg)
    support_loss, query_loss = losses_for(cfg, model)
    spec = ParamSpec.of(theta)
    start, unit = spec.flatten(theta), direction / direction.norm()
    batches = meta_batches(cfg, domain, count, seed)
    support = tuple(torch.cat([b[0][i] for b in batches]) for i in range(2))
    query = tuple(torch.cat([b[1][i] for b in batches]) for i in range(2))
    values = []
    for alpha in alphas:
        adapted = adapt_batch_at(
            support_loss,
            spec.unflatten(start + alpha * unit),
            support,
            [cfg.inner_steps],
            cfg.step_size,
            cfg.solver,
            cfg.reg,
        )[0]
        with torch.no_grad():
            values.append(float(torch.func.vmap(query_loss)(adapted, query).mean()))
    return values


__all__ = [
    "DIRECTIONS",
    "adam_step",
    "agreement",
    "direction_stats",
    "gradient_scale",
    "directions_over_batches",
    "jacobian_spectrum",
    "loss_slice",
    "meta_batches",
    "setting",
]
