"""The figures and tables of results/README.md from the run folders:
python results/make_figures.py [RESULTS_DIR] [--tables]

For each setting under results/cpu-long: the meta-test nRMSE against meta-steps (after each method's own inner
loop, and after the reference's Adam fine-tuning) and the fine-tuning curves at the end of the 1,000-step runs;
for CosMixture 50/50 also the 5,000-step runs; and each setting's table.md, with the paired differences of the
runs that ended at the same meta-step (from their tasks.csv).  Plotly draws the figures and Debian's Chromium
(headless) saves each as a PNG under results/figures/.  The Omniglot tables under results/omniglot-cpu are
rebuilt from their runs' folders, with the paired column; the horizon experiment's tables go to
results/horizon/tables.md and its figures to results/figures/horizon-*.png.  ``--tables`` writes the tables only.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from amaml_lab import measure, viz
from amaml_lab.studies import stats
from amaml_lab.studies.rundir import load_run, per_task
from amaml_lab.viz import style as viz_style

ORDER = ("adjoint-100", "maml-100", "maml-10", "imaml", "fomaml", "reptile", "maml-10-reference-protocol")


def runs_in(folder: Path, names=ORDER, at_steps: int | None = None) -> dict:
    runs = {}
    for name in names:
        path = folder / name
        if (path / "summary.json").exists() and (path / "metrics.csv").exists():
            run = load_run(path)
            if at_steps is not None:
                run["evals"] = [e for e in run["evals"] if e["meta_step"] <= at_steps]
            runs[name] = run
    return runs


def save(fig, path: Path, width=1100, height=450) -> None:
    fig.update_layout(width=width, height=height)
    path.parent.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("make_figures.py saves PNGs through Chromium: apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "figure.html"
        fig.write_html(
            page,
            include_plotlyjs=True,
            full_html=True,  # offline: plotly.js inline
            config={"displayModeBar": False, "staticPlot": True},
        )
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={tmp}/profile",
                f"--screenshot={path}",
                f"--window-size={width},{height}",
                "--virtual-time-budget=5000",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
        )
    print(f"wrote {path}")


def table(runs: dict, step: int) -> str:
    """Meta-test nRMSE at meta-step ``step`` from evals.csv: mean ± s.e. (the reference's std in brackets)."""
    cols = [
        ("theta", "at θ"),
        ("inner", "own inner loop"),
        ("ft10", "10 Adam its"),
        ("ft100", "100 Adam its"),
        ("finetuned", "1,000 Adam its"),
    ]
    lines = ["| run | inner steps | " + " | ".join(c[1] for c in cols) + " |", "|---|---:|" + "---:|" * len(cols)]
    for label, r in runs.items():
        row = next((e for e in r["evals"] if e["meta_step"] == step), None)
        if row is None:
            continue
        cells = [f"{row[f'{k}_mean']:.4f} ± {row[f'{k}_se']:.4f} ({row[f'{k}_std']:.3f})" for k, _ in cols]
        lines.append(f"| {label} | {r['summary']['config']['inner_steps']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def final_table(runs: dict) -> str:
    """Each run's final θ after fine-tuning to the end (5,000 Adam iterations where re-evaluated): mean ± s.e.
    over the 100 tasks (std), and the best point of the fine-tuning curve with its iteration."""
    cols = [
        ("nrmse_at_theta", "at θ"),
        ("nrmse_inner", "own inner loop"),
        ("nrmse_ft1000", "1,000 Adam its"),
        ("nrmse", "fine-tuned to the end"),
    ]
    lines = [
        "| run | meta-steps | Adam its | " + " | ".join(c[1] for c in cols) + " | best on the curve (iteration) |",
        "|---|---:|---:|" + "---:|" * (len(cols) + 1),
    ]
    for name, r in runs.items():
        f = r["summary"]["final"]
        cells = [
            f"{f[k]:.4f} ± {f[k + '_se']:.4f} ({f[k + '_std']:.3f})" if k + "_se" in f and k in f else "-"
            for k, _ in cols
        ]
        lines.append(
            f"| {name} | {r['summary']['meta_steps']:,} | {f['eval_steps']:,} | "
            + " | ".join(cells)
            + f" | {f['nrmse_best']:.4f} ({f['best_iteration']:,}) |"
        )
    return "\n".join(lines) + "\n"


def paired_table(setting: Path, names=ORDER[:-1]) -> str:
    """Each run's difference to the first run that ended at the same meta-step, task by task (tasks.csv)."""
    cols = [("inner", "own inner loop"), ("ft1000", "1,000 Adam its"), ("finetuned", "")]
    groups = {}
    for name in names:
        summary_path = setting / name / "summary.json"
        tasks = per_task(setting / name)
        if summary_path.exists() and tasks:
            steps = json.loads(summary_path.read_text())["meta_steps"]
            groups.setdefault(steps, []).append((name, tasks))
    text = ""
    for steps, runs in sorted(groups.items()):
        if len(runs) < 2:
            continue
        ref, base = runs[0]
        text += (
            f"\n**{setting.name}, the runs that ended at meta-step {steps:,}, paired: nRMSE minus {ref}'s on the same"
            f" 100 tasks** (mean ± 1.96 s.e. of the differences; on how many tasks the run does better)\n\n"
        )
        longest = max(_fine_tuned(setting / n) for n, _ in runs)
        shown = [
            c if c[0] != "finetuned" else (c[0], f"{longest:,} Adam its")
            for c in cols
            if c[0] != "finetuned" or longest > 1000
        ]
        text += "| run | " + " | ".join(c[1] for c in shown) + " |\n|---|" + "---:|" * len(shown) + "\n"
        for name, tasks in runs[1:]:
            cells = []
            for key, _ in shown:
                column = "finetuned" if key == "ft1000" and _fine_tuned(setting / ref) == 1000 else key
                other = "finetuned" if key == "ft1000" and _fine_tuned(setting / name) == 1000 else key
                mixed = key == "finetuned" and _fine_tuned(setting / ref) != _fine_tuned(setting / name)
                if column not in base or other not in tasks or mixed:
                    cells.append("-")
                    continue
                try:
                    p = stats.paired_runs(base, {**tasks, column: tasks[other]}, column)
                except ValueError:  # one run re-evaluated (task ids recorded), the other not yet
                    cells.append("not yet re-evaluated")
                    continue
                cells.append(stats.format_paired(p, counts=""))
            text += f"| {name} | " + " | ".join(cells) + " |\n"
    return text


def _fine_tuned(folder: Path) -> int:
    """The Adam iterations a run's ``finetuned`` column holds (1,000 before re-evaluation, 5,000 after)."""
    return json.loads((folder / "summary.json").read_text())["config"]["eval_steps"]


def seeds_table(folder: Path, base: str = "adjoint-100", others=("maml-100", "maml-10")) -> str:
    """The headline comparison seed by seed (cpu-long/*-seeds/RUN/seedS): each run's own-loop and fine-tuned
    nRMSE, and its difference to ``base`` paired over the same tasks within each seed."""
    cols = [("inner", "own inner loop"), ("ft1000", "1,000 Adam its"), ("finetuned", "5,000 Adam its")]
    seeds = sorted({p.name for p in folder.glob("*/seed*") if (p / "tasks.csv").exists()})
    runs = {
        (n, sd): per_task(folder / n / sd)
        for n in (base, *others)
        for sd in seeds
        if (folder / n / sd / "tasks.csv").exists()
    }
    lines = [
        f"**{folder.name}: the headline runs seed by seed** (1,000 meta-steps; nRMSE, mean over 100 tasks; paired:"
        f" minus {base}'s in the same seed, ± 1.96 s.e. over tasks — each interval covers the tasks only, the"
        " seeds show the spread of meta-training)",
        "",
        "| run | seed | " + " | ".join(c[1] for c in cols) + " | " + " | ".join(f"paired, {c[1]}" for c in cols) + " |",
        "|---|---|" + "---:|" * (2 * len(cols)),
    ]
    for name in (base, *others):
        for sd in seeds:
            t = runs.get((name, sd))
            if t is None:
                continue
            means = [f"{sum(t[k]) / len(t[k]):.4f}" for k, _ in cols]
            ref = runs.get((base, sd))
            pairs = [
                stats.format_paired(stats.paired_runs(ref, t, k), counts="") if ref and name != base else "-"
                for k, _ in cols
            ]
            lines.append(f"| {name} | {sd[4:]} | " + " | ".join(means) + " | " + " | ".join(pairs) + " |")
    return "\n".join(lines) + "\n"


def omniglot_tables(root: Path) -> None:
    """results/omniglot-cpu/*/table.md rebuilt from the runs' folders (the order of table.csv), paired column added."""
    import csv

    for folder in sorted((root / "omniglot-cpu").glob("*/table.csv")):
        with open(folder, newline="") as f:
            methods = [r["method"] for r in csv.DictReader(f)]
        base = folder.parent
        summaries = [json.loads((base / m / "summary.json").read_text()) for m in methods]
        md = stats.markdown_table(summaries, [per_task(base / m) for m in methods])
        (base / "table.md").write_text(md)
        print(f"wrote {base / 'table.md'}")


MEMORY_BUDGET_MB = 2048  # results/run_horizon_memory.sh's --memory-budget


def horizon(root: Path, out: Path, tables_only: bool) -> None:
    """results/horizon/tables.md (every table of the horizon experiment and the memory arm) and its figures."""
    from amaml_lab.studies import payoff as study

    folder = root / "horizon"
    records = study.load(folder)
    if not records:
        return
    text = (
        "# The horizon experiment's tables\n\nMade by `python results/make_figures.py --tables` from the run"
        " folders under results/horizon (results/run_horizon.sh); what they show: results/README.md,"
        f' "When does a longer inner loop pay off?". Finished runs: {len(records)}.\n\n' + study.study_tables(records)
    )
    memory = folder / "memory-conv4.json"
    if memory.exists():
        text += (
            "\n**Memory arm** (results/run_horizon_memory.sh): Conv-4, 5-way 1-shot, one meta-gradient, peak"
            f" working memory and time; unrolled maml refused past a {MEMORY_BUDGET_MB:,} MB budget\n\n"
            + measure.memory_table(measure.memory_rows(memory))
        )
    (folder / "tables.md").write_text(text)
    print(f"wrote {folder / 'tables.md'}")
    if tables_only:
        return
    from amaml_lab.viz import payoff as viz_study

    save(viz_study.own_loop_figure(records), out / "horizon-own-loop.png")
    for setting, reg in study.settings(records):
        m = study.cross_matrix(records, setting, reg)
        save(
            viz_study.cross_heatmap(m, f"{setting}, reg {reg:g}: θ trained through N steps, adapted for N_test"),
            out / f"horizon-cross-{setting}-reg{reg:g}.png",
            width=900,
        )
    if memory.exists():
        save(
            viz_study.memory_figure(measure.memory_rows(memory), MEMORY_BUDGET_MB),
            out / "horizon-memory.png",
            width=900,
        )


def directions_study(root: Path, out: Path, tables_only: bool) -> None:
    """results/horizon/directions.md (issue 33: the learning rates chosen on meta-validation functions, where the
    5,000-meta-step runs stand) and, from the diagnosis files, its figures."""
    from amaml_lab.studies import directions

    folder = root / "horizon"
    if not (folder / "lr").is_dir():
        return
    text = (
        "# Exact or first-order through a long loop? Where the runs stand\n\nMade by `python results/make_figures.py"
        " --tables` from the run folders under results/horizon (results/run_directions.sh).\n\n**Each method's Adam"
        " learning rate** at N = 1,000, seed 0: mean nRMSE after the run's own loop on 100 meta-validation"
        " functions (task seed 102) at 1,000 meta-steps, ± its standard error over the functions; the lowest is"
        " chosen.\n\n"
        + directions.rate_table(folder)
        + "\n**The runs to 5,000 meta-steps**: meta-steps reached (the last checkpoint), per seed.\n\n"
        + directions.progress_table(folder)
        + "\n**The finished pairs at 5,000 meta-steps**: b's and a's mean nRMSE after each run's own loop on the same"
        " 100 meta-test tasks, and b minus a paired over them (± the half-width of its 95 % interval over the tasks;"
        " on how many tasks b is better). The last column applies the rule over the seeds finished: lower (higher)"
        " when every one's interval lies below (above) zero. The remedy, maml-normalized-1000, is exact maml-1000"
        " with each meta-step's gradient normalised before Adam.\n\n" + directions.pairs_table(folder)
    )
    (folder / "directions.md").write_text(text)
    print(f"wrote {folder / 'directions.md'}")
    if tables_only:
        return
    from amaml_lab.viz import directions as viz_directions

    save(viz_directions.curves_figure(folder), out / "directions-own-loop.png", width=1100, height=480)


def main(*argv) -> int:
    flags = [a for a in argv if a.startswith("-")]
    roots = [a for a in argv if not a.startswith("-")]
    if any(f != "--tables" for f in flags) or len(roots) > 1:
        print("usage: python results/make_figures.py [RESULTS_DIR] [--tables]", file=sys.stderr)
        return 2
    root = Path(roots[0] if roots else "results")
    out = root / "figures"
    omniglot_tables(root)
    horizon(root, out, tables_only=bool(flags))
    directions_study(root, out, tables_only=bool(flags))
    for folder in sorted((root / "cpu-long").glob("*-seeds")):
        (folder / "table.md").write_text(seeds_table(folder))
        print(f"wrote {folder / 'table.md'}")
    for setting in sorted(p for p in (root / "cpu-long").glob("*-*-*") if not p.name.endswith("-seeds")):
        runs = runs_in(setting, at_steps=1000)
        if not runs:
            continue
        text = f"**{setting.name}, meta-step 1,000**: meta-test nRMSE, mean ± s.e. over 100 tasks (std)\n\n"
        text += table(runs, 1000)
        full = runs_in(setting)
        last = max(r["evals"][-1]["meta_step"] for r in full.values() if r["evals"])
        if last > 1000:
            text += f"\n**{setting.name}, meta-step {last:,.0f}**\n\n" + table(full, last)
        text += (
            f"\n**{setting.name}, each run's final θ fine-tuned to the end** (the reference fine-tunes 5,000 Adam"
            " iterations; mean ± s.e. over 100 tasks, std in brackets)\n\n" + final_table(full)
        )
        text += paired_table(setting)
        (setting / "table.md").write_text(text)
        print(f"wrote {setting / 'table.md'}")
        if flags:
            continue
        save(
            viz.meta_progress_figure(runs, title=f"{setting.name}: meta-test nRMSE along the first 1,000 meta-steps"),
            out / f"{setting.name}-meta-steps.png",
        )
        finished = {k: r for k, r in runs.items() if r["eval"]}
        if finished:
            save(
                viz.finetune_figure(
                    finished,
                    title=f"{setting.name}: fine-tuning from θ at the end of each run",
                    colors=viz_style.run_colors(runs),
                ),
                out / f"{setting.name}-fine-tuning.png",
                width=900,
            )
        long = {
            k: r
            for k, r in runs_in(setting, ("adjoint-100", "maml-100", "maml-10")).items()
            if r["summary"]["meta_steps"] > 1000
        }
        if long:
            save(
                viz.meta_progress_figure(long, title=f"{setting.name}: the long runs"), out / f"{setting.name}-long.png"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
