"""The command line: ``amaml-lab run | compare | demo | bench`` (also ``python -m amaml_lab``).

Bad input (and missing data) exits with status 2 and one line naming what was
wrong; a diverging run exits with status 1 and one line; no traceback.
"""
from __future__ import annotations

import argparse
import sys

from . import bench, experiments
from .train import Diverged


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message):  # one line, status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _demo(args) -> int:
    """Meta-gradients of one MLP regression task by each method, against back-propagation."""
    import warnings

    from . import METHODS, BacksolveWarning, compare_methods
    from .metagrad.compare import DEFAULT_METHODS

    support_loss, query_loss, theta = bench.build_task(args.shots, "float64", "cpu", 32, args.seed)
    methods = [*DEFAULT_METHODS, ("adjoint (sqrt checkpoints)", "adjoint", {"checkpoints": "sqrt"}),
               ("backsolve", "backsolve", {})]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BacksolveWarning)
        rows = compare_methods(support_loss, query_loss, theta, [args.steps], step_size=args.step_size,
                               methods=methods, solver=args.solver, reg=args.reg)
    print(f"# one CosMixture2D task, MLP 2-32-32-1, {args.steps} {args.solver} steps of {args.step_size}, "
          f"reg {args.reg}; errors against maml's gradient (imaml: against maml with reg = lam)")
    print("| method | query loss | rel. error | cosine | grad evals | HVPs | stored states | time (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['label']} | {r['query_loss']:.4g} | {r['rel_error']:.2e} | {r['cosine']:.6f} | "
              f"{r['grad_evals']} | {r['hvp_evals']} | {r['stored_states']} | {r['wall_time']:.3f} |")
    if caught:
        print(f"\nbacksolve warned: {caught[0].message}")
    print()
    for m in METHODS.values():
        print(f"- {m.name}: {m.summary}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="amaml-lab", description="Meta-learning with long inner loops: adjoint methods side by side.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    experiments.add_run(sub.add_parser(
        "run", help="meta-train one method on a domain and evaluate it (the reference's experiment.sh)"))
    experiments.add_compare(sub.add_parser(
        "compare", help="several methods on the same tasks; a table like the paper's Table 2 (Markdown and CSV)"))
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
        if args.command == "run":
            return experiments.run_command(args)
        if args.command == "compare":
            return experiments.compare_command(args)
        if args.command == "demo":
            return _demo(args)
        print(bench.report(args))
        return 0
    except (ValueError, FileNotFoundError) as err:
        print(f"amaml-lab: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except Diverged as err:
        print(f"amaml-lab: {_one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("amaml-lab: interrupted; the last checkpoint is kept (continue with --resume)", file=sys.stderr)
        return 130


def _one_line(err) -> str:
    return " ".join(str(err).split())


if __name__ == "__main__":
    sys.exit(main())
