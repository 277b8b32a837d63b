"""Reads benchmarks/before_after.sh's rows: each row's fastest time over the rounds, before and after, their ratio,
and whether the gradient's error against the exact reference is the same (it must be: the same algorithms)."""

import json
import sys
from pathlib import Path


def fastest(folder: Path, kind: str, version: str) -> dict:
    rows = {}
    for f in sorted(folder.glob(f"{kind}-{version}-*.json")):
        for r in json.loads(f.read_text()):
            key = (r["name"], r["steps"])
            if "time_s" in r and (key not in rows or r["time_s"] < rows[key]["time_s"]):
                rows[key] = r
    return rows


# each kit row of the peers table and the peer that runs the same algorithm in the same process sequence
PAIRS = {
    "kit maml (euler)": "higher (unrolled SGD)",
    "kit maml (rk4)": "torchdiffeq odeint (rk4)",
    "kit adjoint (rk4, stored)": "torchdiffeq odeint_adjoint (rk4)",
    "kit adjoint (rk4, 32 states)": "torchdiffeq odeint_adjoint (rk4)",
    "kit imaml (CG 5)": "TorchOpt implicit (custom_root, CG 5)",
}


def against_peers(folder: Path) -> str:
    """Kit time / its peer's time, before and after: a ratio inside one run, so a busy machine cancels out."""
    out = ["| kit row | peer | steps | kit / peer before | kit / peer after |", "|---|---|---:|---:|---:|"]
    before, after = fastest(folder, "peers", "before"), fastest(folder, "peers", "after")
    for steps in sorted({k[1] for k in before}):
        for kit, peer in PAIRS.items():
            rows = [(v.get((kit, steps)), v.get((peer, steps))) for v in (before, after)]
            if all(a and b for a, b in rows):
                r = [a["time_s"] / b["time_s"] for a, b in rows]
                out.append(f"| {kit} | {peer} | {steps} | {r[0]:.2f} | {r[1]:.2f} |")
    return "\n".join(out)


def table(folder: Path) -> str:
    out = [
        "| table | row | steps | before (s) | after (s) | after / before | rel. error before | after |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in ("bench", "peers"):
        before, after = fastest(folder, kind, "before"), fastest(folder, kind, "after")
        for key in sorted(before.keys() & after.keys(), key=lambda k: (k[1], k[0])):
            b, a = before[key], after[key]
            err = [f"{r['rel_error']:.1e}" if r.get("rel_error") is not None else "" for r in (b, a)]
            out.append(
                f"| {kind} | {key[0]} | {key[1]} | {b['time_s']:.3f} | {a['time_s']:.3f} |"
                f" {a['time_s'] / b['time_s']:.2f} | {err[0]} | {err[1]} |"
            )
    return "\n".join(out)


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    text = table(folder) + "\n\n" + against_peers(folder)
    (folder / "before_after.md").write_text(text + "\n")
    print(text)
