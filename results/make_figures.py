"""The figures and tables of results/README.md from the run folders:
python results/make_figures.py [RESULTS_DIR] [--tables]

For each setting under results/cpu-long: the meta-test nRMSE against meta-steps (after each method's own inner
loop, and after the reference's Adam fine-tuning) and the fine-tuning curves at the end of the 1,000-step runs;
for CosMixture 50/50 also the 5,000-step runs; and each setting's table.md, with the paired differences of the
runs that ended at the same meta-step (from their tasks.csv).  Plotly draws the figures and Debian's Chromium
(headless) saves each as a PNG under results/figures/.  The Omniglot tables under results/omniglot-cpu are
rebuilt from their runs' folders, with the paired column.  ``--tables`` writes the tables only.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from amaml_lab import experiments, viz

ORDER = ("adjoint-100", "maml-100", "maml-10", "imaml", "fomaml", "reptile", "maml-10-reference-protocol")


def runs_in(folder: Path, names=ORDER, at_steps: int | None = None) -> dict:
    runs = {}
    for name in names:
        path = folder / name
        if (path / "summary.json").exists() and (path / "metrics.csv").exists():
            run = viz.load_run(path)
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
        fig.write_html(page, include_plotlyjs=True, full_html=True,  # offline: plotly.js inline
                       config={"displayModeBar": False, "staticPlot": True})
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={tmp}/profile", f"--screenshot={path}", f"--window-size={width},{height}",
                        "--virtual-time-budget=5000", page.as_uri()], check=True, capture_output=True)
    print(f"wrote {path}")


def table(runs: dict, step: int) -> str:
    """Meta-test nRMSE at meta-step ``step`` from evals.csv: mean ± s.e. (the reference's std in brackets)."""
    cols = [("theta", "at θ"), ("inner", "own inner loop"), ("ft10", "10 Adam its"), ("ft100", "100 Adam its"),
            ("finetuned", "1,000 Adam its")]
    lines = ["| run | inner steps | " + " | ".join(c[1] for c in cols) + " |",
             "|---|---:|" + "---:|" * len(cols)]
    for label, r in runs.items():
        row = next((e for e in r["evals"] if e["meta_step"] == step), None)
        if row is None:
            continue
        cells = [f"{row[f'{k}_mean']:.4f} ± {row[f'{k}_se']:.4f} ({row[f'{k}_std']:.3f})" for k, _ in cols]
        lines.append(f"| {label} | {r['summary']['config']['inner_steps']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paired_table(setting: Path, names=ORDER[:-1]) -> str:
    """Each run's difference to the first run that ended at the same meta-step, task by task (tasks.csv)."""
    cols = [("inner", "own inner loop"), ("finetuned", "1,000 Adam its")]
    groups = {}
    for name in names:
        summary_path = setting / name / "summary.json"
        tasks = experiments.per_task(setting / name)
        if summary_path.exists() and tasks:
            steps = json.loads(summary_path.read_text())["meta_steps"]
            groups.setdefault(steps, []).append((name, tasks))
    text = ""
    for steps, runs in sorted(groups.items()):
        if len(runs) < 2:
            continue
        ref, base = runs[0]
        text += (f"\n**{setting.name}, the runs that ended at meta-step {steps:,}, paired: nRMSE minus {ref}'s on the same"
                 f" 100 tasks** (mean ± 1.96 s.e. of the differences; on how many tasks the run does better)\n\n")
        text += "| run | " + " | ".join(c[1] for c in cols) + " |\n|---|" + "---:|" * len(cols) + "\n"
        for name, tasks in runs[1:]:
            cells = []
            for key, _ in cols:
                p = experiments.paired_runs(base, tasks, key)
                cells.append(experiments.format_paired(p, counts=""))
            text += f"| {name} | " + " | ".join(cells) + " |\n"
    return text


def omniglot_tables(root: Path) -> None:
    """results/omniglot-cpu/*/table.md rebuilt from the runs' folders (the order of table.csv), paired column added."""
    import csv

    for folder in sorted((root / "omniglot-cpu").glob("*/table.csv")):
        with open(folder, newline="") as f:
            methods = [r["method"] for r in csv.DictReader(f)]
        base = folder.parent
        summaries = [json.loads((base / m / "summary.json").read_text()) for m in methods]
        md = experiments.markdown_table(summaries, [experiments.per_task(base / m) for m in methods])
        (base / "table.md").write_text(md)
        print(f"wrote {base / 'table.md'}")


def main(*argv) -> int:
    flags = [a for a in argv if a.startswith("-")]
    roots = [a for a in argv if not a.startswith("-")]
    if any(f != "--tables" for f in flags) or len(roots) > 1:
        print("usage: python results/make_figures.py [RESULTS_DIR] [--tables]", file=sys.stderr)
        return 2
    root = Path(roots[0] if roots else "results")
    out = root / "figures"
    omniglot_tables(root)
    for setting in sorted((root / "cpu-long").glob("*-*-*")):
        runs = runs_in(setting, at_steps=1000)
        if not runs:
            continue
        text = f"**{setting.name}, meta-step 1,000**: meta-test nRMSE, mean ± s.e. over 100 tasks (std)\n\n"
        text += table(runs, 1000)
        full = runs_in(setting)
        last = max(r["evals"][-1]["meta_step"] for r in full.values() if r["evals"])
        if last > 1000:
            text += f"\n**{setting.name}, meta-step {last:,.0f}**\n\n" + table(full, last)
        text += paired_table(setting)
        (setting / "table.md").write_text(text)
        print(f"wrote {setting / 'table.md'}")
        if flags:
            continue
        save(viz.meta_progress_figure(runs, title=f"{setting.name}: meta-test nRMSE along the first 1,000 meta-steps"),
             out / f"{setting.name}-meta-steps.png")
        finished = {k: r for k, r in runs.items() if r["eval"]}
        if finished:
            save(viz.finetune_figure(finished, title=f"{setting.name}: fine-tuning from θ at the end of each run",
                                     colors=viz.run_colors(runs)),
                 out / f"{setting.name}-fine-tuning.png", width=900)
        long = {k: r for k, r in runs_in(setting, ("adjoint-100", "maml-100", "maml-10")).items()
                if r["summary"]["meta_steps"] > 1000}
        if long:
            save(viz.meta_progress_figure(long, title=f"{setting.name}: the long runs"),
                 out / f"{setting.name}-long.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
