"""The horizon explorer's data: every line (:func:`amaml_lab.teach.horizons.every_horizon`) for every step size and
solver, the flow's exact meta-gradient, the errors and model curves, computed once over worker processes."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checks import check_choice, check_number
from ..flow import FIXED_SOLVERS
from ..functional import cosine, relative_error
from . import horizons as horizon


def errors(grads: torch.Tensor, exact: torch.Tensor) -> tuple[list, list]:
    """Relative error |g - g*| / |g*| and cosine per row; non-finite gradients give inf and nan."""
    return [relative_error(g, ref) for g, ref in zip(grads, exact)], [cosine(g, ref) for g, ref in zip(grads, exact)]


# ---------------------------------------------------------------- every (step size, solver), in parallel
def _job(kind: str, task_options: dict, args: dict):
    torch.set_num_threads(1)
    task = horizon.horizon_task(**task_options)
    if kind == "exact":
        return horizon.exact_gradients(task, args["times"])
    return horizon.every_horizon(task, **args)


@dataclass
class HorizonData:
    """Sweeps for every (step size, solver), the exact gradients, errors and model curves: all a view indexes."""

    task: horizon.HorizonTask
    steps: tuple
    step_sizes: tuple
    solvers: tuple
    sweeps: dict  # (step_size, solver) -> HorizonLines
    exact: dict  # step_size -> (m, P)
    errors: dict  # (step_size, solver) -> {method: (rel errors, cosines)}
    curves: dict  # (step_size, solver) -> (m + 1, points): the model at theta and at u(T_j)
    seconds: float
    source: str = "computed"  # or "shipped": loaded from the package (computed once, its seconds then)


class WorkerFallbackWarning(RuntimeWarning):
    """The explorer's worker processes could not start or died; what they left undone was computed here."""


def _in_workers(jobs: dict, task_options: dict, workers: int) -> dict:
    """The jobs' results from ``workers`` spawned processes; those a failing pool leaves undone are missing
    (with one warning), for the caller to compute here."""
    from ..procs import spawn_pool

    results = {}
    pool = None
    try:
        pool = spawn_pool(workers)
        futures = {key: pool.submit(_job, kind, task_options, args) for key, (kind, args) in jobs.items()}
        for key, future in futures.items():
            results[key] = future.result()
    except Exception as err:  # BrokenProcessPool, a worker killed, a spawn that cannot bootstrap, no /dev/shm ...
        import warnings

        # the survivors are stopped first: waiting for them on a broken pool can block on its result pipe
        survivors = (getattr(pool, "_processes", None) or {}) if pool is not None else {}
        for process in list(survivors.values()):
            process.kill()
        warnings.warn(
            f"the explorer's worker processes failed ({type(err).__name__}: {' '.join(str(err).split())[:200]});"
            f" computing the {len(jobs) - len(results)} remaining parts here instead (slower)",
            WorkerFallbackWarning,
            stacklevel=3,
        )
    finally:
        if pool is not None:
            pool.shutdown(wait=not (len(results) < len(jobs)), cancel_futures=True)
    return results


def workers_can_start() -> bool:
    """Whether spawned workers can re-import this program's main module: yes in a notebook kernel or an
    interactive session (no main file), no for a script (its top level would run again in every worker unless
    guarded by ``if __name__ == "__main__"``, which cannot be known from here) or a program read from stdin."""
    import sys

    main = sys.modules.get("__main__")
    return getattr(main, "__file__", None) is None


def default_workers() -> int:
    """Processes for :func:`compute`: the CPUs this process may use, at most 4, and at most one per spare GB;
    one (computing here) where workers could not re-import the main module (:func:`workers_can_start`).

    A worker peaks near 350 MB; where JupyterHub states a memory limit (``MEM_LIMIT``, as on Binder) the
    kernel keeps about a GB for itself, so a 2 GB limit computes in the kernel, one process.
    """
    import os

    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    limit = os.environ.get("MEM_LIMIT")
    by_memory = max(1, int(float(limit) / 2**30) - 1) if limit and limit.replace(".", "", 1).isdigit() else 4
    if not workers_can_start():  # a script: compute here (pass workers=N to use processes from a guarded one)
        return 1
    return max(1, min(4, cpus, by_memory))


def compute(
    task_options: dict | None = None,
    step_sizes=(0.01, 0.03),
    solvers=FIXED_SOLVERS,
    steps=horizon.log_steps(1000),
    lam: float = 2.0,
    cg_steps: int = 5,
    truncate: int = 5,
    workers: int | None = None,
) -> HorizonData:
    """Every sweep and reference the explorer shows, spread over ``workers`` processes (:func:`default_workers`).

    ``workers=1`` computes here, one after the other.
    """
    started = time.perf_counter()
    task_options = dict(task_options or {})
    task = horizon.horizon_task(**task_options)
    step_sizes = tuple(check_number("step_sizes", h, positive=True) for h in step_sizes)
    for s in solvers:
        check_choice("solvers", s, FIXED_SOLVERS)
    ks = sorted(set(steps))
    # one reference solve serves every step size: the flow's meta-gradient at the union of their horizons
    times = sorted({k * h for k in ks for h in step_sizes})
    jobs = {"exact": ("exact", {"times": times})}
    # the slowest first, so that the pool ends together
    for s in sorted(solvers, key=lambda s: -("euler", "midpoint", "rk4").index(s)):
        for h in step_sizes:
            jobs[(h, s)] = (
                "sweep",
                dict(step_size=h, solver=s, steps=tuple(ks), lam=lam, cg_steps=cg_steps, truncate=truncate),
            )
    workers = min(len(jobs), workers or default_workers())
    results = _in_workers(jobs, task_options, workers) if workers > 1 else {}
    for key, (kind, args) in jobs.items():  # here: everything (one worker), or what the workers did not finish
        if key not in results:
            results[key] = _job(kind, task_options, args)
    at = {t: i for i, t in enumerate(times)}
    exact = {h: results["exact"][[at[k * h] for k in ks]] for h in step_sizes}
    sweeps = {(h, s): results[(h, s)] for h in step_sizes for s in solvers}
    errs, curves = {}, {}
    for (h, s), sw in sweeps.items():
        errs[(h, s)] = {m: errors(g, exact[h]) for m, g in sw.grads.items()}
        with torch.no_grad():
            curves[(h, s)] = task.predict(torch.cat([sw.states[:1], sw.states[list(sw.steps)]]))
    return HorizonData(
        task, tuple(ks), step_sizes, tuple(solvers), sweeps, exact, errs, curves, time.perf_counter() - started
    )


# ---------------------------------------------------------------- the default build, computed once and shipped
SHIPPED = (
    Path(__file__).resolve().parents[1] / "measured" / "horizon-explorer.pt"
)  # notebook 02's FAST build (make it: __main__)


def _settings(task_options: dict, step_sizes, solvers, steps, lam, cg_steps, truncate) -> dict:
    """What a build depends on, as plain values (the task from its options: it is rebuilt, not stored)."""
    import inspect

    bound = inspect.signature(horizon.horizon_task).bind(**task_options)
    bound.apply_defaults()  # {} and {"seed": 0} are one task
    task = {k: list(v) if isinstance(v, tuple) else str(v) if k == "dtype" else v for k, v in bound.arguments.items()}
    return {
        "task": task,
        "step_sizes": [float(h) for h in step_sizes],
        "solvers": list(solvers),
        "steps": sorted(set(int(k) for k in steps)),
        "lam": float(lam),
        "cg_steps": int(cg_steps),
        "truncate": int(truncate),
    }


def save(data: HorizonData, settings: dict, path=SHIPPED) -> None:
    """What a view reads of ``data`` (each sweep's losses along the loop, errors, model curves, the methods'
    seconds), with the ``settings`` that made it; not the states, gradients and exact gradients (megabytes that
    no view reads: a loaded build has ``states`` of zero width and empty ``grads`` and ``exact``)."""
    from ..io import save_torch_atomic

    sweeps = {
        key: {"support_curve": sw.support_curve, "query_curve": sw.query_curve, "seconds": sw.seconds}
        for key, sw in data.sweeps.items()
    }
    save_torch_atomic(
        {"settings": settings, "sweeps": sweeps, "errors": data.errors, "curves": data.curves, "seconds": data.seconds},
        path,
    )


def shipped(settings: dict, path=SHIPPED) -> HorizonData | None:
    """The shipped build when it was made with exactly ``settings`` (see :func:`save`), else None."""
    if not Path(path).exists():
        return None
    blob = torch.load(path, weights_only=True)
    if blob["settings"] != settings:
        return None
    task = horizon.horizon_task(**{**settings["task"], "dtype": getattr(torch, settings["task"]["dtype"][6:])})
    steps = tuple(settings["steps"])
    sweeps = {
        key: horizon.HorizonLines(
            key[0],
            key[1],
            steps,
            torch.empty(len(sw["support_curve"]), 0),
            sw["support_curve"],
            sw["query_curve"],
            {},
            sw["seconds"],
        )
        for key, sw in blob["sweeps"].items()
    }
    return HorizonData(
        task,
        steps,
        tuple(settings["step_sizes"]),
        tuple(settings["solvers"]),
        sweeps,
        {},
        blob["errors"],
        blob["curves"],
        blob["seconds"],
        source="shipped",
    )


def build(
    task_options: dict | None = None,
    step_sizes=(0.01, 0.03),
    solvers=FIXED_SOLVERS,
    steps=horizon.log_steps(1000),
    lam: float = 2.0,
    cg_steps: int = 5,
    truncate: int = 5,
    workers: int | None = None,
) -> HorizonData:
    """:func:`compute`, or the shipped build where it was made with the same settings (notebook 02's default:
    loaded in a second instead of computed in minutes)."""
    settings = _settings(dict(task_options or {}), step_sizes, solvers, steps, lam, cg_steps, truncate)
    return shipped(settings) or compute(task_options, step_sizes, solvers, steps, lam, cg_steps, truncate, workers)


def main() -> int:
    """``python -m amaml_lab.teach.horizons_data``: compute notebook 02's default build here and ship it (SHIPPED)."""
    step_sizes, solvers, steps = (0.01, 0.03), FIXED_SOLVERS, horizon.log_steps(1000)
    data = compute({}, step_sizes, solvers, steps, workers=1)
    save(data, _settings({}, step_sizes, solvers, steps, 2.0, 5, 5))
    print(f"wrote {SHIPPED} ({SHIPPED.stat().st_size / 1e6:.2f} MB) after {data.seconds:.0f} s")
    return 0


def summary_numbers(data: HorizonData) -> dict:
    """The numbers notebook 02's notes cite, read from the explorer's data (rk4 at h = 0.01 unless named):
    losses along the loop, each line's error range, back-solving's blow-up, the first-order cosines at T = 10,
    the grid scheme's time against the continuous adjoint's and its instability at h = 0.03."""
    main, steps = (0.01, "rk4"), list(data.steps)
    sweep, err = data.sweeps[main], data.errors[main]
    at = {T: steps.index(round(T / 0.01)) for T in (0.5, 1, 10)}
    out = {f"support loss at T = {T:g}": float(sweep.support_curve[round(T / 0.01)]) for T in (0.5, 2, 10)}
    out["query loss at T = 10"] = float(sweep.query_curve[1000])
    for m in ("maml", "adjoint", "grid", "imaml"):
        out[f"{m}: smallest error"], out[f"{m}: largest error"] = min(err[m][0]), max(err[m][0])
    for h in (0.01, 0.03):
        euler = data.errors[(h, "euler")]["maml"][0]
        out[f"euler h = {h:g}, maml: smallest error"], out[f"euler h = {h:g}, maml: largest error"] = (
            min(euler),
            max(euler),
        )
    for T in (0.5, 1, 10):
        out[f"backsolve: error at T = {T:g}"] = err["backsolve"][0][at[T]]
    for m in ("fomaml", "reptile", "truncated"):
        out[f"{m}: cosine at T = 10"] = err[m][1][at[10]]
    out["grid / adjoint seconds"] = sweep.seconds["grid"] / sweep.seconds["adjoint"]
    for solver in ("midpoint", "rk4"):
        out[f"{solver} h = 0.03, grid: error at 1,000 steps"] = data.errors[(0.03, solver)]["grid"][0][
            steps.index(1000)
        ]
    return out


if __name__ == "__main__":
    sys.exit(main())
