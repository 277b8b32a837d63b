"""Jester jokes ratings as collaborative-filtering meta-regression (read from a data root).

The reader takes ``jester_ratings.dat`` of the Jester datasets 3 and 4
("user joke rating" per line, whitespace separated, ratings in [-10, 10]),
the format the dataset's site distributes as a zip.  Tasks are built exactly as
for MovieLens by :func:`amaml_lab.tasks.movielens.rating_tasks`.
"""

from __future__ import annotations

from pathlib import Path

import torch

JESTER_URL = "https://eigentaste.berkeley.edu/dataset/"


def load_jester(data_root) -> torch.Tensor:
    """(n, 3) float64 rows of (user, joke, rating) from ``jester_ratings.dat`` under ``data_root``."""
    if data_root is None:
        raise FileNotFoundError(f"Jester needs --data-root: a folder holding jester_ratings.dat from {JESTER_URL}")
    root = Path(data_root)
    candidates = [root / "jester_ratings.dat", *sorted(root.glob("*/jester_ratings.dat"))]
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        raise FileNotFoundError(
            f"no jester_ratings.dat under --data-root {root}; download a Jester ratings zip from"
            f" {JESTER_URL} and unzip it there"
        )
    rows = []
    with open(path) as fh:
        for number, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 3:
                raise ValueError(f"{path} line {number} is not 'user joke rating'")
            rows.append((float(parts[0]), float(parts[1]), float(parts[2])))
    return torch.tensor(rows, dtype=torch.float64)
