"""The defect drill: `make mutants` applies realistic defects, one at a time, to a copy of the project and
reports which tests catch each.  A defect no test catches makes it exit 1.

Each mutant replaces one exact piece of source (it must occur once) in a fresh copy of the package, tests and
notebooks, then runs the test files of `make test` that bear on it (the whole suite per mutant would take an
hour here) with the copy first on PYTHONPATH, so the installed package is not touched.

    python tools/mutants.py [--only NAME,...] [--out FILE]
    python tools/mutants.py --negations [--out FILE]   each method's meta-gradient negated: which notebooks fail
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MUTANTS = [
    (
        "sign flip: the adjoint's meta-gradient negated",
        "amaml_lab/metagrad/adjoint.py",
        "    return a + q, u_T, qloss, stats",
        "    return -(a + q), u_T, qloss, stats",
        ["tests/engine/test_exact_quadratic.py"],
    ),
    (
        "one step skipped: the solver's first step left out",
        "amaml_lab/flow.py",
        "    for k in range(save[0], save[-1], sign):",
        "    for k in range(save[0] + sign, save[-1], sign):",
        ["tests/engine/test_flow.py", "tests/engine/test_exact_quadratic.py"],
    ),
    (
        "a recomputed state off by one: a stored checkpoint is the state one step before",
        "amaml_lab/metagrad/checkpointing.py",
        "                stack.append((i0 + m, length - m, slots - 1, solve(f, u0, [i0, i0 + m])[-1].clone()))",
        "                stack.append((i0 + m, length - m, slots - 1, solve(f, u0, [i0, i0 + m - 1])[-1].clone()))",
        ["tests/engine/test_exact_mlp.py"],
    ),
    (
        "the reg term dropped: the adjoint leaves out reg * integral of a",
        "amaml_lab/metagrad/adjoint.py",
        "    return a + q, u_T, qloss, stats",
        "    return a, u_T, qloss, stats",
        ["tests/engine/test_exact_quadratic.py"],
    ),
    (
        "checkpointing silently disabled in the adjoint (every state kept)",
        "amaml_lab/metagrad/adjoint.py",
        "    else:\n        budget = checkpoints\n",
        "    else:\n        budget = None\n",
        ["tests/integration/test_memory.py"],
    ),
    (
        "checkpointing silently disabled in maml (the whole graph kept)",
        "amaml_lab/metagrad/unrolled.py",
        "    if checkpoints is not None:\n        return _segmented(p, checkpoints)",
        "    if False:\n        return _segmented(p, checkpoints)",
        ["tests/integration/test_memory.py"],
    ),
    (
        "the optimiser state not restored on resume",
        "amaml_lab/training/train.py",
        '        self.optimizer.load_state_dict(state["optimizer"])\n',
        "        pass\n",
        ["tests/training/test_train.py"],
    ),
    (
        "the checkpointing schedule splits a piece that fits (same gradient, more forward steps)",
        "amaml_lab/metagrad/checkpointing.py",
        "            if length <= slots + 1:  # all of them fit: one forward solve keeps every one",
        "            if length <= slots:  # all of them fit: one forward solve keeps every one",
        ["tests/engine/test_checkpointing.py"],
    ),
    (
        "the few-iteration columns read the fine-tuning log one entry late",
        "amaml_lab/training/evaluate.py",
        '            per_task[f"ft{n}"] = curve["nrmse"][:, its.index(n)]',
        '            per_task[f"ft{n}"] = curve["nrmse"][:, its.index(n) + 1]',
        ["tests/training/test_train.py"],
    ),
    (
        "an exercise checker comparing magnitudes (a negated answer passes)",
        "amaml_lab/teach/exercises/_judging.py",
        "    return a.shape == b.shape and bool(torch.linalg.vector_norm(a - b) <= tol * float(b.norm()))",
        "    return a.shape == b.shape and bool(torch.linalg.vector_norm(a.abs() - b.abs()) <= tol * float(b.norm()))",
        ["tests/teach/test_exercises.py"],
    ),
    (
        "the reference protocol's input scaler fitted on the meta-training tasks only",
        "amaml_lab/tasks/domains.py",
        "            xs = torch.cat([t.reshape(-1, t.shape[-1]) for r in raw"
        " for t in (r.support_x, r.query_x, r.test_x)])",
        "            xs = torch.cat([t.reshape(-1, t.shape[-1]) for r in raw[:1]"
        " for t in (r.support_x, r.query_x, r.test_x)])",
        ["tests/tasks/test_domains.py"],
    ),
    (
        "the run estimate drops its scale factor",
        "amaml_lab/studies/committed.py",
        "            total += per * meta_steps * scale",
        "            total += per * meta_steps",
        ["tests/studies/test_committed.py"],
    ),
    (
        "compiled steps taken backward: the whole-step graph given its times swapped",
        "amaml_lab/flow.py",
        "        step, times = (lambda f, t0, t1, y: whole(solver, t0, t1, y)), grid.detach().unbind(0)",
        "        step, times = (lambda f, t0, t1, y: whole(solver, t1, t0, y)), grid.detach().unbind(0)",
        ["tests/engine/test_compiled.py"],
    ),
    (
        "the compiled pullback forgets theta's share through reg",
        "amaml_lab/compiled.py",
        "    _, back = torch.func.vjp(lambda x, th: forward_step(loss, solver, x, t0, t1, th, reg, mask), u, theta)",
        "    _, back = torch.func.vjp(lambda x, th: forward_step(loss, solver, x, t0, t1, theta, reg, mask), u, theta)",
        ["tests/engine/test_compiled.py"],
    ),
    (
        "the compiled continuous adjoint's last rk4 stage linearised at the step's upper state, not its lower",
        "amaml_lab/metagrad/fields.py",
        'ON_GRID = {"euler": {0: 1}, "midpoint": {0: 1}, "rk4": {0: 1, 3: 0}}',
        'ON_GRID = {"euler": {0: 1}, "midpoint": {0: 1}, "rk4": {0: 1, 3: 1}}',
        ["tests/engine/test_compiled.py::test_compiled_continuous_adjoint_in_chunks"],
    ),
    (
        "a --compile run switches to its graphs before the compiling process has finished",
        "amaml_lab/training/train.py",
        "            if self.proc.poll() is None:\n                return False\n",
        "            if self.proc.poll() is None:\n                pass\n",
        ["tests/training/test_train.py"],
    ),
    (
        "a notebook figure's data emptied: the fine-tuning figure without traces",
        "amaml_lab/viz/figures.py",
        '    return _figure(\n        traces,\n        dict(\n            title=title or "meta-test: fine-tuning',
        '    return _figure(\n        [],\n        dict(\n            title=title or "meta-test: fine-tuning',
        ["tests/integration/test_notebooks.py::test_notebook_runs_fast[05_synthetic_meta_regression.ipynb]"],
    ),
    # issue 38: defects in code written since the earlier drill that no test caught then
    (
        "the compiled flow ignores the parameter mask (compile=True adapts frozen parameters too)",
        "amaml_lab/compiled.py",
        "    return GradientFlow(_Gradient(loss), theta, reg, graph=True, mask=mask)",
        "    return GradientFlow(_Gradient(loss), theta, reg, graph=True, mask=None)",
        ["tests/engine/test_compiled.py::test_compiled_equals_eager_under_a_mask"],
    ),
    (
        "the continuous sweep's own state above each block not counted against the checkpoints",
        "amaml_lab/metagrad/sweeps.py",
        "        return 0 if stored else 1  # stored: one block, nothing above it",
        "        return 0",
        ["tests/engine/test_checkpointing.py"],
    ),
    (
        "the cross-evaluation's columns the union of the runs' test horizons, not the intersection",
        "amaml_lab/studies/payoff.py",
        "        common = mine if common is None else common & mine",
        "        common = mine if common is None else common | mine",
        ["tests/studies/test_payoff.py"],
    ),
    (
        "the kernel-free explorer's markers at T written into the trace before them (an index off by one)",
        "amaml_lab/viz/static.py",
        "            moves.append(len(fig.data) - 1)",
        "            moves.append(len(fig.data) - 2)",
        ["tests/viz/test_static.py"],
    ),
    (
        "the worker-pool fallback catches only a broken pool (RuntimeError), not a pool that cannot start",
        "amaml_lab/teach/horizons_data.py",
        "    except Exception as err:  # BrokenProcessPool",
        "    except RuntimeError as err:  # BrokenProcessPool",
        ["tests/teach/test_horizons.py::test_a_pool_that_cannot_start_computes_here"],
    ),
    (
        "paired_runs refuses one-sided task ids only when the base run has them",
        "amaml_lab/studies/stats.py",
        "    if (ids[0] is None) != (ids[1] is None):",
        "    if ids[0] is not None and ids[1] is None:",
        ["tests/training/test_commands.py::test_paired_runs_refuses_whenever_either_side_lacks_the_others_task_ids"],
    ),
    # the drill's own, in code added or rewritten since the earlier drill (issues 33 and 38 among it)
    (
        "the rate rule scores a diverged selection run best instead of worst",
        "amaml_lab/studies/directions.py",
        "        return math.inf\n",
        "        return 0.0\n",
        ["tests/studies/test_directions.py"],
    ),
    (
        "validate scores the meta-test functions instead of the meta-validation ones",
        "amaml_lab/training/runs.py",
        '    evalset = domain.eval_set(tasks, cfg.shots, cfg.query, split="validation")',
        "    evalset = domain.eval_set(tasks, cfg.shots, cfg.query)",
        ["tests/studies/test_directions.py"],
    ),
    (
        "loop_evaluation reports the own loop under every adapt<N> column",
        "amaml_lab/training/evaluate.py",
        '        per_task[f"adapt{n}"] = torch.cat(errors[n])',
        '        per_task[f"adapt{n}"] = torch.cat(errors[cfg.inner_steps])',
        ["tests/studies/test_directions.py"],
    ),
    (
        "the cheap evaluation along training measures the test horizons instead of the interval ones",
        "amaml_lab/training/runs.py",
        "loop_evaluation(model, theta, self.evalset, cfg, cfg.interval_horizons)",
        "loop_evaluation(model, theta, self.evalset, cfg, cfg.test_horizons)",
        ["tests/studies/test_directions.py"],
    ),
    (
        "snapshots skip the meta-step a run starts from (0, or where it resumes)",
        "amaml_lab/training/train.py",
        "        if every and self.step % every == 0 and not path.exists():",
        "        if every and self.step % every == 0 and self.step > self.starts[-1] and not path.exists():",
        ["tests/studies/test_directions.py"],
    ),
    (
        "loop_jacobian pairs each horizon with the sensitivity one saved state early",
        "amaml_lab/metagrad/dispatch.py",
        "    return dict(zip(horizons, sens[1:]))",
        "    return dict(zip(horizons, sens[:-1]))",
        ["tests/studies/test_directions.py"],
    ),
    (
        "Adam's effective step read without the bias corrections",
        "amaml_lab/studies/diagnosis.py",
        '        m_hat = state["exp_avg"] / (1 - beta1**t)',
        '        m_hat = state["exp_avg"]',
        ["tests/studies/test_directions.py"],
    ),
    (
        "the directions' coherence taken over unit vectors"
        " (the norm of the mean of the directions, not of the vectors)",
        "amaml_lab/studies/diagnosis.py",
        '        "coherence": float(V.mean(0).norm() / norms.mean()),',
        '        "coherence": float(unit.mean(0).norm() / norms.mean()),',
        ["tests/studies/test_directions.py"],
    ),
    (
        "the loss slice walks the support loss (1/2 MSE on the support set) instead of the query MSE",
        "amaml_lab/studies/diagnosis.py",
        "            values.append(float(torch.func.vmap(query_loss)(adapted, query).mean()))",
        "            values.append(float(torch.func.vmap(support_loss)(adapted, query).mean()))",
        ["tests/studies/test_directions.py"],
    ),
    (
        "FOMAML's and Reptile's directions swapped in the diagnosis",
        "amaml_lab/studies/diagnosis.py",
        'DIRECTIONS = {"exact": "maml", "fomaml": "fomaml", "reptile": "reptile"}',
        'DIRECTIONS = {"exact": "maml", "fomaml": "reptile", "reptile": "fomaml"}',
        ["tests/studies/test_directions.py"],
    ),
    (
        "a run takes no lock on its folder (two writers interleave)",
        "amaml_lab/training/runs.py",
        "    with FolderLock(out) if distributed.world()[1] == 0 else contextlib.nullcontext():",
        "    with contextlib.nullcontext():",
        ["tests/training/test_commands.py::test_a_second_writer_to_a_run_folder_exits_2_naming_the_holder"],
    ),
    (
        "the kit's threads default to PyTorch's own choice instead of one",
        "amaml_lab/threads.py",
        '    value = os.environ.get(VARIABLE, "1") if value is None else value',
        '    value = os.environ.get(VARIABLE, "0") if value is None else value',
        ["tests/test_threads.py"],
    ),
]

# the negation drill: each method's meta-gradient negated where meta_gradient returns it; every notebook runs
NEGATE_AT = (
    "amaml_lab/metagrad/dispatch.py",
    "    grad, u_T, qloss, stats = m.fn(problem, **opts)\n",
    "    grad, u_T, qloss, stats = m.fn(problem, **opts)\n    if method == {method!r}:\n        grad = -grad\n",
)
NEGATED = ("maml", "adjoint", "backsolve", "fomaml", "reptile", "imaml", "truncated")
NOTEBOOK_TESTS = ["tests/integration/test_notebooks.py::test_notebook_runs_fast"]


def negation_mutants():
    path, old, new = NEGATE_AT
    return [(f"{m}'s meta-gradient negated", path, old, new.format(method=m), NOTEBOOK_TESTS) for m in NEGATED]


COPY = (
    "amaml_lab",
    "tests",
    "notebooks",
    "results",
    "pyproject.toml",
    "Makefile",
    "README.md",
    ".ci",
    "binder",
    "environment.yml",
)  # results/: notebooks 05-07 open on the committed runs


def copy_project(dest: Path) -> None:
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
        elif src.exists():
            shutil.copy2(src, dest / name)


def run_mutant(name, path, old, new, tests) -> dict:
    with tempfile.TemporaryDirectory(prefix="mutant-") as tmp:
        work = Path(tmp)
        copy_project(work)
        target = work / path
        text = target.read_text()
        if text.count(old) != 1:
            return {
                "name": name,
                "caught_by": [],
                "error": f"the defect's source occurs {text.count(old)} times in {path}",
            }
        target.write_text(text.replace(old, new))
        env = dict(os.environ, PYTHONPATH=str(work), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        started = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-rf",
                "-p",
                "no:cacheprovider",
                f"--maxfail={len(NEGATED) + 5}",
                *tests,
            ],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
        )
        failed = sorted(set(re.findall(r"^FAILED (\S+)", proc.stdout, re.M)))
        return {
            "name": name,
            "file": path,
            "tests": tests,
            "caught_by": failed,
            "returncode": proc.returncode,
            "seconds": time.perf_counter() - started,
            "tail": proc.stdout.strip().splitlines()[-1:],
        }


def table(rows) -> str:
    lines = ["| defect | file | caught by | seconds |", "|---|---|---|---:|"]
    for r in rows:
        names = [t.split("::")[-1] for t in r["caught_by"]]
        if names and all(n.startswith("test_notebook_runs_fast[") for n in names):  # the negation drill: notebooks
            names = [n[len("test_notebook_runs_fast[") :].split("_")[0] for n in names]
            caught, more = "notebooks " + ", ".join(names), ""
        else:
            caught = ", ".join(f"`{n}`" for n in names[:3]) or f"**not caught** {r.get('error', '')}"
            more = f" (+{len(names) - 3} more)" if len(names) > 3 else ""
        lines.append(f"| {r['name']} | `{r.get('file', '')}` | {caught}{more} | {r.get('seconds', 0):.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/mutants.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=None, help="comma-separated substrings of the defects to run")
    parser.add_argument("--out", default=None, help="also write the Markdown table to this file")
    parser.add_argument(
        "--negations",
        action="store_true",
        help="instead: negate each method's meta-gradient in turn and run every notebook (FAST)",
    )
    args = parser.parse_args(argv)
    pool = negation_mutants() if args.negations else MUTANTS
    chosen = [m for m in pool if not args.only or any(s in m[0] for s in args.only.split(","))]
    rows = []
    for mutant in chosen:
        row = run_mutant(*mutant)
        rows.append(row)
        status = f"caught by {len(row['caught_by'])} test(s)" if row["caught_by"] else f"NOT CAUGHT {row.get('tail')}"
        print(f"{row['name']}: {status}", file=sys.stderr, flush=True)
    md = table(rows)
    print(md)
    if args.out:
        Path(args.out).write_text(md + "\n")
    return 0 if all(r["caught_by"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
