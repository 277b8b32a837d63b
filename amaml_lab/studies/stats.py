"""The statistics and tables of run folders: paired differences over the same meta-test tasks, and the
comparison's Markdown table and CSV rows."""

from __future__ import annotations

import math
import statistics

TABLE_HEADER = [
    "method",
    "inner_steps",
    "meta_steps",
    "nrmse",
    "nrmse_se",
    "nrmse_at_theta",
    "nrmse_at_theta_se",
    "nrmse_best",
    "nrmse_best_se",
    "best_iteration",
    "eval_tasks",
    "eval_steps",
    "seconds_per_meta_step",
]


CLASSIFICATION_HEADER = [
    "method",
    "inner_steps",
    "meta_steps",
    "accuracy",
    "accuracy_ci95",
    "eval_tasks",
    "seconds_per_meta_step",
]


def table_rows(summaries: list[dict]) -> list[list]:
    if "accuracy" in summaries[0]["final"]:
        return [
            [
                s["config"]["method"],
                s["config"]["inner_steps"],
                s["meta_steps"],
                s["final"]["accuracy"],
                s["final"]["accuracy_ci95"],
                s["final"]["eval_tasks"],
                s["seconds_per_meta_step"],
            ]
            for s in summaries
        ]
    rows = []
    for s in summaries:
        f = s["final"]
        rows.append(
            [
                s["config"]["method"],
                s["config"]["inner_steps"],
                s["meta_steps"],
                f["nrmse"],
                f["nrmse_se"],
                f["nrmse_at_theta"],
                f["nrmse_at_theta_se"],
                f["nrmse_best"],
                f["nrmse_best_se"],
                f["best_iteration"],
                f["eval_tasks"],
                f["eval_steps"],
                s["seconds_per_meta_step"],
            ]
        )
    return rows


def paired_runs(base: dict, other: dict, measure: str, lower_is_better: bool = True) -> dict:
    """:func:`paired` on ``measure`` of two runs' :func:`per_task` results, refusing runs on other tasks.

    Where both runs record task ids they must agree task by task; where one
    records them and the other does not, the tasks cannot be told the same and
    the pair is refused too; where neither does (older runs, Omniglot's
    episodes), only the counts are checked.
    """
    ids = [r.get("task_id") for r in (base, other)]
    if (ids[0] is None) != (ids[1] is None):
        raise ValueError(
            "paired needs both runs' task ids or neither: one tasks.csv has a task_id column and the"
            " other not; re-evaluate the older run so that both record them"
        )
    if ids[0] is not None and ids[0] != ids[1]:
        differ = sum(a != b for a, b in zip(*ids)) + abs(len(ids[0]) - len(ids[1]))
        raise ValueError(
            f"paired needs the same tasks: the runs' task ids differ on {differ} of"
            f" {max(map(len, ids))} tasks (another domain, shots, pool or evaluation set)"
        )
    return paired(base[measure], other[measure], lower_is_better=lower_is_better)


def paired(base, other, lower_is_better: bool = True) -> dict:
    """``other - base`` task by task, on the same meta-test tasks: the mean difference, the half-width of its 95%
    interval (1.96 standard errors of the differences), and on how many tasks ``other`` does better.

    Two methods evaluated on the same tasks share each task's difficulty, which dominates the spread over tasks;
    the differences do not carry it, so their interval is far narrower than the two means' s.e. suggest.
    """
    if len(base) != len(other) or len(base) < 2:
        raise ValueError(f"paired needs the same tasks, at least 2, for both runs; got {len(base)} and {len(other)}")
    d = [o - b for b, o in zip(base, other)]
    better = sum(1 for x in d if (x < 0 if lower_is_better else x > 0))
    return {
        "difference": statistics.fmean(d),
        "ci95": 1.96 * statistics.stdev(d) / math.sqrt(len(d)),
        "better": better,
        "worse": sum(1 for x in d if x != 0) - better,
        "tasks": len(d),
    }


def format_paired(p: dict, scale: float = 1.0, digits: int = 4, counts: str = "better on ") -> str:
    """``+d ± ci (better on k/n)``; differences under 1e-4 (the adjoint against maml through the same steps) in
    scientific notation, so that they do not read as zero."""
    d, ci = scale * p["difference"], scale * p["ci95"]
    fmt = ".1e" if d and abs(d) < 1e-4 else f".{digits}f"
    return f"{d:+{fmt}} ± {ci:{fmt}} ({counts}{p['better']}/{p['tasks']})"


def _paired_cells(summaries, tasks) -> list[str] | None:
    """The paired column against the first run, or None where some run has no per-task results or other tasks."""
    classification = "accuracy" in summaries[0]["final"]
    measure = "accuracy" if classification else "finetuned"
    if not tasks or len(tasks) < 2 or any(t is None or measure not in t for t in tasks):
        return None
    if len({len(t[measure]) for t in tasks}) != 1 or len(tasks[0][measure]) < 2:  # other tasks, or one alone
        return None
    cells = ["(reference)"]
    for t in tasks[1:]:
        p = paired_runs(tasks[0], t, measure, lower_is_better=not classification)
        cells.append(format_paired(p, 100, 2) if classification else format_paired(p))
    return cells


def markdown_table(summaries: list[dict], tasks: list | None = None) -> str:
    """The comparison as Markdown; with ``tasks`` (each run's :func:`per_task`, in order) a paired column against
    the first run."""
    c = summaries[0]["config"]
    f = summaries[0]["final"]
    pairs = _paired_cells(summaries, tasks)
    first = summaries[0]["config"]["method"]
    extra = f" | vs {first}, paired |" if pairs else " |"
    rule = "---:|" if pairs else ""
    unit = "episodes, in accuracy points" if "accuracy" in f else "tasks, in nRMSE"
    note = (
        ""
        if not pairs
        else f"\nPaired: each method's difference to {first} on the same meta-test {unit}: "
        "mean ± 1.96 s.e. of the differences, and on how many it does better.\n"
    )
    if "accuracy" in f:
        title = (
            f"Omniglot {c['ways']}-way {c['shots']}-shot ({f.get('subset', '?')} set), {c['query']} query per class:"
            f" meta-test accuracy (mean ± 95% CI over {f['eval_tasks']} episodes);"
            f" {summaries[0]['meta_steps']} meta-steps, seed {c['seed']}"
        )
        lines = [
            f"**{title}**",
            "",
            "| method | inner steps | accuracy (%) | s / meta-step" + extra,
            "|---|---:|---:|---:|" + rule,
        ]
        for i, s in enumerate(summaries):
            g = s["final"]
            lines.append(
                f"| {s['config']['method']} | {s['config']['inner_steps']} | {100 * g['accuracy']:.2f} ± "
                f"{100 * g['accuracy_ci95']:.2f} | {s['seconds_per_meta_step']:.3f} |"
                + (f" {pairs[i]} |" if pairs else "")
            )
        return "\n".join(lines) + "\n" + note
    title = (
        f"{c['domain']} {c['shots']}/{c['query']}: meta-test nRMSE (mean ± s.e. over {f['eval_tasks']} tasks)"
        f" after {f['eval_steps']} Adam fine-tuning steps; {summaries[0]['meta_steps']} meta-steps, seed {c['seed']}"
    )
    lines = [
        f"**{title}**",
        "",
        "| method | inner steps | nRMSE | at θ (no fine-tuning) | best on the curve (iteration) | s / meta-step"
        + extra,
        "|---|---:|---:|---:|---:|---:|" + rule,
    ]
    for i, s in enumerate(summaries):
        f = s["final"]
        lines.append(
            f"| {s['config']['method']} | {s['config']['inner_steps']} | {f['nrmse']:.3f} ± {f['nrmse_se']:.3f}"
            f" | {f['nrmse_at_theta']:.3f} ± {f['nrmse_at_theta_se']:.3f} | {f['nrmse_best']:.3f} ± "
            f"{f['nrmse_best_se']:.3f} ({f['best_iteration']}) | {s['seconds_per_meta_step']:.3f} |"
            + (f" {pairs[i]} |" if pairs else "")
        )
    return "\n".join(lines) + "\n" + note
