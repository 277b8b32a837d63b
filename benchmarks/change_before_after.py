"""One change to the compiled path, before and after, on the paper's meta-step (CosMixture2D 50/50, meta-batch 5,
2-32-32-1 tanh MLP, float64, 100 rk4 steps of 0.01, reg 1): two worker processes at once, one with the change undone
(before) and one as the kit ships (after), each with its own new inductor cache, one thread each, the rounds
interleaved (before, after, before, ...) so that a busy machine slows both alike; each ratio is the median over the
rounds of after's time over before's in the same round.  The workers' first meta-gradients are compared (largest
difference over the largest entry).  The changes measured: ``tanh_before_after.py``, ``scan_before_after.py``,
``scan_ends_before_after.py``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from amaml_lab.io import write_text_atomic

ROUNDS = 15
WORKER = """
import json, sys, time, torch
torch.set_num_threads(1)
from amaml_lab import compiled
from amaml_lab.bench.side_by_side import KIT_ROWS, kit_fn
exec(sys.argv[1])  # the version's setup
cfg = dict(domain="CosMixture2D", shots=50, steps=100, seed=0)
specs = {name: KIT_ROWS.get(name) or (name.split()[1], True, {}) for name in json.loads(sys.argv[2])}
fns = {name: kit_fn(cfg, *spec)[0] for name, spec in specs.items()}  # "kit METHOD (compiled)" beyond KIT_ROWS
grads = {name: fn() for name, fn in fns.items()}
for fn in fns.values():
    fn()
print(json.dumps({"ready": eval(sys.argv[3]), "grad": grads[list(grads)[0]].tolist()}), flush=True)
for line in sys.stdin:
    times = {}
    for name, fn in fns.items():
        start = time.perf_counter()
        fn()
        times[name] = time.perf_counter() - start
    print(json.dumps(times), flush=True)
"""


def _worker(setup: str, rows, probe: str, cache: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", TORCHINDUCTOR_CACHE_DIR=cache)
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, setup, json.dumps(rows), probe],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def compare(title: str, command: str, setups: dict, probe: tuple, rows, out: str) -> None:
    """Time ``rows`` (names in KIT_ROWS, or "kit METHOD (compiled)") under ``setups`` {"before": code, "after":
    code}; write the table to ``out``.  ``probe`` (a label, an expression in the worker) says which version each
    worker runs, in the table."""
    label, probe = probe
    with tempfile.TemporaryDirectory() as before_cache, tempfile.TemporaryDirectory() as after_cache:
        caches = {"before": before_cache, "after": after_cache}
        workers = {v: _worker(setups[v], rows, probe, caches[v]) for v in ("before", "after")}
        ready = {v: json.loads(w.stdout.readline()) for v, w in workers.items()}
        times = {v: {name: [] for name in rows} for v in workers}
        for _ in range(ROUNDS):
            for version, w in workers.items():
                w.stdin.write("go\n")
                w.stdin.flush()
                for name, t in json.loads(w.stdout.readline()).items():
                    times[version][name].append(t)
        for w in workers.values():
            w.stdin.close()
            w.wait()
    b, a = (ready[v]["grad"] for v in ("before", "after"))
    diff = max(abs(x - y) for x, y in zip(a, b)) / max(abs(x) for x in b)
    lines = [
        f"# {title}, before and after: {time.strftime('%Y-%m-%d %H:%M')}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, one thread each\n",
        f"Command: `OMP_NUM_THREADS=1 python {command}` (its docstring says how). {ROUNDS} interleaved rounds; the"
        f" workers' {label}: before {ready['before']['ready']},"
        f" after {ready['after']['ready']}; the {rows[0].removeprefix('kit ')}'s meta-gradients differ"
        f" by {diff:.1e} (largest difference over the largest entry).\n",
        "| meta-step | before (s, median) | after (s, median) | after / before, per round |",
        "|---|---:|---:|---:|",
    ]
    for name in rows:
        ratio = statistics.median(x / y for x, y in zip(times["after"][name], times["before"][name]))
        lines.append(
            f"| {name} | {statistics.median(times['before'][name]):.3f} | "
            f"{statistics.median(times['after'][name]):.3f} | {ratio:.2f} |"
        )
    write_text_atomic(out, "\n".join(lines) + "\n")
    print("\n".join(lines))
