"""The command line: ``amaml-lab demo | bench`` (also ``python -m amaml_lab``).

Bad input exits with status 2 and one line naming what was wrong; no traceback.
"""
from __future__ import annotations

import argparse
import sys

from . import bench


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message):  # one line, status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _demo(args) -> int:
    """Meta-gradients of one MLP regression task by each method, against back-propagation."""
    import warnings

    import torch

    from . import METHODS, BacksolveWarning, meta_gradient

    support_loss, query_loss, theta = bench.build_task(args.shots, "float64", "cpu", 32, args.seed)
    kw = dict(steps=args.steps, step_size=args.step_size, solver=args.solver, reg=args.reg)
    runs = [("maml", {}), ("adjoint", {}), ("adjoint", {"scheme": "discrete"}),
            ("adjoint", {"checkpoints": "sqrt"}), ("backsolve", {})]
    ref = None
    print(f"# one CosMixture2D task, MLP 2-32-32-1, {args.steps} {args.solver} steps of {args.step_size}, reg {args.reg}")
    print("| method | options | query loss | rel. error vs maml | grad evals | HVPs | stored states | time (s) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, opts in runs:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", BacksolveWarning)
            r = meta_gradient(support_loss, query_loss, theta, method=name, **kw, **opts)
        g = torch.cat([v.reshape(-1) for v in r.grad.values()])
        ref = g if ref is None else ref
        err = float(torch.linalg.vector_norm(g - ref) / torch.linalg.vector_norm(ref))
        s = r.stats
        note = " (warned: state reconstruction drifted)" if caught else ""
        print(f"| {name} | {opts or ''} | {r.query_loss:.4g} | {err:.2e}{note} | {s['grad_evals']} | "
              f"{s['hvp_evals']} | {s['stored_states']} | {s['wall_time']:.3f} |")
    print()
    for m in METHODS.values():
        print(f"- {m.name}: {m.summary}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="amaml-lab", description="Meta-learning with long inner loops: adjoint methods side by side.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    demo = sub.add_parser("demo", help="compare every meta-gradient method on one task (headless)")
    demo.add_argument("--steps", type=int, default=200)
    demo.add_argument("--step-size", type=float, default=0.01)
    demo.add_argument("--solver", choices=["euler", "midpoint", "rk4", "dopri5"], default="rk4")
    demo.add_argument("--reg", type=float, default=0.0)
    demo.add_argument("--shots", type=int, default=50)
    demo.add_argument("--seed", type=int, default=0)
    b = sub.add_parser("bench", help="time and peak memory of one meta-gradient against inner steps")
    bench.add_arguments(b)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            return _demo(args)
        print(bench.report(args))
        return 0
    except ValueError as err:
        print(f"amaml-lab: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
