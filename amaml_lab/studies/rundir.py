"""Run folders read: a run's summary, curves and per-task results, and the config it was made with.

What :mod:`amaml_lab.training.runs` writes (``summary.json``, ``metrics.csv``, ``eval.csv``, ``evals.csv``,
``tasks.csv``), read without importing the trainer.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..training.config import config_of

__all__ = ["load_run", "per_task", "config_of"]  # config_of: the settings a run folder records


def load_run(folder) -> dict:
    """A run folder's summary, meta-training curve, fine-tuning curve and evaluations along training.

    Args:
        folder: the run folder, a path (it holds summary.json; the CSV files may be missing).

    Returns:
        ``{"summary", "metrics", "eval", "evals"}``: summary.json as a dict, and the rows of metrics.csv, eval.csv
        and evals.csv, each a list of ``{column: float}`` dicts (empty where the file is missing).

    Raises:
        FileNotFoundError: ``folder`` holds no summary.json.
    """
    folder = Path(folder)
    summary = json.loads((folder / "summary.json").read_text())
    return {
        "summary": summary,
        "metrics": _floats(folder / "metrics.csv"),
        "eval": _floats(folder / "eval.csv"),
        "evals": _floats(folder / "evals.csv"),
    }


def _floats(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def per_task(folder) -> dict | None:
    """A finished run's results task by task, ``{measure: [value per meta-test task]}``: every measure of
    ``tasks.csv`` (regression) or the episodes' ``accuracy`` in ``eval.csv`` (Omniglot); None without them.
    Where tasks.csv records each task's content id, ``"task_id"`` holds them (strings).

    Args:
        folder: the run folder, a path.

    Returns:
        ``{measure: [float per task]}`` (with ``"task_id"``'s strings where recorded) from tasks.csv, else from
        eval.csv's episodes, or None where neither file has such rows.
    """
    folder = Path(folder)
    for name, key in (("tasks.csv", "task"), ("eval.csv", "episode")):
        path = folder / name
        if path.exists():
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
            if rows and key in rows[0]:
                out = {m: [float(r[m]) for r in rows] for m in rows[0] if m not in (key, "task_id")}
                if "task_id" in rows[0]:
                    out["task_id"] = [r["task_id"] for r in rows]
                return out
    return None
