"""What ``--compile`` costs a run: the run folders of ``benchmarks/compile_runs.sh`` read into one table.

For each method, three runs of the same setting: ``cold`` (a machine's first ``--compile`` run: inductor's cache,
its precompiled header and its CPU probes built in the run), ``eager`` and ``warm`` (``--compile`` again on the
same machine).  A row gives the compile the run paid (its summary's ``compile_s``), the median meta-step of the
eager and the compiled runs, the meta-step at which the compiled run has caught up with the eager one
(compile / (eager - compiled) per step: the compile paid back), and the compile as a share of a
:data:`RUN_STEPS`-meta-step run.

    python -m amaml_lab.bench.compile_cost OUT    # writes OUT.md and OUT.json beside the folder
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from ..io import write_text_atomic

RUN_STEPS = 5000  # the paper's meta-training length
KINDS = ("cold", "eager", "warm")
COMMITTED = Path(__file__).resolve().parents[2] / "benchmarks" / "cpu-compile-runs"  # in the source tree


def step_seconds(run: Path) -> list[float]:
    """Each meta-step's seconds, from a run's metrics.csv."""
    return [float(line.split(",")[2]) for line in (run / "metrics.csv").read_text().split()[1:]]


def rows(folder: Path) -> list[dict]:
    """One row per (method, compiled run) found in ``folder`` (``{method}-{cold,eager,warm}`` run folders)."""
    out = []
    methods = sorted({p.name.rsplit("-", 1)[0] for p in folder.iterdir() if p.name.rsplit("-", 1)[-1] in KINDS})
    for method in methods:
        eager = statistics.median(step_seconds(folder / f"{method}-eager"))
        for kind in ("cold", "warm"):
            run = folder / f"{method}-{kind}"
            compiled = statistics.median(step_seconds(run))
            compile_s = json.loads((run / "summary.json").read_text())["compile_s"]
            gain = eager - compiled
            out.append({"method": method, "cache": kind, "compile_s": compile_s, "eager_s": eager,
                        "compiled_s": compiled, "break_even": compile_s / gain if gain > 0 else None,
                        "share": compile_s / (RUN_STEPS * compiled)})
    return out


def committed() -> dict:
    """{(method, "cold" or "warm"): row} of the committed runs (benchmarks/cpu-compile-runs, a source tree's)."""
    if not COMMITTED.is_dir():
        raise FileNotFoundError(f"{COMMITTED} is not here: the committed compile runs are in the kit's source tree")
    return {(r["method"], r["cache"]): r for r in rows(COMMITTED)}


def table(rows: list[dict]) -> str:
    lines = ["| method | inductor cache | compile (s) | eager s / meta-step | compiled s / meta-step |"
             f" compile paid back at meta-step | compile / a {RUN_STEPS:,}-step run |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        back = f"{r['break_even']:.0f} ({100 * r['break_even'] / RUN_STEPS:.1f} %)" if r["break_even"] else "never"
        lines.append(f"| {r['method']} | {r['cache']} | {r['compile_s']:.1f} | {r['eager_s']:.3f} | "
                     f"{r['compiled_s']:.3f} | {back} | {100 * r['share']:.1f} % |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: python -m amaml_lab.bench.compile_cost OUT (a folder of benchmarks/compile_runs.sh's runs)",
              file=sys.stderr)
        return 2
    folder = Path(args[0])
    found = rows(folder)
    head = ("# benchmarks/compile_runs.sh: CosMixture2D 50/50, 100 rk4 steps, meta-batch 5, float64, one thread;"
            " a meta-step's seconds: the median of the run's; cold: TMPDIR a new folder")
    write_text_atomic(folder.with_suffix(".json"), json.dumps(found, indent=2) + "\n")
    write_text_atomic(folder.with_suffix(".md"), head + "\n" + table(found) + "\n")
    print(table(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
