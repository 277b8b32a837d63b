"""The horizon experiment's results (``results/run_horizon.sh``): when does a longer inner loop pay off?

Run folders live at ``ROOT/<domain>-<shots>-<query>/reg<r>/<method>-<N>/seed<s>/``: theta meta-trained
through N inner steps (Euler, 0.01), evaluated on the same 100 meta-test tasks after its own loop
(``inner``), after N_test steps of that loop for each test horizon (``adapt<N_test>``; 0 is ``theta``)
and after 5,000 Adam iterations (``finetuned``).  Everything here reads those folders; nothing trains.

Two kinds of interval, never mixed: a *paired* difference between two runs of the same seed on the same
tasks (mean ± 1.96 s.e. of the 100 per-task differences) covers the choice of meta-test tasks only; the
*seeds* (each its own initialisation and meta-training episodes) are shown one by one, and a claim holds
across seeds only when every seed's paired interval says so.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

from .rundir import per_task
from .stats import paired_runs

STEP_SIZE = 0.01  # results/run_horizon.sh's Euler step
_RUN = re.compile(r"(?P<method>[a-z]+)-(?P<steps>\d+)")


def load(root) -> list[dict]:
    """Every finished run under ``root``: dicts with setting, reg, method, steps, seed, summary and tasks."""
    records = []
    for path in sorted(Path(root).glob("*/reg*/*-*/seed*/summary.json")):
        summary = json.loads(path.read_text())
        tasks = per_task(path.parent)
        match = _RUN.fullmatch(path.parent.parent.name)
        if summary.get("status") != "done" or tasks is None or match is None:
            continue
        records.append(
            {
                "setting": path.parents[3].name,
                "reg": float(path.parents[2].name[3:]),
                "method": match["method"],
                "steps": int(match["steps"]),
                "seed": int(path.parent.name[4:]),
                "summary": summary,
                "tasks": tasks,
                "folder": path.parent,
            }
        )
    return records


def committed(root=None) -> list[dict]:
    """The committed horizon experiment (``results/horizon`` of the source tree), or FileNotFoundError saying so."""
    from .committed import RESULTS

    folder = Path(root or RESULTS / "horizon")
    records = load(folder) if folder.is_dir() else []
    if not records:
        raise FileNotFoundError(
            f"no finished horizon runs under {folder}: they ship with the source tree (a clone"
            " of the repository) and come from results/run_horizon.sh"
        )
    return records


def settings(records) -> list[tuple]:
    """The (setting, reg) pairs present, in order."""
    return sorted({(r["setting"], r["reg"]) for r in records})


def select(
    records, setting: str, reg: float, method: str | None = None, steps: int | None = None, seed: int | None = None
) -> list[dict]:
    return [
        r
        for r in records
        if r["setting"] == setting
        and r["reg"] == reg
        and (method is None or r["method"] == method)
        and (steps is None or r["steps"] == steps)
        and (seed is None or r["seed"] == seed)
    ]


def measure_at(n_test: int) -> str:
    """The tasks.csv column of the error after ``n_test`` inner steps."""
    return "theta" if n_test == 0 else f"adapt{n_test}"


def task_mean(record: dict, measure: str) -> float:
    return statistics.fmean(record["tasks"][measure])


def seeds_of(records, setting, reg, method, steps) -> dict:
    """{seed: record} of one (method, N) in one setting."""
    return {r["seed"]: r for r in select(records, setting, reg, method, steps)}


def evaluated_horizons(records) -> list[int]:
    """The test horizons every one of ``records`` was evaluated at (0, theta itself, always)."""
    common = None
    for r in records:
        mine = {int(k[5:]) for k in r["tasks"] if k.startswith("adapt")}
        common = mine if common is None else common & mine
    return [0, *sorted(common or ())]


def scale(records) -> dict:
    """What the numbers are over: meta-test tasks, Adam iterations, step size (the first record's)."""
    r = records[0]
    return {
        "tasks": len(r["tasks"]["inner"]),
        "adam": r["summary"]["config"]["eval_steps"],
        "step_size": r["summary"]["config"]["step_size"],
    }


def cross_matrix(records, setting: str, reg: float, method: str = "maml") -> dict:
    """The cross-evaluation: rows theta trained at N (``train``), columns N_test (``test``); ``mean`` is the
    mean over seeds of each seed's mean nRMSE over tasks, ``low``/``high`` the seeds' extremes, ``seeds`` how many."""
    mine = select(records, setting, reg, method)
    trained = sorted({r["steps"] for r in mine})
    horizons = evaluated_horizons(mine)
    out = {"train": trained, "test": horizons, "mean": [], "low": [], "high": [], "seeds": []}
    for n in trained:
        runs = list(seeds_of(records, setting, reg, method, n).values())
        per_seed = [[task_mean(r, measure_at(m)) for r in runs] for m in horizons]
        out["mean"].append([statistics.fmean(v) for v in per_seed])
        out["low"].append([min(v) for v in per_seed])
        out["high"].append([max(v) for v in per_seed])
        out["seeds"].append(len(runs))
    return out


def paired_by_seed(
    records, setting: str, reg: float, a: tuple, b: tuple, measure_a: str, measure_b: str | None = None
) -> dict:
    """Run ``b`` minus run ``a`` (each ``(method, N)``) seed by seed, paired over the same tasks:
    {seed: paired dict}; only seeds where both finished.  ``measure_b`` defaults to ``measure_a``."""
    runs_a, runs_b = seeds_of(records, setting, reg, *a), seeds_of(records, setting, reg, *b)
    out = {}
    for seed in sorted(set(runs_a) & set(runs_b)):
        ra, rb = runs_a[seed]["tasks"], runs_b[seed]["tasks"]
        mb = measure_b or measure_a
        if measure_a != mb:  # compare two columns: rename one so paired_runs pairs them
            rb = {**rb, measure_a: rb[mb]}
        out[seed] = paired_runs(ra, rb, measure_a)
    return out


def agreement(by_seed: dict) -> str:
    """'lower' when every seed's paired interval lies below zero, 'higher' when above, else 'unresolved'."""
    if not by_seed:
        return "unresolved"
    if all(p["difference"] + p["ci95"] < 0 for p in by_seed.values()):
        return "lower"
    if all(p["difference"] - p["ci95"] > 0 for p in by_seed.values()):
        return "higher"
    return "unresolved"


def _fmt_pairs(by_seed: dict) -> str:
    return "; ".join(f"{p['difference']:+.3f} ± {p['ci95']:.3f}" for _, p in sorted(by_seed.items())) or "-"


def own_loop_table(records, setting: str, reg: float, base: tuple = ("maml", 10)) -> str:
    """Each trained run's error after its own inner loop, seed by seed, its difference to ``base`` paired per seed,
    the 5,000 Adam iterations' error, and the cost of a meta-step."""
    size = scale(select(records, setting, reg))
    lines = [
        f"**{setting}, reg {reg:g}: after each run's own inner loop** (nRMSE, mean over {size['tasks']}"
        f" meta-test tasks, seed by seed; paired: minus {base[0]}-{base[1]}'s on the same tasks in the same seed,"
        " ± 1.96 s.e. over tasks)",
        "",
        "| run | T = N·h | own loop, per seed | paired vs " + f"{base[0]}-{base[1]}, per seed | all seeds"
        f" | {size['adam']:,} Adam its (mean of seeds) | s / meta-step |",
        "|---|---:|---|---|---|---:|---:|",
    ]
    keys = sorted(
        {(r["method"], r["steps"]) for r in select(records, setting, reg)}, key=lambda k: (k[0] != "maml", k[1], k[0])
    )
    for method, n in keys:
        runs = seeds_of(records, setting, reg, method, n)
        own = ", ".join(f"{task_mean(r, 'inner'):.3f}" for _, r in sorted(runs.items()))
        pairs = paired_by_seed(records, setting, reg, base, (method, n), "inner") if (method, n) != base else {}
        adam = statistics.fmean(task_mean(r, "finetuned") for r in runs.values())
        cost = statistics.fmean(r["summary"]["seconds_per_meta_step"] for r in runs.values())
        verdict = agreement(pairs) if pairs else "(reference)"
        lines.append(
            f"| {method}-{n} | {n * size['step_size']:g} | {own} | {_fmt_pairs(pairs) if pairs else '-'} | {verdict}"
            f" | {adam:.3f} | {cost:.3f} |"
        )
    return "\n".join(lines) + "\n"


def cross_table(records, setting: str, reg: float, method: str = "maml") -> str:
    """The cross-evaluation matrix as Markdown: mean over seeds (the seeds' range in brackets)."""
    m = cross_matrix(records, setting, reg, method)
    if not m["train"]:
        return ""
    lines = [
        f"**{setting}, reg {reg:g}: θ trained through N steps, adapted with N_test steps** (nRMSE, mean over"
        f" {scale(select(records, setting, reg))['tasks']} tasks, mean of the seeds with their range; in bold"
        " each run's own loop)",
        "",
        "| trained N (seeds) | " + " | ".join(f"N_test {n}" for n in m["test"]) + " |",
        "|---|" + "---:|" * len(m["test"]),
    ]
    for i, n in enumerate(m["train"]):
        cells = []
        for j, t in enumerate(m["test"]):
            cell = f"{m['mean'][i][j]:.3f}"
            if m["seeds"][i] > 1:
                cell += f" ({m['low'][i][j]:.3f}–{m['high'][i][j]:.3f})"
            cells.append(f"**{cell}**" if t == n else cell)
        lines.append(f"| {n} ({m['seeds'][i]}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def long_test_table(records, setting: str, reg: float, n_test: int = 1000, base_train: int = 10) -> str:
    """Given the same long loop at test time (``n_test`` steps), theta trained at N minus theta trained at
    ``base_train``, paired per seed: does training through the long horizon matter, or only adapting longer?"""
    if n_test not in evaluated_horizons(select(records, setting, reg, "maml")):
        return ""
    lines = [
        f"**{setting}, reg {reg:g}: every θ adapted with the same {n_test} steps at test time**, minus θ trained"
        f" at N = {base_train} (paired per seed over the same tasks, ± 1.96 s.e.)",
        "",
        "| trained N | paired, per seed | all seeds |",
        "|---|---|---|",
    ]
    for n in sorted({r["steps"] for r in select(records, setting, reg, "maml")} - {base_train}):
        pairs = paired_by_seed(records, setting, reg, ("maml", base_train), ("maml", n), measure_at(n_test))
        lines.append(f"| {n} | {_fmt_pairs(pairs)} | {agreement(pairs)} |")
    return "\n".join(lines) + "\n"


def study_tables(records) -> str:
    """Every table of the study, setting by setting (what make_figures.py writes to results/horizon/tables.md)."""
    parts = []
    for setting, reg in settings(records):
        parts += [
            own_loop_table(records, setting, reg),
            cross_table(records, setting, reg),
            long_test_table(records, setting, reg),
        ]
    return "\n".join(parts)
