"""What torch.compile costs before a graph has any size: the first call of the smallest graph pair a
meta-gradient needs (a forward graph and its backward: tanh(x @ w).sum(), x 50 x 2, w 2 x 32, float64, the
kit's inductor options), each in a fresh process, one thread:

* a machine's first: TMPDIR a new folder, so inductor builds its CPU probes and precompiled header too;
* a setting's first: the same folder again with other shapes (x 100 x 2): the graphs new, the rest built;
* later: the first shapes again, every graph in inductor's cache.

Set beside ``benchmarks/cpu-compile-runs.md`` (the paper's setting, whose graphs are whole rk4 steps), it says
how much of a compile is the compiler's fixed price and how much the graphs' size.

    python benchmarks/compile_floor.py benchmarks/cpu-compile-floor.md
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from amaml_lab.io import write_text_atomic

CHILD = """
import json, time, torch
from amaml_lab.compiled import OPTIONS
x = torch.randn({points}, 2, dtype=torch.float64)
w = torch.randn(2, 32, dtype=torch.float64, requires_grad=True)
f = torch.compile(lambda x, w: torch.tanh(x @ w).sum(), fullgraph=True, dynamic=False, options=OPTIONS["cpu"])
start = time.perf_counter()
y = f(x, w)
forward = time.perf_counter()
y.backward()
print(json.dumps({{"forward_s": forward - start, "backward_s": time.perf_counter() - forward}}))
"""
KINDS = (("machine's first", 50), ("setting's first", 100), ("later", 50))


def measure(tmpdir: str, points: int) -> dict:
    env = {**os.environ, "TMPDIR": tmpdir, "OMP_NUM_THREADS": "1"}
    env.pop("TORCHINDUCTOR_CACHE_DIR", None)
    done = subprocess.run(
        [sys.executable, "-c", CHILD.format(points=points)], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].endswith(".md"):
        print("usage: python benchmarks/compile_floor.py OUT.md", file=sys.stderr)
        return 2
    out = Path(argv[0])
    with tempfile.TemporaryDirectory() as tmpdir:
        rows = [{"compile": kind, "points": points, **measure(tmpdir, points)} for kind, points in KINDS]
    text = table(rows)
    write_text_atomic(out, text)
    write_text_atomic(out.with_suffix(".json"), json.dumps(rows, indent=2) + "\n")
    print(text, end="")
    return 0


def table(rows: list[dict]) -> str:
    lines = [
        "# benchmarks/compile_floor.py: tanh(x @ w).sum() and its backward, float64, one thread, each row a"
        " fresh process, TMPDIR one new folder for all three",
        "| compile | x | forward graph, first call (s) | backward graph, first call (s) | both (s) |",
        "|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r['compile']} | {r['points']} x 2 | {r['forward_s']:.1f} | {r['backward_s']:.1f} |"
        f" {r['forward_s'] + r['backward_s']:.1f} |"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
