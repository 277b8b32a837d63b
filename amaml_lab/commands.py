"""``amaml-lab run`` and ``amaml-lab compare``: the paper's experiments from the command line.

``run DOMAIN SHOTS QUERY INNER_STEPS DEVICE`` mirrors the reference's
``experiment.sh``; ``compare`` runs several methods on the same tasks (each in
its own folder, resumable) and writes a table like the paper's Table 2 as
Markdown and CSV.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .io import write_text_atomic
from .metagrad import METHODS
from .studies.rundir import per_task
from .studies.stats import CLASSIFICATION_HEADER, TABLE_HEADER, markdown_table, table_rows
from .tasks.domains import DOMAINS
from .training.config import TRAIN_METHODS, RunConfig
from .training.runs import csv_text, reevaluate, run, validate

PAPER_METHODS = ("adjoint", "maml", "fomaml", "imaml", "reptile")


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}; got {text!r}")
        return value

    return parse


_positive_int, _nonnegative_int, _ways = _int_at_least(1), _int_at_least(0), _int_at_least(2)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number; got {text!r}")
    return value


def _methods(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    for n in names:
        if n not in TRAIN_METHODS:
            raise argparse.ArgumentTypeError(f"unknown method {n!r}; allowed: {', '.join(TRAIN_METHODS)}")
    if not names:
        raise argparse.ArgumentTypeError(f"name at least one method from: {', '.join(TRAIN_METHODS)}")
    return names


def _horizons(text: str) -> tuple:
    return tuple(sorted({_nonnegative_int(t.strip()) for t in text.split(",") if t.strip()}))


def _checkpoints(text: str):
    return text if text in ("sqrt", "auto") else _positive_int(text)


def _add_speed(p) -> None:
    """The options that trade speed for repeatability: deterministic kernels, compiled graphs."""
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="CUDA: deterministic kernels, no TF32, so runs repeat and resume bit for bit (slower)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="meta-gradients through torch.compile graphs: the same numbers to rounding, faster once"
        " compiled (fixed-grid solvers); they compile in another process while the first"
        " meta-steps run eagerly, then load here from inductor's cache in seconds",
    )
    p.add_argument(
        "--compile-wait",
        action="store_true",
        help="--compile, waiting for the graphs before the first meta-step: every step compiled, so"
        " the run repeats bit for bit",
    )


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("domain", metavar="DOMAIN", choices=DOMAINS, help=f"one of: {', '.join(DOMAINS)}")
    p.add_argument("shots", metavar="SHOTS", type=_positive_int, help="support points per task")
    p.add_argument("query", metavar="QUERY", type=_positive_int, help="query points per task")
    p.add_argument("inner_steps", metavar="INNER_STEPS", type=_positive_int, help="inner solver steps")
    p.add_argument("device", metavar="DEVICE", help="cpu, cuda or cuda:N")
    p.add_argument("--meta-steps", type=_positive_int, default=5000, help="meta-updates (default 5000)")
    p.add_argument("--seed", type=int, default=0, help="model initialisation and episode sampling (default 0)")
    p.add_argument("--out", default=None, help="output folder (default runs/...)")
    p.add_argument("--resume", action="store_true", help="continue from the output folder's last checkpoint")
    p.add_argument(
        "--nproc",
        type=_positive_int,
        default=1,
        help="split each meta-batch's tasks over N processes with torch.distributed (gloo on the CPU,"
        " NCCL on GPUs), launched through torchrun (default 1: this process)",
    )
    p.add_argument("--data-root", default=None, help="folder holding the data set (ratings domains)")
    p.add_argument("--ways", type=_ways, default=5, help="Omniglot: classes per episode (default 5)")
    p.add_argument(
        "--subset",
        choices=["auto", "full", "small", "demo"],
        default="auto",
        help="Omniglot archives: full where found, else the small subsets (default auto); demo: generated",
    )
    p.add_argument(
        "--validation-characters",
        type=_nonnegative_int,
        default=0,
        help="Omniglot: hold out N meta-train characters (with their rotations) for meta-validation episodes,"
        " scored at every evaluation along training (evals.csv's val_accuracy; default 0: none)",
    )
    p.add_argument(
        "--eval-tasks", type=_positive_int, default=None, help="meta-test tasks (default 100; Omniglot 600 episodes)"
    )
    p.add_argument(
        "--eval-steps",
        type=_nonnegative_int,
        default=None,
        help="Adam fine-tuning iterations per meta-test task (default 5000; Omniglot: none, the inner loop)",
    )
    p.add_argument(
        "--protocol",
        choices=["kit", "reference"],
        default="kit",
        help="synthetic domains: kit (fresh episodes, meta-train scaling; default) or reference (the Adjoint"
        " MAML code's fixed episodes and scaling over all tasks)",
    )
    _add_speed(p)
    p.add_argument(
        "--eval-interval",
        type=_nonnegative_int,
        default=0,
        help="evaluate every N meta-steps into evals.csv, as the reference does with 100 (default 0: at the end only)",
    )
    p.add_argument(
        "--step-size", type=_positive_float, default=None, help="inner step size (default 0.01; Omniglot 0.1)"
    )
    p.add_argument("--solver", choices=["euler", "midpoint", "rk4"], default="rk4")
    p.add_argument("--reg", type=float, default=None, help="proximal weight of the inner flow (default 1; Omniglot 0)")
    p.add_argument(
        "--meta-batch", type=_positive_int, default=None, help="tasks per meta-update (default 5; Omniglot 32)"
    )
    p.add_argument(
        "--meta-lr", type=_positive_float, default=None, help="outer learning rate (default 0.01; Omniglot 1e-3)"
    )
    p.add_argument(
        "--optimizer", choices=["sgd", "adam"], default=None, help="outer optimiser (default sgd; Omniglot adam)"
    )
    p.add_argument(
        "--hidden",
        type=_positive_int,
        default=None,
        help="hidden width (default 32; 40 for ratings; 64 filters for Omniglot)",
    )
    p.add_argument("--dtype", choices=["float64", "float32"], default=None, help="default float64; Omniglot float32")
    p.add_argument("--checkpoint-every", type=_positive_int, default=100, help="meta-steps between checkpoints")
    p.add_argument(
        "--bug-compatible",
        action="store_true",
        help="Alpine2D with the reference code's single phase for both dimensions",
    )
    p.add_argument("--truncate", type=_nonnegative_int, default=None, help="truncated: steps back-propagated")
    p.add_argument("--lam", type=_positive_float, default=None, help="imaml: proximal weight (default 2)")
    p.add_argument("--cg-steps", type=_positive_int, default=None, help="imaml: CG iterations (default 5)")
    p.add_argument(
        "--checkpoints",
        type=_checkpoints,
        default=None,
        help="adjoint or maml: stored states (an integer >= 3 or 'sqrt'; adjoint also 'auto': every state"
        " while they fit 256 MB, else as many as fit)",
    )
    p.add_argument(
        "--scheme",
        choices=["continuous", "grid", "discrete"],
        default=None,
        help="adjoint or comln: how the adjoint runs backward (default continuous; grid: stages on the"
        " stored states, about 0.6x the time, ten times the error; discrete: equal to maml)",
    )
    p.add_argument(
        "--learn-horizon",
        action="store_true",
        help="comln: meta-learn the horizon T = INNER_STEPS x step size, as COMLN does",
    )
    p.add_argument(
        "--test-horizons",
        type=_horizons,
        default=(),
        help="regression: also the error after each of these numbers of inner steps, comma-separated"
        " (tasks.csv columns adapt<N>; 0 is theta itself)",
    )
    p.add_argument(
        "--interval-horizons",
        type=_horizons,
        default=None,
        help="regression, with --eval-interval: evaluate along training only at theta, after the own loop"
        " and after each of these numbers of inner steps (no Adam fine-tuning: cheap); the final"
        " evaluation stays the full one",
    )
    p.add_argument(
        "--keep-every",
        type=_nonnegative_int,
        default=0,
        help="keep theta and the outer optimiser's state every N meta-steps in snapshots/ (default 0: no)",
    )
    p.add_argument(
        "--normalize-grad",
        action="store_true",
        help="divide each meta-step's gradient by its norm before the outer optimiser (no batch outweighs another)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_run(p: argparse.ArgumentParser) -> None:
    add_common(p)
    p.add_argument("--method", choices=TRAIN_METHODS, default="adjoint", help="meta-gradient (default adjoint)")


def add_compare(p: argparse.ArgumentParser) -> None:
    add_common(p)
    p.add_argument(
        "--methods",
        type=_methods,
        default=list(PAPER_METHODS),
        help=f"comma-separated (default {','.join(PAPER_METHODS)})",
    )
    p.add_argument(
        "--maml-steps",
        type=_positive_int,
        default=None,
        help="inner steps for maml (default INNER_STEPS; the paper's baseline used 10)",
    )


def _options(args, method: str) -> dict:
    """The method options given on the command line; ``compare`` hands each method only the ones it takes."""
    given = {
        "truncate": args.truncate,
        "lam": args.lam,
        "cg_steps": args.cg_steps,
        "checkpoints": args.checkpoints,
        "scheme": args.scheme,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if args.command == "compare":
        given = {k: v for k, v in given.items() if k in METHODS[method].options}
    return given


def config(args, method: str, inner_steps: int) -> RunConfig:
    return (
        RunConfig(
            domain=args.domain,
            shots=args.shots,
            query=args.query,
            inner_steps=inner_steps,
            device=args.device,
            method=method,
            meta_steps=args.meta_steps,
            seed=args.seed,
            step_size=args.step_size,
            solver=args.solver,
            reg=args.reg,
            meta_batch=args.meta_batch,
            meta_lr=args.meta_lr,
            optimizer=args.optimizer,
            hidden=args.hidden,
            dtype=args.dtype,
            ways=args.ways,
            subset=args.subset,
            validation_characters=args.validation_characters,
            learn_horizon=args.learn_horizon and method == "comln",
            bug_compatible=args.bug_compatible,
            options=_options(args, method),
            checkpoint_every=args.checkpoint_every,
            eval_tasks=args.eval_tasks,
            eval_steps=args.eval_steps,
            eval_interval=args.eval_interval,
            protocol=args.protocol,
            deterministic=args.deterministic,
            compile=args.compile or args.compile_wait,
            compile_wait=args.compile_wait,
            test_horizons=args.test_horizons,
            interval_horizons=args.interval_horizons,
            keep_every=args.keep_every,
            normalize_grad=args.normalize_grad,
        )
        .resolved()
        .check()
    )


def _progress(args):
    return False if args.quiet else None


def _line(summary: dict) -> str:
    f = summary["final"]
    if "accuracy" in f:
        return (
            f"accuracy {100 * f['accuracy']:.2f}% ± {100 * f['accuracy_ci95']:.2f}% (95% CI) over {f['eval_tasks']}"
            f" meta-test episodes; {summary['meta_steps']} meta-steps, {summary['seconds_per_meta_step']:.3f} s each"
            f"{_compiled(summary)}"
        )
    return (
        f"nRMSE {f['nrmse']:.4f} ± {f['nrmse_se']:.4f} over {f['eval_tasks']} meta-test tasks after"
        f" {f['eval_steps']} fine-tuning steps (at theta {f['nrmse_at_theta']:.4f}); "
        f"{summary['meta_steps']} meta-steps, {summary['seconds_per_meta_step']:.3f} s each{_compiled(summary)}"
    )


def _compiled(summary: dict) -> str:
    """What compiling cost each process, and from which meta-step it ran compiled."""
    if "compile_s" not in summary:
        return ""
    parts = []
    for c in summary["compiles"]:
        where = (
            f"compiled in another process in {c['elsewhere_s']:.1f} s{_warmth(c)}, then " if c["elsewhere_s"] else ""
        )
        parts.append(
            f"{where}{c['here_s']:.1f} s here{'' if c['elsewhere_s'] else _warmth(c)},"
            f" compiled from meta-step {c['compiled_from'] + 1}"
            if c["compiled_from"] is not None
            else "still compiling in another process when meta-training ended"
        )
    return f" (compiling: {'; '.join(parts)})"


def _warmth(record: dict) -> str:
    """Whether the process that compiled found the setting's graphs in inductor's cache (``amaml-lab warm``)."""
    cache = record.get("cache")
    if not cache or not (cache["loaded"] or cache["compiled"]):  # not said, or the graphs were in memory already
        return ""
    if not cache["compiled"]:
        return f" (warm: {cache['loaded']} graphs loaded from the cache)"
    return f" ({cache['compiled']} graphs compiled, {cache['loaded']} loaded: `amaml-lab warm` pays this ahead)"


def run_command(args) -> int:
    cfg = config(args, args.method, args.inner_steps)
    out = Path(args.out or f"runs/{cfg.domain}-{cfg.shots}-{cfg.query}-{cfg.method}-{cfg.inner_steps}-seed{cfg.seed}")
    summary = run(cfg, out, resume=args.resume, data_root=args.data_root, show_progress=_progress(args))
    if "rank" not in summary:  # rank 0 (or the only process) reports
        print(
            f"{cfg.method} on {cfg.domain} {cfg.shots}/{cfg.query}: {_line(summary)}; files in {out}"
            + (f" ({summary['world_size']} processes)" if summary.get("world_size", 1) > 1 else "")
        )
    return 0


def add_reevaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("folders", metavar="FOLDER", nargs="+", help="finished run folders (summary.json and checkpoint.pt)")
    p.add_argument(
        "--eval-steps", type=_nonnegative_int, default=None, help="Adam fine-tuning iterations (default: the run's own)"
    )
    p.add_argument(
        "--test-horizons",
        type=_horizons,
        default=None,
        help="regression: the error after each of these numbers of inner steps (default: the run's own)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def reevaluate_command(args) -> int:
    for folder in args.folders:
        summary = reevaluate(folder, args.eval_steps, args.test_horizons, _progress(args))
        print(f"{folder}: {_line(summary)}")
    return 0


def add_validate(p: argparse.ArgumentParser) -> None:
    p.add_argument("folders", metavar="FOLDER", nargs="+", help="run folders (summary.json and checkpoint.pt)")
    p.add_argument("--tasks", type=_positive_int, default=100, help="meta-validation functions (default 100)")


def validate_command(args) -> int:
    for folder in args.folders:
        r = validate(folder, args.tasks)
        print(
            f"{folder}: meta-validation nRMSE {r['inner_mean']:.4f} ± {r['inner_se']:.4f} after the own loop over"
            f" {r['tasks']} functions, at meta-step {r['meta_step']}; in {Path(folder) / 'validation.json'}"
        )
    return 0


def compare_command(args) -> int:
    base = Path(args.out or f"runs/compare-{args.domain}-{args.shots}-{args.query}-{args.inner_steps}-seed{args.seed}")
    configs = []
    for method in args.methods:
        steps = args.maml_steps if method == "maml" and args.maml_steps else args.inner_steps
        configs.append(config(args, method, steps))  # check every method before the first runs
    summaries = []
    for cfg in configs:
        out = base / cfg.method
        done = out / "summary.json"
        if done.exists():
            previous = json.loads(done.read_text())
            # the same run, also when its summary predates fields added since (they count as their defaults)
            if previous.get("status") == "done" and not cfg.differences(previous["config"], everything=True):
                summaries.append(previous)
                print(f"{cfg.method}: kept the finished run in {out}")
                continue
        summary = run(cfg, out, resume=True, data_root=args.data_root, show_progress=_progress(args))
        if "rank" in summary:  # another rank of a distributed run: rank 0 reports and writes
            continue
        print(f"{cfg.method}: {_line(summary)}")
        summaries.append(summary)
    if len(summaries) < len(configs):
        return 0
    md = markdown_table(summaries, [per_task(base / cfg.method) for cfg in configs])
    write_text_atomic(base / "table.md", md)
    header = CLASSIFICATION_HEADER if "accuracy" in summaries[0]["final"] else TABLE_HEADER
    write_text_atomic(base / "table.csv", csv_text(header, table_rows(summaries)))
    print()
    print(md, end="")
    print(f"\nwritten: {base / 'table.md'}, {base / 'table.csv'}")
    return 0
