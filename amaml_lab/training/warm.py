"""The first compile paid ahead (``amaml-lab warm``): one compiled meta-gradient of each of the kit's usual settings,
so that inductor's on-disk cache holds their graphs and a later ``--compile`` run, the bench or a notebook only
loads them.

A setting's graphs depend on its shapes and arithmetic (the domain's input size, the support and query sizes, the
meta-batch, the width, the solver, the method, reg and the dtype), not on theta; a step's graph (maml's) not on the
number of steps either, but the adjoint's many-step graphs (its forward solve in one scan, the discrete adjoint's
sweep in another) on that too.  So the paper's settings warm at their 100 steps and the horizon loop (maml's step
graphs) at a few: one meta-gradient each fills the cache for every run of the setting.  Each setting reports its
seconds and what inductor did: graphs compiled (``misses``) or loaded from the cache (``hits``); a setting whose
graphs all came from the cache was warm already.  The cache is inductor's
(:func:`cache_folder`, ``TORCHINDUCTOR_CACHE_DIR`` to move it).
"""

from __future__ import annotations

import time

import torch

from ..compiled import cache_counts, cache_folder
from .builders import build_model
from .config import RunConfig
from .train import batch_gradient

PAPER_STEPS = 100  # the reference protocol's inner steps (rk4 steps of 0.01 to T = 1): its scans' length
STEPS = 3  # inner steps of the horizon loop's warming meta-gradient: maml's graphs are a step's, whatever the steps
PAPER = ("CosMixture 50 50", "CosMixture2D 50 50", "CosMixture2D 100 100", "Alpine2D 50 50", "Alpine2D 100 100")
# (label, RunConfig fields): the paper's headline pair in its five synthetic settings (the reference protocol:
# rk4 steps of 0.01, reg 1, meta-batch 5), and the horizon experiment's exact loop (Euler, reg 0), both domains
SETTINGS = tuple(
    (
        f"{setting} {method}",
        dict(
            domain=setting.split()[0],
            shots=int(setting.split()[1]),
            query=int(setting.split()[2]),
            method=method,
            inner_steps=PAPER_STEPS,
            solver="rk4",
            reg=1.0,
            protocol="reference",
        ),
    )
    for setting in PAPER
    for method in ("adjoint", "maml")
) + tuple(
    (
        f"{domain} {shots} {shots} maml euler reg 0",
        dict(domain=domain, shots=shots, query=shots, method="maml", inner_steps=STEPS, solver="euler", reg=0.0),
    )
    for domain, shots in (("CosMixture", 50), ("Sinusoid", 10))
)


def config_of(label: str) -> RunConfig:
    """The setting ``label`` of :data:`SETTINGS` as a resolved, checked run configuration (compiled)."""
    known = dict(SETTINGS)
    if label not in known:
        raise ValueError(f"setting {label!r} is not known; allowed values: {', '.join(known)}")
    return RunConfig(optimizer="adam", compile=True, **known[label]).resolved().check()


def warm_one(cfg: RunConfig) -> dict:
    """One compiled meta-gradient of ``cfg``'s setting on a meta-batch of its meta-train tasks: {"seconds", "hits",
    "misses"} (what inductor loaded and compiled for it)."""
    from ..tasks.domains import load_domain

    domain = load_domain(cfg.domain, cfg.shots, cfg.query, tasks=cfg.tasks, pool=cfg.pool, protocol=cfg.protocol)
    model = build_model(cfg, domain.in_features)
    theta = {k: v.detach() for k, v in model.named_parameters()}
    support, query = domain.train_batch(torch.Generator().manual_seed(0), cfg.meta_batch, cfg.shots, cfg.query)
    hits, misses = cache_counts()
    started = time.perf_counter()
    batch_gradient(cfg, model, theta, support, query, compile=True)
    seconds = time.perf_counter() - started
    after = cache_counts()
    return {"seconds": seconds, "hits": after[0] - hits, "misses": after[1] - misses}


def warm(labels=None, report=None) -> list[dict]:
    """Warm every setting of ``labels`` (default: all of :data:`SETTINGS`), in order; ``report(row)`` after each.
    Rows: {"setting", "seconds", "hits", "misses", "warm"} (``warm``: nothing had to compile)."""
    rows = []
    for label in labels or [label for label, _ in SETTINGS]:
        row = {"setting": label, **warm_one(config_of(label))}
        row["warm"] = row["misses"] == 0
        rows.append(row)
        if report is not None:
            report(row)
    return rows


__all__ = [
    "PAPER_STEPS",
    "SETTINGS",
    "STEPS",
    "cache_counts",
    "cache_folder",
    "config_of",
    "warm",
    "warm_one",
]  # the cache's two from compiled
