"""What a run's compile costs once ``amaml-lab warm`` has paid the first one (issue 36: at most 5 s here).

For the paper's adjoint and maml (CosMixture2D 50/50, the reference protocol: 100 rk4 steps of 0.01, reg 1,
meta-batch 5, float64), one thread, each in a new, empty TMPDIR (inductor's cache, precompiled header and CPU probes
not there: a machine's first compile):

1. ``amaml-lab warm "CosMixture2D 50 50 METHOD"``: its seconds and what inductor compiled (its own report);
2. then a 3-meta-step run of the setting with ``--compile-wait`` (every meta-step compiled, the compile waited
   for): the compile it waited for (``compile_s`` in its summary.json) and what inductor loaded or compiled for it.

    OMP_NUM_THREADS=1 python benchmarks/warm_runs.py benchmarks/cpu-warm-runs.md

Quiet the machine first: the numbers are seconds, and the table says when it ran.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from amaml_lab.io import write_text_atomic

SETTING = "CosMixture2D 50 50"


def _amaml(args: list[str], tmp: str) -> str:
    env = dict(os.environ, TMPDIR=tmp, OMP_NUM_THREADS="1")
    env.pop("TORCHINDUCTOR_CACHE_DIR", None)  # inductor's cache under the new TMPDIR
    done = subprocess.run([sys.executable, "-m", "amaml_lab", *args], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"amaml-lab {' '.join(args)} failed: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout


def one(method: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        report = _amaml(["warm", f"{SETTING} {method}"], tmp)
        warm_s = time.perf_counter() - started
        out = Path(tmp) / "run"
        run = ["run", *SETTING.split(), "100", "cpu", "--method", method, "--protocol", "reference", "--compile-wait"]
        _amaml([*run, "--meta-steps", "3", "--eval-tasks", "1", "--eval-steps", "1", "--quiet", "--out", str(out)], tmp)
        summary = json.loads((out / "summary.json").read_text())
    [record] = summary["compiles"]
    return {
        "method": method,
        "warm_s": warm_s,
        "warm_report": " ".join(report.split()),
        "compile_s": summary["compile_s"],
        "cache": record.get("cache"),
    }


def main(out: str) -> None:
    rows = [one(method) for method in ("adjoint", "maml")]
    lines = [
        f"# A run's compile after `amaml-lab warm`: {time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, one thread\n",
        "Command: `OMP_NUM_THREADS=1 python benchmarks/warm_runs.py benchmarks/cpu-warm-runs.md` (its docstring says"
        " what it measures). Each method in a new, empty TMPDIR: `warm` pays a machine's first compile, then a"
        " `--compile-wait` run of the same setting.\n",
        "| method | `warm` (s, the process) | the run's compile, waited for (s) | what inductor did for the run |",
        "|---|---:|---:|---|",
    ]
    for r in rows:
        cache = r["cache"] or {}
        did = f"{cache.get('loaded', '?')} graphs loaded, {cache.get('compiled', '?')} compiled"
        lines.append(f"| {r['method']} | {r['warm_s']:.1f} | {r['compile_s']:.1f} | {did} |")
    lines += ["", "`warm`'s own report:", ""] + [f"* {r['method']}: {r['warm_report']}" for r in rows]
    write_text_atomic(out, "\n".join(lines) + "\n")
    write_text_atomic(Path(out).with_suffix(".json"), json.dumps(rows, indent=1) + "\n")
    print(Path(out).read_text())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/cpu-warm-runs.md")
