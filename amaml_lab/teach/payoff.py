"""Notebook 08's computations: what the payoff explorer shows (each trained theta adapted at each test horizon),
and a small horizon experiment run here in the committed study's layout."""

from __future__ import annotations

from pathlib import Path

from ..studies.payoff import STEP_SIZE, cross_matrix, evaluated_horizons, load, measure_at, paired_by_seed, select
from ..studies.rundir import config_of


def mini_study(
    out,
    families=(("Sinusoid", 10, 10),),
    steps=(10, 100),
    reg: float = 0.0,
    seed: int = 0,
    meta_steps: int = 150,
    eval_tasks: int = 20,
    eval_steps: int = 100,
    step_size: float = STEP_SIZE,
    test_horizons=(0, 10, 100, 1000),
    show_progress: bool | None = False,
) -> list[dict]:
    """A small horizon experiment run here, in the committed study's layout under ``out`` (notebook 08's FAST):
    maml through ``steps`` Euler steps of ``step_size``, Adam 1e-3, meta-batch 5; returns :func:`load` of ``out``."""
    from ..training.config import RunConfig
    from ..training.runs import run

    for domain, shots, query in families:
        for n in steps:
            cfg = RunConfig(
                domain,
                shots,
                query,
                n,
                method="maml",
                seed=seed,
                solver="euler",
                step_size=step_size,
                reg=reg,
                optimizer="adam",
                meta_lr=1e-3,
                meta_batch=5,
                meta_steps=meta_steps,
                eval_tasks=eval_tasks,
                eval_steps=eval_steps,
                test_horizons=tuple(test_horizons),
                checkpoint_every=max(1, meta_steps // 3),
            )
            folder = Path(out) / f"{domain}-{shots}-{query}" / f"reg{reg:g}" / f"maml-{n}" / f"seed{seed}"
            run(cfg, folder, resume=True, show_progress=show_progress)
    return load(out)


def run_config(record: dict):
    """The :class:`~amaml_lab.training.config.RunConfig` a run was made with (from its summary.json), resolved."""
    return config_of(record["summary"]).resolved()


def adaptation_view(
    records, setting: str, reg: float, seed: int = 0, tasks=(0, 1, 2), horizons=None, points: int = 200
) -> dict:
    """What the payoff explorer shows, computed once: for each theta trained at N (maml, ``seed``), its
    predictions on ``tasks``' test grids after each test horizon (default: every one the runs were evaluated
    at), from one inner-loop solve per theta.

    Returns ``train`` and ``test`` (the step counts), ``x`` (``points`` inputs of the 1-D test grid),
    ``truth`` and ``support`` per task, ``pred`` [train][test][task][point], and the cross-evaluation
    (:func:`cross_matrix`) with each cell's difference to theta trained at N = 10 paired per seed (``pairs``).
    """
    import torch

    from ..tasks.domains import load_domain
    from ..training.builders import build_model, losses_for
    from ..training.evaluate import adapt_batch_at

    runs = {r["steps"]: r for r in select(records, setting, reg, "maml", seed=seed)}
    if not runs:
        raise ValueError(f"no finished maml run of {setting} reg {reg:g} seed {seed}; run results/run_horizon.sh")
    cfg = run_config(next(iter(runs.values())))
    horizons = list(horizons or evaluated_horizons(list(runs.values())))
    domain = load_domain(cfg.domain, cfg.shots, cfg.query, tasks=cfg.tasks, pool=cfg.pool, protocol=cfg.protocol)
    if domain.in_features != 1:
        raise ValueError(f"the payoff explorer draws 1-D functions; {cfg.domain} has {domain.in_features} inputs")
    evalset = domain.eval_set(cfg.eval_tasks, cfg.shots, cfg.query)
    tasks = list(tasks)
    every = max(1, evalset.target[0].shape[1] // points)
    sx, sy = (t[tasks] for t in evalset.support)
    tx, ty = (t[tasks, ::every] for t in evalset.target)
    model = build_model(cfg, 1)
    support_loss, _ = losses_for(cfg, model)
    predict = torch.func.vmap(lambda p, x: torch.func.functional_call(model, p, (x,)))
    pred = []
    for n in sorted(runs):
        theta = torch.load(runs[n]["folder"] / "checkpoint.pt", weights_only=False, map_location="cpu")["theta"]
        states = adapt_batch_at(support_loss, theta, (sx, sy), list(horizons), cfg.step_size, cfg.solver, cfg.reg)
        with torch.no_grad():
            pred.append(torch.stack([predict(u, tx)[..., 0] for u in states]))
    cross = cross_matrix(records, setting, reg)
    pairs = {
        (a, b): paired_by_seed(records, setting, reg, ("maml", 10), ("maml", a), measure_at(b))
        for a in cross["train"]
        for b in cross["test"]
        if a != 10
    }
    return {
        "setting": setting,
        "reg": reg,
        "seed": seed,
        "tasks": tasks,
        "train": sorted(runs),
        "step_size": cfg.step_size,
        "evaluated": evalset.tasks,
        "test": list(horizons),
        "x": tx[0, :, 0],
        "truth": ty[..., 0],
        "support": (sx[..., 0], sy[..., 0]),
        "pred": torch.stack(pred),
        "cross": cross,
        "pairs": pairs,
    }
