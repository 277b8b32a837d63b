"""The command line: ``amaml-lab run | compare | reevaluate | validate | demo | bench`` (also ``python -m amaml_lab``).

Bad input (and missing data) exits with status 2 and one line naming what was
wrong; a diverging run exits with status 1 and one line; no traceback.
"""

from __future__ import annotations

import argparse
import sys

from . import bench
from . import commands as experiments
from .bench.catalogue import CONFIGS
from .checks import OneLineParser, check_device
from .tasks.examples import build_task
from .training.train import Diverged


def _demo(args) -> int:
    """Meta-gradients of one MLP regression task by each method, against back-propagation."""
    import warnings

    from . import METHODS, BacksolveWarning, compare_methods
    from .metagrad.compare import DEFAULT_METHODS

    support_loss, query_loss, theta = build_task(args.shots, "float64", "cpu", 32, args.seed)
    methods = [
        *DEFAULT_METHODS,
        ("adjoint (sqrt checkpoints)", "adjoint", {"checkpoints": "sqrt"}),
        ("backsolve", "backsolve", {}),
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BacksolveWarning)
        rows = compare_methods(
            support_loss,
            query_loss,
            theta,
            [args.steps],
            step_size=args.step_size,
            methods=methods,
            solver=args.solver,
            reg=args.reg,
        )
    print(
        f"# one CosMixture2D task, MLP 2-32-32-1, {args.steps} {args.solver} steps of {args.step_size}, "
        f"reg {args.reg}; errors against maml's gradient (imaml: against maml with reg = lam)"
    )
    print("| method | query loss | rel. error | cosine | grad evals | HVPs | stored states | time (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['label']} | {r['query_loss']:.4g} | {r['rel_error']:.2e} | {r['cosine']:.6f} | "
            f"{r['grad_evals']} | {r['hvp_evals']} | {r['stored_states']} | {r['wall_time']:.3f} |"
        )
    if caught:
        print(f"\nbacksolve warned: {caught[0].message}")
    print()
    for m in METHODS.values():
        print(f"- {m.name}: {m.summary}")
    return 0


def _step_counts(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"steps must be integers >= 1, got {text!r}")
    return values


def _bench_device(text: str) -> str:
    try:
        return check_device(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _bench_names(text: str) -> list[str]:
    names = [v for v in text.split(",") if v]
    bad = [n for n in names if n not in CONFIGS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown method {bad[0] if bad else text!r}; allowed: {', '.join(CONFIGS)}")
    return names


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--steps",
        type=_step_counts,
        default=[10, 100, 1000, 10000],
        help="comma-separated inner step counts (default 10,100,1000,10000)",
    )
    parser.add_argument(
        "--methods",
        type=_bench_names,
        default=["maml", "adjoint", "adjoint-sqrt", "adjoint-c64"],
        help=f"comma-separated, from: {', '.join(CONFIGS)}",
    )
    parser.add_argument("--shots", type=int, default=100, help="support and query points (default 100)")
    parser.add_argument("--hidden", type=int, default=32, help="hidden width of the 2-layer tanh MLP (default 32)")
    parser.add_argument("--step-size", type=float, default=0.01, help="inner step size (default 0.01)")
    parser.add_argument("--solver", choices=["euler", "midpoint", "rk4"], default="rk4")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    parser.add_argument("--device", type=_bench_device, default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs per measurement, the fastest counts (default 3)"
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=60.0,
        help="stop repeating once a measurement's timed runs pass this many seconds (default 60)",
    )
    parser.add_argument(
        "--maml-max-steps", type=int, default=None, help="skip maml above this many steps (its memory grows linearly)"
    )
    parser.add_argument(
        "--memory-budget",
        type=float,
        default=None,
        metavar="MB",
        help="refuse an unrolled row (maml, conv4-maml, head-maml) whose peak memory, extrapolated"
        " from its two largest measured step counts, exceeds this many MB",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the rows as JSON to this file")
    parser.add_argument(
        "--meta-step",
        action="store_true",
        help="time a whole meta-step of the paper's setting instead (meta-batch 5, --shots support and"
        " query points, float64), with the MLP's losses stacked and, as before, vmapped",
    )
    parser.add_argument(
        "--peers",
        action="store_true",
        help="instead: the kit beside higher, TorchOpt and torchdiffeq (odeint, odeint_adjoint) on"
        " the same task, each row's time, peak memory and error to the exact gradient"
        " (peers are the optional [peers] extra; missing ones are skipped)",
    )
    parser.add_argument(
        "--jax",
        action="store_true",
        help="instead: the paper's meta-gradient (--domain, --shots, --steps: one count, default 100)"
        " by the kit, eager and compiled, beside JAX (jit through the loop) and diffrax (its"
        " default adjoint), same theta and batch, interleaved --repeat rounds (JAX: the [jax] extra)",
    )
    parser.add_argument(
        "--widgets",
        action="store_true",
        help="instead: build each notebook widget app with FAST settings and time 10 moves of each"
        " control across its range (build time, redraw median and worst)",
    )
    parser.add_argument(
        "--domain", default="CosMixture2D", help="--meta-step: the synthetic domain (default CosMixture2D)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="amaml-lab", description="Meta-learning with long inner loops: adjoint methods side by side."
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    experiments.add_run(
        sub.add_parser("run", help="meta-train one method on a domain and evaluate it (the reference's experiment.sh)")
    )
    experiments.add_compare(
        sub.add_parser(
            "compare", help="several methods on the same tasks; a table like the paper's Table 2 (Markdown and CSV)"
        )
    )
    experiments.add_reevaluate(
        sub.add_parser(
            "reevaluate",
            help="evaluate finished runs' final theta again with other evaluation settings (e.g. --eval-steps 5000)",
        )
    )
    experiments.add_validate(
        sub.add_parser(
            "validate",
            help="score runs' theta on meta-validation functions after their own loop (for choosing settings)",
        )
    )
    demo = sub.add_parser("demo", help="compare every meta-gradient method on one task (headless)")
    demo.add_argument("--steps", type=int, default=200)
    demo.add_argument("--step-size", type=float, default=0.01)
    demo.add_argument("--solver", choices=["euler", "midpoint", "rk4", "dopri5"], default="rk4")
    demo.add_argument("--reg", type=float, default=0.0)
    demo.add_argument("--shots", type=int, default=50)
    demo.add_argument("--seed", type=int, default=0)
    b = sub.add_parser("bench", help="time and peak memory of one meta-gradient against inner steps")
    add_bench_arguments(b)
    w = sub.add_parser(
        "warm", help="compile the usual settings once into inductor's cache, so that --compile runs only load them"
    )
    w.add_argument("settings", nargs="*", help="labels of the settings to warm (default: every one; --list shows them)")
    w.add_argument("--list", action="store_true", help="print the settings' labels and the cache's folder, and stop")
    return parser


def _warm(args) -> int:
    """``warm``: each setting's seconds and whether its graphs were compiled or loaded, one line each."""
    from .training import warm

    if args.list:
        print("\n".join(label for label, _ in warm.SETTINGS))
        print(f"inductor's cache: {warm.cache_folder()}")
        return 0
    for label in args.settings:
        warm.config_of(label)  # an unknown label fails before anything compiles

    def line(row):
        done = f"{row['hits']} graphs loaded (warm already)" if row["warm"] else f"{row['misses']} graphs compiled"
        print(f"{row['setting']}: {row['seconds']:.1f} s, {done}", flush=True)

    rows = warm.warm(args.settings or None, report=line)
    print(f"{len(rows)} settings warm in inductor's cache: {warm.cache_folder()}")
    return 0


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def _distributed(command, args, argv) -> int:
    """``--nproc N``: launch N ranks through torchrun; inside a rank: join the group, run, leave."""
    import os

    from .training import distributed

    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        method = args.method if args.command == "run" else args.methods[0]
        batch = experiments.config(args, method, args.inner_steps).resolved().meta_batch
        if args.nproc > batch:
            raise ValueError(
                f"--nproc {args.nproc} is more processes than the meta-batch's {batch} tasks;"
                f" use --nproc 1..{batch} or a larger --meta-batch"
            )
        return distributed.launch(_without_nproc(argv), args.nproc)
    joined = distributed.init_from_environment(args.device)
    try:
        return command(args)
    finally:
        if joined:
            distributed.finish()


def main(argv=None) -> int:
    """Parse ``argv`` and run its command: ``run``, ``compare``, ``reevaluate``, ``validate``, ``demo``, ``bench`` or
    ``warm``.

    ``run`` and ``compare`` with ``--nproc N`` (N > 1) launch N ranks through torchrun and wait for them.

    Args:
        argv: the arguments after the program's name, a list of strings; None reads ``sys.argv[1:]``.

    Returns:
        The exit status: 0 when the command succeeded (with ``--nproc N``, torchrun's own status); 2 for bad input
        or missing data (a ValueError or FileNotFoundError, one line on stderr); 1 for a diverging run (one line on
        stderr); 130 when interrupted (the last checkpoint is kept).  A usage error that the parser finds exits
        with status 2 and one line on stderr instead (SystemExit).
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return _distributed(experiments.run_command, args, argv)
        if args.command == "compare":
            return _distributed(experiments.compare_command, args, argv)
        if args.command == "reevaluate":
            return experiments.reevaluate_command(args)
        if args.command == "validate":
            return experiments.validate_command(args)
        if args.command == "demo":
            return _demo(args)
        if args.command == "warm":
            return _warm(args)
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
