"""Exact or first-order through a long loop? (``results/run_directions.sh``): choosing each method's meta-learning
rate on meta-validation functions, and the horizon experiment's reg-0 cells continued to 5,000 meta-steps.

Run folders, under the horizon experiment's root (``results/horizon``):

* ``SETTING/reg0/METHOD-N/seedS``: the committed 1,000-meta-step runs, all at Adam 1e-3;
* ``lr/SETTING/METHOD-1000/lr<RATE>/seedS``: 1,000-meta-step runs at another rate (the rate's selection, and the
  first 1,000 meta-steps of a cell whose chosen rate is not 1e-3);
* ``long/SETTING/METHOD-N/lr<RATE>/seedS``: the same runs continued to 5,000 meta-steps.

The rule (fixed before any run): at N = 1,000, seed 0, the rate with the lowest mean nRMSE after the run's own loop
on 100 meta-validation functions (``validation.json``, from ``amaml-lab validate``); a diverged run scores worst;
a best rate at an edge of the grid adds the next rate of :data:`LADDER` that way.  Everything here reads folders;
nothing trains.  ``python -m amaml_lab.studies.directions grid|chosen ROOT SETTING METHOD`` prints the rates to run or
the rate chosen (nothing while the choice is open): what the script asks.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from . import payoff as study
from .rundir import load_run, per_task

LADDER = ("1e-4", "3e-4", "1e-3", "3e-3", "1e-2", "3e-2", "1e-1")  # Adam learning rates, about half a decade apart
GRID = ("1e-3", "3e-3", "1e-2")  # the rates every method is tried at
COMMITTED_RATE = "1e-3"  # the rate of results/run_horizon.sh's runs
SELECTION_STEPS = 1000  # N of the selection runs, and their meta-steps


DIAGNOSED = ("maml-10", "maml-1000", "fomaml-1000", "reptile-1000")  # the thetas results/diagnose_directions.py reads
# the remedy (results/run_directions.sh): exact maml-1000 with each meta-step's gradient normalised before Adam, at
# maml's chosen rate; its folders are long/SETTING/maml-normalized-1000/lr<RATE>/seedS
REMEDY = ("maml-normalized", 1000)


def diagnosis_path(root, setting: str, run: str, rate: str, step: int, seed: int = 0) -> Path:
    """Where results/diagnose_directions.py writes the diagnosis of RUN's theta at meta-step ``step``."""
    return Path(root) / "diagnosis" / setting / f"{run}-lr{rate}-seed{seed}-step{step}.json"


def _read_diagnoses(root, setting: str, where: dict) -> dict:
    """{key: diagnosis} for each key's (run, rate, step) of ``where`` that was diagnosed, in its order."""
    paths = {key: diagnosis_path(root, setting, *at) for key, at in where.items()}
    return {key: json.loads(path.read_text()) for key, path in paths.items() if path.exists()}


def diagnoses(root, setting: str, step: int = SELECTION_STEPS, runs=DIAGNOSED, rate: str = COMMITTED_RATE) -> dict:
    """{run: its diagnosis} at meta-step ``step`` for every run of ``runs`` diagnosed there (by default the committed
    1,000-meta-step runs, all at Adam 1e-3), in the order of ``runs``."""
    return _read_diagnoses(root, setting, {run: (run, rate, step) for run in runs})


def diagnoses_along(root, setting: str, run: str, rate: str, steps=range(2000, 5001, 1000)) -> dict:
    """{meta-step: diagnosis} of RUN's snapshots along its continuation at ``rate`` (seed 0), those diagnosed."""
    return _read_diagnoses(root, setting, {step: (run, rate, step) for step in steps})


def base_method(run_method: str) -> str:
    """The kit's method behind a run's name: ``maml`` for the remedy's ``maml-normalized``."""
    return run_method.split("-")[0]


def scale_rows(diagnoses: dict) -> list[dict]:
    """Per diagnosed theta ({label: diagnosis} with a "scale"): the N its run trains through, the largest batch's
    norm over the median for the exact and the Reptile direction there, Adam's second moment over the root mean
    square of the run's own direction (``sqrt_v_over_rms``) and Adam's effective step."""
    rows = []
    for label, d in diagnoses.items():
        scale = d.get("scale")
        if scale is None:
            continue
        own = next(
            (v["sqrt_v_over_rms"] for v in scale.values() if isinstance(v, dict) and "sqrt_v_over_rms" in v), None
        )
        rows.append(
            {
                "theta": label,
                "steps": scale["steps"],
                "exact": scale["exact"]["max_over_median"],
                "reptile": scale["reptile"]["max_over_median"],
                "sqrt_v_over_rms": own,
                "adam_step": d.get("adam_step"),
            }
        )
    return rows


def scale_table(diagnoses: dict) -> str:
    """:func:`scale_rows` as Markdown."""

    def cell(value, digits):
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [
        "| θ of | its N | largest / median batch norm: exact | : Reptile | Adam's √v̂ / rms of its own direction"
        " | Adam's step |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in scale_rows(diagnoses):
        lines.append(
            f"| {r['theta']} | {r['steps']:,} | {cell(r['exact'], 1)} | {cell(r['reptile'], 1)}"
            f" | {cell(r['sqrt_v_over_rms'], 1)} | {cell(r['adam_step'], 2)} |"
        )
    return "\n".join(lines) + "\n"


def first_folder(root, setting: str, method: str, steps: int, rate: str, seed: int) -> Path:
    """The folder of a cell's first 1,000 meta-steps: the committed run at 1e-3, else under ``lr/``."""
    root = Path(root)
    if rate == COMMITTED_RATE:
        return root / setting / "reg0" / f"{method}-{steps}" / f"seed{seed}"
    return root / "lr" / setting / f"{method}-{steps}" / f"lr{rate}" / f"seed{seed}"


def long_folder(root, setting: str, method: str, steps: int, rate: str, seed: int) -> Path:
    """The folder of a cell's run continued to 5,000 meta-steps."""
    return Path(root) / "long" / setting / f"{method}-{steps}" / f"lr{rate}" / f"seed{seed}"


def validation_score(folder) -> float | None:
    """A selection run's score: mean own-loop nRMSE on the meta-validation functions at 1,000 meta-steps; inf for a
    diverged run; None while it is not there yet."""
    folder = Path(folder)
    summary = folder / "summary.json"
    if summary.exists() and json.loads(summary.read_text()).get("status") == "diverged":
        return math.inf
    path = folder / "validation.json"
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    if result["meta_step"] != SELECTION_STEPS:
        raise ValueError(
            f"{path} scores meta-step {result['meta_step']}, not {SELECTION_STEPS}: validate the run"
            " at the end of its selection run"
        )
    return result["inner_mean"]


def scores(root, setting: str, method: str) -> dict:
    """{rate: score or None} over the grid as far as the rule has grown it."""
    grid, out = list(GRID), {}
    while True:
        for rate in grid:
            if rate not in out:
                out[rate] = validation_score(first_folder(root, setting, method, SELECTION_STEPS, rate, 0))
        if any(v is None for v in out.values()):
            return out
        best = min(grid, key=lambda r: out[r])
        i = LADDER.index(best)
        if best == grid[0] and i > 0:
            grid.insert(0, LADDER[i - 1])
        elif best == grid[-1] and i + 1 < len(LADDER):
            grid.append(LADDER[i + 1])
        else:
            return {r: out[r] for r in grid}


def chosen_rate(root, setting: str, method: str) -> str | None:
    """The rate the rule chooses, or None while a run it needs is missing."""
    result = scores(root, setting, method)
    if any(v is None for v in result.values()):
        return None
    return min(result, key=lambda r: result[r])


def load_long(root) -> list[dict]:
    """Every finished run under ``ROOT/long``: :func:`amaml_lab.studies.payoff.load`'s records (setting, reg 0,
    method, steps, seed, summary, tasks, folder) with ``rate`` and ``evals`` (evals.csv's rows), so that the horizon
    study's pairing and tables read them."""
    records = []
    for path in sorted(Path(root).glob("long/*/*-*/lr*/seed*/summary.json")):
        folder = path.parent
        run = load_run(folder)
        tasks = per_task(folder)
        if run["summary"].get("status") != "done" or tasks is None:
            continue
        method, steps = folder.parents[1].name.rsplit("-", 1)
        records.append(
            {
                "setting": folder.parents[2].name,
                "reg": 0.0,
                "method": method,
                "steps": int(steps),
                "rate": folder.parent.name[2:],
                "seed": int(folder.name[4:]),
                "summary": run["summary"],
                "tasks": tasks,
                "folder": folder,
                "evals": run["evals"],
            }
        )
    return records


def progress(root) -> list[dict]:
    """Where every run under ``ROOT/long`` stands: setting, run, rate, seed, meta-steps done (the last checkpoint's,
    from metrics.csv), status."""
    rows = []
    for folder in sorted(p for p in Path(root).glob("long/*/*-*/lr*/seed*") if p.is_dir()):
        summary = folder / "summary.json"
        status = json.loads(summary.read_text()).get("status") if summary.exists() else "copied"
        metrics = folder / "metrics.csv"
        done = len(metrics.read_text().splitlines()) - 1 if metrics.exists() else SELECTION_STEPS
        rows.append(
            {
                "setting": folder.parents[2].name,
                "run": folder.parents[1].name,
                "rate": folder.parent.name[2:],
                "seed": int(folder.name[4:]),
                "meta_steps": done,
                "status": status,
            }
        )
    return rows


def curve(folder, measure: str = "inner") -> tuple[list, list]:
    """(meta-steps, mean over the meta-test tasks of ``measure``) along training, from a run's evals.csv (a run
    still going included)."""
    rows = load_run(folder)["evals"] if (Path(folder) / "summary.json").exists() else []
    return [int(r["meta_step"]) for r in rows], [r[f"{measure}_mean"] for r in rows]


def verdict(records, setting: str, exact=("maml", 1000), first_order=("reptile", 1000), measure: str = "inner") -> dict:
    """First-order minus exact, paired per seed over the same meta-test tasks after the own loop: {"by_seed",
    "agreement"} ('lower': every seed's interval below zero, the first-order direction ahead; 'higher': the exact
    one ahead; else 'unresolved')."""
    by_seed = study.paired_by_seed(records, setting, 0.0, exact, first_order, measure)
    return {"by_seed": by_seed, "agreement": study.agreement(by_seed)}


def _score_cell(root, setting: str, method: str, rate: str, score) -> str:
    if score is None:
        return "pending"
    if score == math.inf:
        return "diverged"
    path = first_folder(root, setting, method, SELECTION_STEPS, rate, 0) / "validation.json"
    return f"{score:.3f} ± {json.loads(path.read_text())['inner_se']:.3f}"


def rate_table(root, settings=("CosMixture-50-50", "Sinusoid-10-10"), methods=("maml", "fomaml", "reptile")) -> str:
    """The rate selection as Markdown: per setting and method (N = 1,000, seed 0), the mean own-loop nRMSE on the
    meta-validation functions after 1,000 meta-steps at each rate of the grid (± its s.e. over the functions), and
    the rate the rule chose ("pending": a run or its validation not there yet; "open": the choice waits for one)."""
    rates = [r for r in LADDER if any(r in scores(root, s, m) for s in settings for m in methods)]
    lines = [
        "| setting | run | " + " | ".join(f"Adam {r}" for r in rates) + " | chosen |",
        "|---|---|" + "---:|" * len(rates) + "---|",
    ]
    for setting in settings:
        for method in methods:
            found = scores(root, setting, method)
            cells = [_score_cell(root, setting, method, rate, found[rate]) if rate in found else "" for rate in rates]
            chosen = chosen_rate(root, setting, method)
            lines.append(
                f"| {setting} | {method}-{SELECTION_STEPS} | " + " | ".join(cells) + f" | {chosen or 'open'} |"
            )
    return "\n".join(lines) + "\n"


PAIRS = (  # (setting, a, b): b minus a after each run's own loop, the headline pair and the remedy against both
    ("CosMixture-50-50", ("maml", 1000), ("reptile", 1000)),
    ("Sinusoid-10-10", ("maml", 1000), ("reptile", 1000)),
    ("CosMixture-50-50", ("maml", 1000), REMEDY),
    ("CosMixture-50-50", ("reptile", 1000), REMEDY),
)


def pairs_table(root, seeds=(0, 1, 2), pairs=PAIRS) -> str:
    """The finished runs at 5,000 meta-steps, as Markdown: per pair and seed, both runs' mean nRMSE after their own
    loop on the same 100 meta-test tasks and b minus a, paired over them (± the half-width of its 95 % interval
    over the tasks; on how many tasks b is better); "every seed": the :func:`verdict` rule over the seeds finished
    ("-": a run not finished yet)."""
    records = load_long(root)
    lines = [
        "| setting | b minus a | " + " | ".join(f"seed {s}" for s in seeds) + " | every seed finished |",
        "|---|---|" + "---|" * (len(seeds) + 1),
    ]
    for setting, a, b in pairs:
        found = verdict(records, setting, exact=a, first_order=b)
        runs = {name: study.seeds_of(records, setting, 0.0, *run) for name, run in (("a", a), ("b", b))}
        cells = []
        for seed in seeds:
            p = found["by_seed"].get(seed)
            if p is None:
                cells.append("-")
                continue
            means = [study.task_mean(runs[name][seed], "inner") for name in ("b", "a")]
            cells.append(
                f"{means[0]:.3f} − {means[1]:.3f} = {p['difference']:+.3f} ± {p['ci95']:.3f}"
                f" ({p['better']}/{p['tasks']})"
            )
        label = f"{b[0]}-{b[1]} minus {a[0]}-{a[1]}"
        lines.append(
            f"| {setting} | {label} | " + " | ".join(cells) + f" | {found['agreement']} in {len(found['by_seed'])} |"
        )
    return "\n".join(lines) + "\n"


def progress_table(root) -> str:
    """Where the 5,000-meta-step runs stand, as Markdown: one row per run and rate, the meta-steps each seed has
    reached (its last checkpoint's)."""
    rows = progress(root)
    if not rows:
        return "No run under long/ yet.\n"
    cells: dict = {}
    for r in rows:
        cells.setdefault((r["setting"], r["run"], r["rate"]), {})[r["seed"]] = r["meta_steps"]
    seeds = sorted({r["seed"] for r in rows})
    lines = [
        "| setting | run | Adam | " + " | ".join(f"seed {s}" for s in seeds) + " |",
        "|---|---|---|" + "---:|" * len(seeds),
    ]
    for (setting, run, rate), done in sorted(cells.items()):
        lines.append(
            f"| {setting} | {run} | {rate} | " + " | ".join(f"{done[s]:,}" if s in done else "-" for s in seeds) + " |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 4 or argv[0] not in ("grid", "chosen"):
        print("usage: python -m amaml_lab.studies.directions grid|chosen ROOT SETTING METHOD", file=sys.stderr)
        return 2
    what, root, setting, method = argv
    if what == "grid":
        print(" ".join(scores(root, setting, method)))
    else:
        print(chosen_rate(root, setting, method) or "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
