"""The MovieLens loader on tiny files in the real format, and on the real copy where it exists."""

import zipfile
from pathlib import Path

import pytest
import torch

from amaml_lab.tasks import movielens

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "ml-100k"


def write_u_data(folder: Path, users=12, items=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for u in range(1, users + 1):
        for i in torch.randperm(items, generator=g)[:5].tolist():
            r = int(torch.randint(1, 6, (1,), generator=g))
            lines.append(f"{u}\t{i + 1}\t{r}\t88125{u:04d}\n")
    (folder / "u.data").write_text("".join(lines))
    return folder


def test_reads_data_root_and_builds_leak_free_tasks(tmp_path):
    folder = movielens.locate_ml100k(write_u_data(tmp_path / "ml-100k").parent)
    ratings = movielens.load_ratings(folder)
    assert ratings.shape == (60, 3)
    train, test = movielens.rating_tasks(ratings, dim=4, test_fraction=0.25, seed=1)
    assert len(train.users) == 9 and len(test.users) == 3
    assert not set(train.users) & set(test.users)
    assert all(f.shape == (5, 4) for f in train.features)
    # features come from meta-train users only: changing a meta-test user's ratings changes no feature
    changed = ratings.clone()
    mask = changed[:, 0] == test.users[0]
    changed[mask, 2] = 6 - changed[mask, 2]
    train2, _ = movielens.rating_tasks(changed, dim=4, test_fraction=0.25, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(train.features, train2.features))


def test_zip_with_wrong_checksum_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "ml-100k.zip", "w") as zf:
        zf.writestr("ml-100k/u.data", "1\t1\t5\t0\n")
    with pytest.raises(ValueError, match="not 0e33842e24a9c977be4e0107933c0723 .* download .*ml-100k.zip"):
        movielens.locate_ml100k(tmp_path)


def test_missing_data_names_url_and_data_root(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--data-root .*files.grouplens.org/datasets/movielens/ml-100k.zip"):
        movielens.locate_ml100k(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="pass --data-root or allow the download"):
        movielens.locate_ml100k(cache=tmp_path, download=False)


def test_malformed_line(tmp_path):
    (tmp_path / "u.data").write_text("1 2 3\n")
    with pytest.raises(ValueError, match="u.data line 1 is not"):
        movielens.load_ratings(tmp_path)


@pytest.mark.skipif(not (REAL / "u.data").is_file(), reason="no local copy of MovieLens 100K in ../shared/data")
def test_real_copy():
    ratings = movielens.load_ratings(movielens.locate_ml100k(REAL))
    assert ratings.shape == (100_000, 3)
    assert len(torch.unique(ratings[:, 0])) == 943 and int(ratings[:, 1].max()) == 1682
    train, test = movielens.rating_tasks(ratings, dim=100)
    assert len(train.users) + len(test.users) == 943
    assert train.features[0].shape[1] == 100
    assert abs(torch.cat(train.targets).mean().item()) < 1e-9


def test_demo_ratings_are_in_the_u_data_format_and_only_used_when_allowed(tmp_path):
    folder, demo = movielens.ml100k_or_demo(tmp_path / "nowhere", True, tmp_path / "demo")
    assert demo and folder == tmp_path / "demo"
    ratings = movielens.load_ratings(folder)
    assert ratings.shape == (200 * 40, 3) and int(ratings[:, 2].min()) >= 1 and int(ratings[:, 2].max()) <= 5
    assert len(torch.unique(ratings[:, 2])) == 5
    with pytest.raises(FileNotFoundError, match="--data-root"):
        movielens.ml100k_or_demo(tmp_path / "nowhere", False, tmp_path / "demo")
    real, demo = movielens.ml100k_or_demo(write_u_data(tmp_path / "ml-100k").parent, True, tmp_path / "demo2")
    assert not demo and real == tmp_path / "ml-100k"
