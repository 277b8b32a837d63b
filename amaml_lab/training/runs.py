"""The run folder, written and read in one place: what ``amaml-lab run`` leaves behind.

A run folder holds ``checkpoint.pt`` (theta, the optimiser, the episode generator, the step count),
``summary.json`` (config, ``meta_steps``, ``status``, ``final``), ``metrics.csv`` (meta-step, query loss,
seconds), ``eval.csv`` (fine-tuning iteration, nRMSE mean and s.e.; for Omniglot each episode's accuracy),
``evals.csv`` (every evaluation along training) and, for regression, ``tasks.csv`` (each meta-test task's id and
numbers), each written atomically.  :func:`run` writes them; :func:`load_run` and :func:`per_task` read them.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import statistics
from dataclasses import asdict, replace
from pathlib import Path

import torch

from ..io import FolderLock, write_json_atomic, write_text_atomic
from .config import RunConfig, config_of
from .evaluate import (
    classification_metrics,
    evaluate_episodes,
    evaluation_row,
    final_metrics,
    loop_evaluation,
    mean_se,
    regression_evaluation,
)
from .train import Diverged, meta_train

VALIDATION_EPISODES = 200  # Omniglot with held-out characters: validation episodes scored at each evaluation


def csv_text(header, rows) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def summary_of(cfg, step, status, final=None, seconds=None, extra=None, compiles=None) -> dict:
    """The run's summary.json.  With ``cfg.compile`` and each process's compile (``compiles``, from
    :func:`~amaml_lab.training.train.meta_train`): ``compiles`` itself, each with ``here_s``, what its first compiled
    meta-step took beyond the run's median compiled step (the compile this process waited for); ``compile_s``,
    their sum; ``compiled_elsewhere_s``, the compiling processes' seconds (the run did not wait for them)."""
    from .. import __version__

    per_step = sum(seconds) / len(seconds) if seconds else None
    return {
        "config": asdict(cfg),
        "meta_steps": step,
        "status": status,
        "final": final,
        "seconds_per_meta_step": per_step,
        **(_compile_times(compiles, seconds) if cfg.compile else {}),
        "versions": {"amaml_lab": __version__, "torch": torch.__version__},
        **(extra or {}),
    }


def _compile_times(compiles, seconds) -> dict:
    if not compiles or not seconds:
        return {}
    ends = [c["step"] for c in compiles[1:]] + [len(seconds)]
    ranges = [(c["compiled_from"], end) for c, end in zip(compiles, ends) if c["compiled_from"] is not None]
    steady = [seconds[i] for first, end in ranges for i in range(first + 1, min(end, len(seconds)))]
    median = statistics.median(steady) if steady else 0.0
    rows = [
        {
            **c,
            "here_s": max(seconds[c["compiled_from"]] - median, 0.0)
            if c["compiled_from"] is not None and c["compiled_from"] < len(seconds)
            else None,
        }
        for c in compiles
    ]
    return {
        "compile_s": sum(r["here_s"] or 0.0 for r in rows),
        "compiled_elsewhere_s": sum(r["elsewhere_s"] or 0.0 for r in rows),
        "compiles": rows,
    }


class _RunFiles:
    """Rank 0's writer of one run folder: progress at each checkpoint, evaluations along training, the end."""

    def __init__(self, cfg: RunConfig, out: Path):
        self.cfg, self.out, self.step, self.evalset, self.last = cfg, out, 0, None, (None, None)
        self.valset = None

    def progress(self, step, losses, seconds, evals=()) -> None:
        self.step = step
        write_text_atomic(
            self.out / "metrics.csv",
            csv_text(
                ["meta_step", "query_loss", "seconds"],
                [(i + 1, f"{loss!r}", f"{s:.6f}") for i, (loss, s) in enumerate(zip(losses, seconds))],
            ),
        )
        write_json_atomic(self.out / "summary.json", summary_of(self.cfg, step, "training", seconds=seconds))
        self.evals(evals)

    def evals(self, rows) -> None:
        if rows:
            header = list(rows[0])
            write_text_atomic(
                self.out / "evals.csv",
                csv_text(header, [[r[h] if isinstance(r[h], int) else f"{r[h]!r}" for h in header] for r in rows]),
            )

    def evaluate(self, step, theta, model, domain, horizon) -> dict:
        """One row of evals.csv (meta_train's ``on_eval``); the regression result is kept for the end."""
        cfg = self.cfg
        if self.evalset is None:
            self.evalset = domain.eval_set(cfg.eval_tasks, cfg.shots, cfg.query)
        if cfg.classification:  # the inner loop to the horizon reached so far (COMLN may learn it)
            learned = replace(cfg, step_size=horizon / cfg.inner_steps)
            scores = {"accuracy": evaluate_episodes(model, theta, self.evalset, learned, show_progress=False)}
            if cfg.validation_characters:  # and on the held-out meta-train characters' episodes
                if self.valset is None:
                    self.valset = domain.eval_set(VALIDATION_EPISODES, cfg.shots, cfg.query, split="validation")
                scores["val_accuracy"] = evaluate_episodes(model, theta, self.valset, learned, show_progress=False)
            self.last = (step, scores["accuracy"])  # the final evaluation reuses the one at the last meta-step
            return evaluation_row(step, scores)
        if cfg.interval_horizons is not None:  # the loops only: no Adam fine-tuning, no cross-evaluation
            return evaluation_row(step, loop_evaluation(model, theta, self.evalset, cfg, cfg.interval_horizons))
        result = regression_evaluation(model, theta, self.evalset, cfg, show_progress=False)
        self.last = (step, result)  # the final evaluation reuses the one at the last meta-step
        return evaluation_row(step, result["per_task"])

    def final_classification(self, trained, evalset, show_progress) -> dict:
        cfg = self.cfg
        learned = replace(cfg, step_size=trained["horizon"] / cfg.inner_steps)  # the (possibly learned) horizon
        step, accuracies = self.last
        if step != trained["meta_steps"]:
            accuracies = evaluate_episodes(
                trained["model"], trained["theta"], evalset, learned, show_progress=show_progress
            )
        final = classification_metrics(accuracies, trained["losses"])
        final["subset"] = trained["domain"].subset
        if cfg.method == "comln":
            final["horizon"] = trained["horizon"]
        write_text_atomic(
            self.out / "eval.csv",
            csv_text(["episode", "accuracy"], [(i, f"{a!r}") for i, a in enumerate(accuracies.tolist())]),
        )
        return final

    def final_regression(self, trained, evalset, show_progress) -> dict:
        step, result = self.last
        if step != trained["meta_steps"]:
            result = regression_evaluation(
                trained["model"], trained["theta"], evalset, self.cfg, show_progress=show_progress
            )
        evaluation, per_task = result["curve"], result["per_task"]
        curve = evaluation["nrmse"]
        rows = [(it, *(f"{v!r}" for v in mean_se(curve[:, j]))) for j, it in enumerate(evaluation["iterations"])]
        write_text_atomic(self.out / "eval.csv", csv_text(["iteration", "nrmse_mean", "nrmse_se"], rows))
        # every meta-test task's numbers, with its id: runs on the same tasks compare task by task (paired_runs)
        names, ids = list(per_task), evalset.ids()
        write_text_atomic(
            self.out / "tasks.csv",
            csv_text(
                ["task", "task_id", *names],
                [(i, ids[i], *(f"{float(per_task[n][i])!r}" for n in names)) for i in range(curve.shape[0])],
            ),
        )
        return final_metrics(evaluation, trained["losses"], per_task)


def run(cfg: RunConfig, out, resume: bool = False, data_root=None, show_progress: bool | None = None) -> dict:
    """Meta-train to ``cfg.meta_steps`` (continuing ``out`` when ``resume``), evaluate, write the run's files
    (see the module's docstring); returns the summary.  One writer per folder: while another live process writes
    ``out`` this raises :class:`~amaml_lab.io.FolderBusy` naming its pid (:class:`~amaml_lab.io.FolderLock`).

    Args:
        cfg: the run's settings (:class:`~amaml_lab.training.config.RunConfig`), resolved and checked here.
        out: the run folder, a path.
        resume: True continues the run in ``out`` from its checkpoint.pt (a fresh start where there is none);
            False refuses a folder that holds one.
        data_root: the folder holding a ratings domain's or Omniglot's files
            (:func:`~amaml_lab.tasks.domains.load_domain`).
        show_progress: progress bars on or off; None shows them unless ``CI`` or ``AMAML_LAB_QUIET`` is set.

    Returns:
        The summary written to summary.json (``config``, ``meta_steps``, ``status`` "done", ``final``, ...); a
        rank other than 0 of a distributed run gets ``{"rank", "world_size", "meta_steps"}`` instead.

    Raises:
        ValueError: settings that do not check, or ``out`` holding a run (checkpoint.pt) without ``resume``.
        FolderBusy: another live process writes ``out`` (a ValueError).
        Diverged: a non-finite loss or gradient; summary.json then records status "diverged".
        FileNotFoundError: the domain's data are not found.
    """
    from . import distributed

    cfg = cfg.resolved().check()
    out = Path(out)
    with FolderLock(out) if distributed.world()[1] == 0 else contextlib.nullcontext():
        return _run(cfg, out, resume, data_root, show_progress)


def _run(cfg: RunConfig, out: Path, resume: bool, data_root, show_progress) -> dict:
    from . import distributed

    if not resume and (out / "checkpoint.pt").exists():
        raise ValueError(
            f"{out} already holds a run (checkpoint.pt); pass --resume to continue it or choose another --out"
        )
    size, rank = distributed.world()
    distributed.barrier()  # every rank has looked before rank 0 writes
    files = _RunFiles(cfg, out)
    try:
        trained = meta_train(
            cfg,
            out,
            resume=resume,
            data_root=data_root,
            show_progress=show_progress,
            on_checkpoint=files.progress,
            on_eval=files.evaluate,
        )
    except Diverged as err:
        if rank == 0:
            write_json_atomic(out / "summary.json", summary_of(cfg, files.step, "diverged", extra={"error": str(err)}))
        raise
    if rank != 0:  # rank 0 evaluates and writes the run's files
        return {"rank": rank, "world_size": size, "meta_steps": trained["meta_steps"]}
    evalset = trained["domain"].eval_set(cfg.eval_tasks, cfg.shots, cfg.query)
    finish = files.final_classification if cfg.classification else files.final_regression
    final = finish(trained, evalset, show_progress)
    files.evals(trained["evals"])
    summary = summary_of(
        cfg,
        trained["meta_steps"],
        "done",
        final=final,
        seconds=trained["seconds"],
        extra={"world_size": size},
        compiles=trained["compiles"],
    )
    write_json_atomic(out / "summary.json", summary)
    return summary


def reevaluate(
    folder, eval_steps: int | None = None, test_horizons: tuple | None = None, show_progress: bool | None = None
) -> dict:
    """Evaluate a finished run's final theta again (its checkpoint), with other evaluation settings only;
    its summary.json, eval.csv and tasks.csv are rewritten, its meta-training is untouched.

    Args:
        folder: the finished run's folder (summary.json with status "done", and checkpoint.pt).
        eval_steps: the Adam fine-tuning iterations a meta-test task; None keeps the run's own.
        test_horizons: the numbers of inner steps to measure the error after (regression); None keeps the run's own.
        show_progress: progress bars on or off; None shows them unless ``CI`` or ``AMAML_LAB_QUIET`` is set.

    Returns:
        The rewritten summary, as :func:`run` returns it.

    Raises:
        FileNotFoundError: ``folder`` lacks summary.json or checkpoint.pt.
        ValueError: the run is not finished (continue it with ``run --resume``), or settings that do not check.
        FolderBusy: another live process writes ``folder`` (a ValueError).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} holds no finished run: summary.json and checkpoint.pt are needed")
    with FolderLock(folder):  # its writer first: a run still going is refused for that, not for being unfinished
        return _reevaluate(folder, eval_steps, test_horizons, show_progress)


def _reevaluate(folder: Path, eval_steps, test_horizons, show_progress) -> dict:
    path = folder / "summary.json"
    if not path.exists() or not (folder / "checkpoint.pt").exists():
        raise FileNotFoundError(f"{folder} holds no finished run: summary.json and checkpoint.pt are needed")
    summary = json.loads(path.read_text())
    if summary.get("status") != "done":
        raise ValueError(f"{folder} is not finished (status {summary.get('status')!r}); continue it with run --resume")
    changes = {k: v for k, v in (("eval_steps", eval_steps), ("test_horizons", test_horizons)) if v is not None}
    cfg = replace(config_of(summary), **changes)
    return run(cfg, folder, resume=True, show_progress=show_progress)


def validate(folder, tasks: int = 100) -> dict:
    """Score a run's checkpointed theta on meta-validation functions (synthetic families: task seed 102, neither
    meta-train nor meta-test) after its own inner loop; writes and returns ``validation.json`` ({"meta_step",
    "tasks", "task_id", "theta", "inner", "inner_mean", "inner_se"}): what choosing a setting such as the
    meta-learning rate reads, so that no choice looks at the meta-test tasks.

    Args:
        folder: the run's folder, with summary.json and checkpoint.pt (finished or not).
        tasks: the number of meta-validation functions to score (at most the run's ``tasks`` are scored).

    Returns:
        The contents of validation.json: the checkpoint's ``meta_step``, the number of ``tasks`` scored, each
        task's ``task_id`` (a content hash), its nRMSE at ``theta`` and after the run's ``inner`` loop (lists of
        floats), and ``inner_mean`` and ``inner_se``, the mean and standard error of ``inner``.

    Raises:
        FileNotFoundError: ``folder`` lacks summary.json or checkpoint.pt.
        ValueError: the run's domain is not a synthetic family, or its settings do not check.
    """
    from ..tasks.domains import load_domain
    from .builders import build_model

    folder = Path(folder)
    if not (folder / "summary.json").exists() or not (folder / "checkpoint.pt").exists():
        raise FileNotFoundError(f"{folder} holds no run: summary.json and checkpoint.pt are needed")
    cfg = config_of(json.loads((folder / "summary.json").read_text())).resolved().check()
    domain = load_domain(
        cfg.domain,
        cfg.shots,
        cfg.query,
        tasks=cfg.tasks,
        pool=cfg.pool,
        bug_compatible=cfg.bug_compatible,
        protocol=cfg.protocol,
    )
    if not hasattr(domain, "stats"):
        raise ValueError(
            f"validate scores synthetic families' meta-validation functions; domain={cfg.domain!r} has none"
        )
    state = torch.load(folder / "checkpoint.pt", weights_only=False, map_location="cpu")
    model = build_model(cfg, domain.in_features).to(cfg.device)
    theta = {k: v.to(cfg.device) for k, v in state["theta"].items()}
    evalset = domain.eval_set(tasks, cfg.shots, cfg.query, split="validation")
    errors = loop_evaluation(model, theta, evalset, cfg)
    mean, se = mean_se(errors["inner"])
    result = {
        "meta_step": state["meta_steps"],
        "tasks": evalset.tasks,
        "task_id": evalset.ids(),
        "theta": errors["theta"].tolist(),
        "inner": errors["inner"].tolist(),
        "inner_mean": mean,
        "inner_se": se,
    }
    write_json_atomic(folder / "validation.json", result)
    return result


__all__ = ["run", "csv_text", "summary_of", "reevaluate", "validate"]
