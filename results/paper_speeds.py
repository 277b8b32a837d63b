"""What issue 34's runs cost on this CPU, measured before launching them, and the estimate of the whole.

For each of the paper's five synthetic settings (meta-batch 5, the 2-32-32-1 tanh MLP, float64, rk4 steps of 0.01,
reg 1) and each method the runs use: one meta-step's seconds, eager and (adjoint-100, maml-10, maml-100) compiled,
the median of ``REPS`` after a warm call, and the compiled graphs' first call (a compile, or a load where inductor's
cache holds them); one evaluation's seconds on the 100 meta-test tasks (the paper's 5,000 Adam iterations, timed over
``ADAM`` and scaled, and the run's own loop).  Then, from ``run_paper_length.sh list`` and the committed runs it
extends, the CPU-hours of every run still to do, each at the faster of its two paths, with its evaluations.  And
the image runs' (``run_omniglot_long.sh``, where ``../shared/data/omniglot`` holds the small subsets): their
meta-steps, their evaluations, their CPU-hours per 1,000 meta-steps.  One thread; run it beside one other one-thread
process (the runs go two at a time).

    OMP_NUM_THREADS=1 python results/paper_speeds.py results/paper/speeds.md
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from amaml_lab.io import write_text_atomic
from amaml_lab.tasks.domains import load_domain
from amaml_lab.training.builders import build_model
from amaml_lab.training.config import RunConfig
from amaml_lab.training.evaluate import evaluate, evaluate_inner_loop
from amaml_lab.training.train import batch_gradient

REPS, ADAM, META = 5, 250, 5000
SETTINGS = ("CosMixture 50 50", "CosMixture2D 50 50", "CosMixture2D 100 100", "Alpine2D 50 50", "Alpine2D 100 100")
METHODS = (("adjoint", 100), ("maml", 10), ("maml", 100), ("fomaml", 100), ("reptile", 100), ("imaml", 100))
COMPILED = {("adjoint", 100), ("maml", 10), ("maml", 100)}
DATA_ROOT = Path("../shared/data/omniglot")  # Omniglot's small subsets (the image runs: results/run_omniglot_long.sh)
IMAGE_RUNS = {  # name: (RunConfig options, runs: seeds 0-2 or seed 0)
    "maml-10": ({"method": "maml"}, 3),
    "adjoint-10": ({"method": "adjoint"}, 3),
    "adjoint-discrete-10": ({"method": "adjoint", "options": {"scheme": "discrete"}}, 1),
    "fomaml-10": ({"method": "fomaml"}, 1),
    "reptile-10": ({"method": "reptile"}, 1),
}


def _timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def meta_step(setting: str, method: str, n: int, compiled: bool) -> dict:
    domain_name, shots, query = setting.split()
    cfg = (
        RunConfig(
            domain=domain_name, shots=int(shots), query=int(query), inner_steps=n, method=method, compile=compiled
        )
        .resolved()
        .check()
    )
    torch.manual_seed(0)
    domain = load_domain(cfg.domain, cfg.shots, cfg.query)
    model = build_model(cfg, domain.in_features)
    theta = {k: v.detach() for k, v in model.named_parameters()}
    support, query_ = domain.train_batch(torch.Generator().manual_seed(0), cfg.meta_batch, cfg.shots, cfg.query)
    step = lambda: batch_gradient(cfg, model, theta, support, query_, compile=compiled)  # noqa: E731
    first = _timed(step)
    return {"first_s": first, "step_s": statistics.median(_timed(step) for _ in range(REPS)), "cfg": cfg}


def evaluation(setting: str) -> dict:
    """One full evaluation's seconds (5,000 Adam iterations on the 100 meta-test tasks) and one own loop's (maml-10
    and adjoint-100's loops: 10 and 100 rk4 steps on every task)."""
    domain_name, shots, query = setting.split()
    out = {}
    for n in (10, 100):
        cfg = RunConfig(domain=domain_name, shots=int(shots), query=int(query), inner_steps=n).resolved().check()
        domain = load_domain(cfg.domain, cfg.shots, cfg.query)
        model = build_model(cfg, domain.in_features)
        theta = {k: v.detach() for k, v in model.named_parameters()}
        evalset = domain.eval_set(cfg.eval_tasks, cfg.shots, cfg.query)
        out[f"loop{n}_s"] = _timed(evaluate_inner_loop, model, theta, evalset, cfg, show_progress=False)
    out["adam_s"] = _timed(evaluate, model, theta, evalset, steps=ADAM, show_progress=False) * 5000 / ADAM
    return out


def image_rows() -> list[str]:
    """Omniglot 5-way 1-shot, meta-batch 8, MAML's inner loop (10 steps of 0.1): each run's meta-step, eager and
    (maml) compiled, and the 600 meta-test and 200 validation episodes' evaluation; the runs' CPU-hours per 1,000
    meta-steps with an evaluation every 250, and at the rule's cap (10,000)."""
    if not (DATA_ROOT / "images_background_small1.zip").exists():
        return ["", f"Omniglot: not measured ({DATA_ROOT} holds no small subsets)."]
    from amaml_lab.tasks.domains import load_domain
    from amaml_lab.training.evaluate import evaluate_episodes

    lines = [
        "",
        "| Omniglot 5-way 1-shot run | eager (s / meta-step) | compiled (s / meta-step) | runs |",
        "|---|---:|---:|---:|",
    ]
    per_run = {}
    domain = load_domain("Omniglot", 1, 15, data_root=DATA_ROOT, subset="small", validation=20)
    for name, (options, runs) in IMAGE_RUNS.items():
        times = {}
        for compiled in (False, True) if name == "maml-10" else (False,):
            cfg = (
                RunConfig(
                    domain="Omniglot",
                    shots=1,
                    query=15,
                    inner_steps=10,
                    meta_batch=8,
                    compile=compiled,
                    subset="small",
                    validation_characters=20,
                    **options,
                )
                .resolved()
                .check()
            )
            model = build_model(cfg, None)
            theta = {k: v.detach() for k, v in model.named_parameters()}
            support, query = domain.train_batch(torch.Generator().manual_seed(0), 8, 1, 15)
            try:
                _timed(batch_gradient, cfg, model, theta, support, query, compile=compiled)
                times[compiled] = statistics.median(
                    _timed(batch_gradient, cfg, model, theta, support, query, compile=compiled) for _ in range(REPS)
                )
            except Exception as err:  # the compiled Conv-4 may not compile: say so
                times[compiled] = f"failed: {type(err).__name__}"
        per_run[name] = (min(t for t in times.values() if isinstance(t, float)), runs)
        comp = times.get(True, "")
        comp = f"{comp:.3f}" if isinstance(comp, float) else comp
        lines.append(f"| {name} | {times[False]:.3f} | {comp} | {runs} |")
    episodes = sum(
        _timed(evaluate_episodes, model, theta, domain.eval_set(n, 1, 15, split=split), cfg, show_progress=False)
        for n, split in ((600, "test"), (200, "validation"))
    )
    per_1000 = {name: (1000 * step + 4 * episodes) * runs / 3600 for name, (step, runs) in per_run.items()}
    lines += [
        "",
        f"An evaluation (600 meta-test and 200 validation episodes, the own loop): {episodes:.0f} s. The nine image"
        f" runs together take {sum(per_1000.values()):.1f} CPU-hours per 1,000 meta-steps of each (an evaluation"
        f" every 250), so {sum(per_1000.values()) * 10:.0f} CPU-hours if every run went to the rule's cap of 10,000;"
        " a run stops earlier where its validation accuracy levels.",
    ]
    return lines


def _done(folder: Path) -> int:
    summary = folder / "summary.json"
    return json.loads(summary.read_text())["meta_steps"] if summary.exists() else 0


def remaining(speeds: dict, evals: dict) -> list[dict]:
    """Every run of ``run_paper_length.sh plan`` with the meta-steps still to do and their CPU seconds."""
    env = dict(os.environ, PYTHON=sys.executable)
    plan = subprocess.run(
        ["bash", "results/run_paper_length.sh", "plan"], capture_output=True, text=True, check=True, env=env
    )
    rows = []
    for line in plan.stdout.splitlines():
        domain_name, shots, query, method, n, seed, start = line.split()
        setting, n, start = f"{domain_name} {shots} {query}", int(n), int(start)
        folder = Path("results/paper") / setting.replace(" ", "-") / f"{method}-{n}" / f"seed{seed}"
        start = max(start, _done(folder / "1000"), _done(folder / "5000"))
        step = min(v["step_s"] for k, v in speeds.items() if k[:3] == (setting, method, n))
        full = evals[setting]["adam_s"] + evals[setting][f"loop{10 if n == 10 else 100}_s"]
        fulls = (start < 1000) + (start < META)
        seconds = (META - start) * step + fulls * full + (META - start) // 500 * evals[setting]["loop100_s"]
        pair = (method, n) in (("adjoint", 100), ("maml", 10))
        rows.append(
            {
                "run": f"{setting} {method}-{n} seed {seed}",
                "pair": pair,
                "from": start,
                "step_s": step,
                "cpu_s": seconds,
            }
        )
    return rows


def main(out: str) -> None:
    torch.set_num_threads(1)
    speeds, evals = {}, {}
    for setting in SETTINGS:
        for method, n in METHODS:
            for compiled in (False, True) if (method, n) in COMPILED else (False,):
                speeds[setting, method, n, compiled] = meta_step(setting, method, n, compiled)
        evals[setting] = evaluation(setting)
        print(setting, "measured", flush=True)
    lines = [
        f"# Issue 34's runs, measured before launching: {time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, "
        "one thread, beside one other one-thread run\n",
        "Command: `OMP_NUM_THREADS=1 python results/paper_speeds.py results/paper/speeds.md` (its docstring says what"
        " it measures).\n",
        "| setting | run | eager (s / meta-step) | compiled (s / meta-step) | compiled, first call (s) |",
        "|---|---|---:|---:|---:|",
    ]
    for setting in SETTINGS:
        for method, n in METHODS:
            eager = speeds[setting, method, n, False]["step_s"]
            comp = speeds.get((setting, method, n, True))
            cells = f"{comp['step_s']:.3f} | {comp['first_s']:.1f}" if comp else "| "
            lines.append(f"| {setting} | {method}-{n} | {eager:.3f} | {cells} |")
    lines += [
        "",
        "| setting | 5,000 Adam iterations, 100 tasks (s) | own loop, 10 steps (s) | own loop, 100 steps (s) |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {s} | {e['adam_s']:.0f} | {e['loop10_s']:.1f} | {e['loop100_s']:.1f} |" for s, e in evals.items()]
    rows = remaining(speeds, evals)
    hours = {"the pair": sum(r["cpu_s"] for r in rows if r["pair"]) / 3600, "all": sum(r["cpu_s"] for r in rows) / 3600}
    lines += [
        "",
        f"Still to run: the pair {hours['the pair']:.1f} CPU-hours, the pair and the other methods"
        f" {hours['all']:.1f} CPU-hours (each run at the faster of its two paths, with its evaluations); two at a time,"
        f" about {hours['all'] / 2:.0f} hours of wall time.",
        "",
        "| run | from meta-step | s / meta-step | CPU-hours |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {r['run']} | {r['from']} | {r['step_s']:.3f} | {r['cpu_s'] / 3600:.2f} |" for r in rows]
    lines += image_rows()
    write_text_atomic(out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/paper/speeds.md")
