"""MovieLens 100K as collaborative-filtering meta-regression: each user a task, each rated item a point.

The loader reads ``data_root`` (a folder holding ``u.data``, its ``ml-100k/``
subfolder, or the official ``ml-100k.zip``) or downloads the GroupLens archive
into a cache, checking its MD5.  Item features are 100-dimensional: the items'
rows of a truncated SVD of the meta-train users' centred rating matrix, so no
meta-test rating leaks into them; targets are ratings standardised with the
meta-train ratings' mean and standard deviation.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ..io import md5_file, write_text_atomic

ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
ML100K_MD5 = "0e33842e24a9c977be4e0107933c0723"


def _extract(archive: Path, into: Path) -> Path:
    if md5_file(archive) != ML100K_MD5:
        raise ValueError(
            f"{archive} has MD5 {md5_file(archive)}, not {ML100K_MD5} (the official ml-100k.zip);"
            f" delete it and download {ML100K_URL} again, or point --data-root at a good copy"
        )
    into.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=into) as tmp:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        target = into / "ml-100k"
        if not target.exists():
            os.replace(Path(tmp) / "ml-100k", target)
    return target


def locate_ml100k(data_root=None, cache=None, download: bool = True) -> Path:
    """The folder holding ``u.data``: found under ``data_root``, or downloaded into ``cache``."""
    candidates = []
    if data_root is not None:
        root = Path(data_root)
        candidates += [root, root / "ml-100k"]
        for folder in candidates:
            if (folder / "u.data").is_file():
                return folder
        if (root / "ml-100k.zip").is_file():
            return _extract(root / "ml-100k.zip", Path(cache or root))
        raise FileNotFoundError(
            f"no u.data, ml-100k/u.data or ml-100k.zip under --data-root {root};"
            f" download {ML100K_URL} there (MD5 {ML100K_MD5})"
        )
    cache = Path(cache or Path.home() / ".cache" / "amaml_lab")
    if (cache / "ml-100k" / "u.data").is_file():
        return cache / "ml-100k"
    if not download:
        raise FileNotFoundError(
            f"MovieLens 100K is not in {cache}; pass --data-root or allow the download of {ML100K_URL}"
        )
    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / "ml-100k.zip.part"
    try:
        with urllib.request.urlopen(ML100K_URL, timeout=60) as response, open(partial, "wb") as fh:
            shutil.copyfileobj(response, fh)
    except OSError as err:
        raise FileNotFoundError(
            f"could not download {ML100K_URL} ({err}); download it by hand and pass"
            " --data-root with the folder that holds it"
        ) from None
    os.replace(partial, cache / "ml-100k.zip")
    return _extract(cache / "ml-100k.zip", cache)


def load_ratings(folder) -> torch.Tensor:
    """``u.data`` as an (n, 3) int64 tensor of (user, item, rating), ids from 1 as in the file."""
    rows = []
    with open(Path(folder) / "u.data") as fh:
        for number, line in enumerate(fh, 1):
            parts = line.split("\t")
            if len(parts) != 4:
                raise ValueError(f"{folder}/u.data line {number} is not 'user<TAB>item<TAB>rating<TAB>time'")
            rows.append((int(parts[0]), int(parts[1]), int(parts[2])))
    return torch.tensor(rows, dtype=torch.int64)


@dataclass
class RatingTasks:
    """Users of one split: per user the features of the items they rated and the standardised ratings."""

    users: list
    features: list  # per user: (n_u, dim) float64
    targets: list  # per user: (n_u, 1) float64
    rating_mean: float
    rating_std: float


def rating_tasks(
    ratings: torch.Tensor, dim: int = 100, test_fraction: float = 0.2, seed: int = 100, min_ratings: int = 1
):
    """(meta-train, meta-test) RatingTasks from (user, item, rating) rows: users split at random (``seed``).

    Item features are the items' rows of a rank-``dim`` truncated SVD of the
    meta-train users' standardised rating matrix (zeros where unrated), scaled
    to unit standard deviation; ratings are standardised with the meta-train
    ratings' mean and standard deviation.  No meta-test rating enters either.
    Users with fewer than ``min_ratings`` ratings are left out.
    """
    if ratings.dim() != 2 or ratings.shape[1] != 3 or len(ratings) == 0:
        raise ValueError(
            f"ratings must be a non-empty (n, 3) tensor of (user, item, rating); got shape {tuple(ratings.shape)}"
        )
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction}")
    user_ids = ratings[:, 0].long()
    item_ids = ratings[:, 1].long()
    values = ratings[:, 2].double()
    users = torch.unique(user_ids)
    gen = torch.Generator().manual_seed(seed)
    order = users[torch.randperm(len(users), generator=gen)]
    n_test = int(round(test_fraction * len(users)))
    test_users, train_users = order[:n_test], order[n_test:]
    in_train = torch.isin(user_ids, train_users)
    mean = float(values[in_train].mean())
    std = float(values[in_train].std())
    items, item_index = torch.unique(item_ids, return_inverse=True)
    train_sorted = torch.sort(train_users).values
    column = torch.searchsorted(train_sorted, user_ids[in_train])
    matrix = torch.zeros(len(items), len(train_sorted), dtype=torch.float64)
    matrix[item_index[in_train], column] = (values[in_train] - mean) / std
    rank = min(dim, *matrix.shape)
    U, S, _ = torch.linalg.svd(matrix, full_matrices=False)
    features = torch.zeros(len(items), dim, dtype=torch.float64)
    features[:, :rank] = U[:, :rank] * S[:rank]
    features = features / features[:, :rank].std().clamp_min(1e-12)

    order_by_user = torch.argsort(user_ids, stable=True)
    sorted_users = user_ids[order_by_user]
    bounds = torch.searchsorted(sorted_users, users), torch.searchsorted(sorted_users, users, right=True)
    where = {int(u): (int(a), int(b)) for u, a, b in zip(users, *bounds)}

    def build(keep):
        chosen, feats, targets = [], [], []
        for u in sorted(keep.tolist()):
            a, b = where[u]
            if b - a < min_ratings:
                continue
            rows = order_by_user[a:b]
            chosen.append(u)
            feats.append(features[item_index[rows]])
            targets.append(((values[rows] - mean) / std)[:, None])
        return RatingTasks(chosen, feats, targets, mean, std)

    return build(train_users), build(test_users)


ML1M_URL = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"


def load_ml1m(data_root) -> torch.Tensor:
    """MovieLens 1M's ``ratings.dat`` (UserID::MovieID::Rating::Timestamp) under ``data_root`` (or its ``ml-1m/``)."""
    if data_root is None:
        raise FileNotFoundError(f"MovieLens1M needs --data-root: a folder holding ml-1m/ratings.dat from {ML1M_URL}")
    root = Path(data_root)
    for folder in (root, root / "ml-1m"):
        path = folder / "ratings.dat"
        if path.is_file():
            break
    else:
        raise FileNotFoundError(
            f"no ratings.dat or ml-1m/ratings.dat under --data-root {root}; download and unzip {ML1M_URL} there"
        )
    rows = []
    with open(path, encoding="latin-1") as fh:
        for number, line in enumerate(fh, 1):
            parts = line.strip().split("::")
            if len(parts) != 4:
                raise ValueError(f"{path} line {number} is not 'UserID::MovieID::Rating::Timestamp'")
            rows.append((int(parts[0]), int(parts[1]), int(parts[2])))
    return torch.tensor(rows, dtype=torch.int64)


def write_demo_ratings(
    folder, users: int = 200, items: int = 300, per_user: int = 40, rank: int = 5, seed: int = 0
) -> Path:
    """Write *generated* ratings (a rank-``rank`` taste model, ratings 1-5) as ``folder/u.data``.

    Not MovieLens: a stand-in in the same file format, so that a notebook's
    FAST run can go end to end on a machine without the data set.  Returns the folder.
    """
    g = torch.Generator().manual_seed(seed)
    taste = torch.randn(users, rank, generator=g, dtype=torch.float64)
    appeal = torch.randn(items, rank, generator=g, dtype=torch.float64)
    bias = 0.5 * torch.randn(items, generator=g, dtype=torch.float64)
    folder = Path(folder)
    lines = []
    for u in range(users):
        chosen = torch.randperm(items, generator=g)[:per_user]
        score = taste[u] @ appeal[chosen].T / rank**0.5 + bias[chosen] + 0.3 * torch.randn(per_user, generator=g)
        ratings = (3 + 1.2 * score).round().clamp(1, 5).long()
        lines += [f"{u + 1}\t{int(i) + 1}\t{int(r)}\t{880000000 + u}\n" for i, r in zip(chosen, ratings)]
    write_text_atomic(folder / "u.data", "".join(lines))
    return folder


def ml100k_or_demo(data_root, allow_demo: bool, demo_folder) -> tuple[Path, bool]:
    """(folder with u.data, is_demo): MovieLens 100K from ``data_root`` or the cache, else (when
    ``allow_demo``) generated ratings written to ``demo_folder``; without ``allow_demo`` a missing
    data set raises the loader's FileNotFoundError."""
    try:
        return locate_ml100k(data_root, download=False), False
    except FileNotFoundError:
        if not allow_demo:
            raise
        return write_demo_ratings(demo_folder), True
