"""What ``--compile`` costs a run: the run folders of ``benchmarks/compile_runs.sh`` read into one table.

For each method, runs of the same setting and length: ``eager``; ``cold`` (``--compile-wait`` on a machine's
first compile: inductor's cache, its precompiled header and its CPU probes built in the run); ``warm``
(``--compile-wait`` again on that machine); ``background`` (``--compile`` on a machine's first compile: the
graphs compile in another process while the first meta-steps run eagerly, then load from inductor's cache);
``new`` and ``new_background`` (``--compile-wait`` and ``--compile`` where inductor has compiled another
setting before: its probes and header built, these graphs not: a run of a setting new to the machine).  A row,
for each compiled run:

* ``elsewhere_s``: the compiling process's seconds (``--compile``; the run did not wait for them), ``compile_s``:
  the compile the run waited for (its summary's), ``compiled_from``: the meta-step from which it ran compiled;
* ``eager_s`` and ``compiled_s``: the median meta-step of the eager run and of the run's compiled steps;
  ``meanwhile_s``: of its eager steps while another process compiled (``--compile``);
* ``cost_s``: the run's meta-training beyond as many compiled steps (what compiling cost it), and ``share``:
  that over a :data:`RUN_STEPS`-meta-step run's compiled time;
* ``paid_back``: the meta-step from which the run is ahead of the eager run's pace (its median step), the cost
  over what a compiled step saves (beyond the run's own length where the run ends first);
* ``behind_s``: how far at most the run fell behind that pace, measured along it (0 if never).

    python -m amaml_lab.bench.compile_cost OUT    # writes OUT.md and OUT.json beside the folder
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from itertools import accumulate
from pathlib import Path

from ..io import write_text_atomic
from ..studies.rundir import load_run

RUN_STEPS = 5000  # the paper's meta-training length
KINDS = ("eager", "cold", "warm", "background", "new", "new_background")
COMMITTED = Path(__file__).resolve().parents[2] / "benchmarks" / "cpu-compile-runs"  # in the source tree


def step_seconds(run: Path) -> list[float]:
    """Each meta-step's seconds, from a run's metrics.csv."""
    return [m["seconds"] for m in load_run(run)["metrics"]]


def row(run: Path, method: str, kind: str, eager: float) -> dict:
    loaded = load_run(run)
    seconds, summary = [m["seconds"] for m in loaded["metrics"]], loaded["summary"]
    [record] = summary["compiles"]
    start = record["compiled_from"] if record["compiled_from"] is not None else len(seconds)
    compiled = statistics.median(seconds[start:]) if start < len(seconds) else None
    cost = sum(seconds) - len(seconds) * compiled if compiled is not None else None
    behind = max(total - (k + 1) * eager for k, total in enumerate(accumulate(seconds)))
    return {
        "method": method,
        "compile": kind,
        "compile_s": summary["compile_s"],
        "elsewhere_s": record["elsewhere_s"],
        "compiled_from": None if record["compiled_from"] is None else start + 1,
        "eager_s": eager,
        "compiled_s": compiled,
        "meanwhile_s": statistics.median(seconds[:start]) if start else None,
        "paid_back": math.ceil(cost / (eager - compiled)) if cost is not None and eager > compiled else None,
        "behind_s": max(behind, 0.0),
        "cost_s": cost,
        "share": cost / (RUN_STEPS * compiled) if compiled is not None else None,
    }


def rows(folder: Path) -> list[dict]:
    """One row per compiled run in ``folder`` (``{method}-{eager,cold,warm,background}`` run folders)."""
    out = []
    methods = sorted({p.name.rsplit("-", 1)[0] for p in folder.iterdir() if p.name.rsplit("-", 1)[-1] in KINDS})
    for method in methods:
        eager = statistics.median(step_seconds(folder / f"{method}-eager"))
        out += [
            row(folder / f"{method}-{kind}", method, kind, eager)
            for kind in KINDS[1:]
            if (folder / f"{method}-{kind}").is_dir()
        ]
    return out


def committed() -> dict:
    """{(method, kind): row} of the committed runs (benchmarks/cpu-compile-runs, a source tree's)."""
    if not COMMITTED.is_dir():
        raise FileNotFoundError(f"{COMMITTED} is not here: the committed compile runs are in the kit's source tree")
    return {(r["method"], r["compile"]): r for r in rows(COMMITTED)}


def _or(value, fmt: str, none: str) -> str:
    return none if value is None else format(value, fmt)


def table(rows: list[dict]) -> str:
    lines = [
        "| method | compile | compiled in another process (s) | compiling waited for (s) |"
        " compiled from meta-step | eager s / meta-step |"
        " compiled s / meta-step | paid back at meta-step | behind the eager pace at most (s) |"
        f" cost to the run (s) | cost / a {RUN_STEPS:,}-step run |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        share = "" if r["share"] is None else f"{100 * r['share']:.1f} %"
        lines.append(
            f"| {r['method']} | {r['compile']} | {_or(r['elsewhere_s'], '.1f', '')} | {r['compile_s']:.1f} |"
            f" {_or(r['compiled_from'], 'd', '')} |"
            f" {r['eager_s']:.3f} | {_or(r['compiled_s'], '.3f', '')} | {_or(r['paid_back'], 'd', 'never')} |"
            f" {r['behind_s']:.1f} | {_or(r['cost_s'], '.1f', '')} | {share} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print(
            "usage: python -m amaml_lab.bench.compile_cost OUT (a folder of benchmarks/compile_runs.sh's runs)",
            file=sys.stderr,
        )
        return 2
    folder = Path(args[0])
    found = rows(folder)
    head = (
        "# benchmarks/compile_runs.sh: CosMixture2D 50/50, 100 rk4 steps, meta-batch 5, float64, one thread;"
        " cold and background: TMPDIR a new folder (a machine's first compile); new and new_background: a new"
        " folder in which another setting compiled first (a setting's first compile); the eager pace: the eager"
        " run's median meta-step"
    )
    write_text_atomic(folder.with_suffix(".json"), json.dumps(found, indent=2) + "\n")
    write_text_atomic(folder.with_suffix(".md"), head + "\n" + table(found) + "\n")
    print(table(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
