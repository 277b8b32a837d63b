"""What calling ATen's tanh in the compiled CPU graphs bought (issue 36): the paper's meta-step (CosMixture2D 50/50,
meta-batch 5, 2-32-32-1 tanh MLP, float64, 100 rk4 steps of 0.01, reg 1), the kit's compiled discrete adjoint and
compiled maml, timed in two worker processes at once, one keeping inductor's own tanh (``compiled.ATEN_TANH =
False``: before) and one calling ATen's (after), each with its own new inductor cache (the cache does not key on
the choice), one thread each, the rounds interleaved: before, after, before, ... so that a busy machine slows both
alike; each ratio is the median over the rounds of after's time over before's in the same round.

    OMP_NUM_THREADS=1 python benchmarks/tanh_before_after.py benchmarks/cpu-tanh-before-after.md
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
ROWS = ("kit adjoint discrete (compiled)", "kit maml (compiled)")
WORKER = """
import json, sys, time, torch
torch.set_num_threads(1)
from amaml_lab import compiled
from amaml_lab.bench.side_by_side import KIT_ROWS, kit_fn
compiled.ATEN_TANH = sys.argv[1] == "after"
cfg = dict(domain="CosMixture2D", shots=50, steps=100, seed=0)
fns = {name: kit_fn(cfg, *KIT_ROWS[name])[0] for name in json.loads(sys.argv[2])}
grads = {name: fn() for name, fn in fns.items()}
for fn in fns.values():
    fn()
print(json.dumps({"ready": compiled.tanh_kernel(), "grad": grads[list(grads)[0]].tolist()}), flush=True)
for line in sys.stdin:
    times = {}
    for name, fn in fns.items():
        start = time.perf_counter()
        fn()
        times[name] = time.perf_counter() - start
    print(json.dumps(times), flush=True)
"""


def _worker(version: str, cache: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", TORCHINDUCTOR_CACHE_DIR=cache)
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, version, json.dumps(ROWS)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def main(out: str) -> None:
    with tempfile.TemporaryDirectory() as before_cache, tempfile.TemporaryDirectory() as after_cache:
        workers = {"before": _worker("before", before_cache), "after": _worker("after", after_cache)}
        ready = {v: json.loads(w.stdout.readline()) for v, w in workers.items()}
        times = {v: {name: [] for name in ROWS} for v in workers}
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
        f"# ATen's tanh in the compiled CPU graphs, before and after: {time.strftime('%Y-%m-%d %H:%M')}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, one thread each\n",
        "Command: `OMP_NUM_THREADS=1 python benchmarks/tanh_before_after.py benchmarks/cpu-tanh-before-after.md`"
        f" (its docstring says how). {ROUNDS} interleaved rounds; the workers' tanh: before "
        f"{ready['before']['ready']}, after {ready['after']['ready']}; the discrete adjoint's meta-gradients differ"
        f" by {diff:.1e} (largest difference over the largest entry).\n",
        "| meta-step | before (s, median) | after (s, median) | after / before, per round |",
        "|---|---:|---:|---:|",
    ]
    for name in ROWS:
        ratio = statistics.median(x / y for x, y in zip(times["after"][name], times["before"][name]))
        lines.append(
            f"| {name} | {statistics.median(times['before'][name]):.3f} | "
            f"{statistics.median(times['after'][name]):.3f} | {ratio:.2f} |"
        )
    write_text_atomic(out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/cpu-tanh-before-after.md")
