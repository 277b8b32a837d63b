"""Experiment domains: seeded meta-batches, fixed meta-test sets, and the ratings readers on generated files."""

from pathlib import Path

import pytest
import torch
from helpers import write_ratings

from amaml_lab.tasks import jester, movielens
from amaml_lab.tasks.domains import DOMAINS, RatingsDomain, load_domain, ratings_of

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "ml-100k"


@pytest.mark.parametrize(
    "name,fmt,sub",
    [("MovieLens100K", "ml100k", "ml-100k"), ("MovieLens1M", "ml1m", "ml-1m"), ("Jester", "jester", "jester")],
)
def test_ratings_domains_read_their_formats(tmp_path, name, fmt, sub):
    write_ratings(tmp_path / sub, fmt)
    ratings = ratings_of(name, tmp_path)
    assert ratings.shape == (30 * 12, 3)
    domain = load_domain(name, 4, 6, data_root=tmp_path)
    assert domain.in_features == 100
    (sx, sy), (qx, qy) = domain.train_batch(torch.Generator().manual_seed(0), 3, 4, 6)
    assert sx.shape == (3, 4, 100) and sy.shape == (3, 4, 1) and qx.shape == (3, 6, 100)
    evalset = domain.eval_set(100, 4, 6)
    assert evalset.tasks == len(domain.test.users) == 6  # 20% of 30 users
    again = load_domain(name, 4, 6, data_root=tmp_path).eval_set(100, 4, 6)
    assert all(torch.equal(a, b) for a, b in zip(evalset.target, again.target))


def test_support_and_query_are_disjoint_ratings_of_one_user(tmp_path):
    write_ratings(tmp_path, "ml100k", per_user=10)
    domain = load_domain("MovieLens100K", 4, 6, data_root=tmp_path)
    (sx, _), (qx, _) = domain.train_batch(torch.Generator().manual_seed(1), 5, 4, 6)
    for b in range(5):  # every item a user rated is one row of that user's features; none is drawn twice
        rows = torch.cat([sx[b], qx[b]])
        assert len(torch.unique(rows, dim=0)) == 10


def test_users_with_too_few_ratings_are_left_out(tmp_path):
    write_ratings(tmp_path, "ml100k", per_user=5)
    with pytest.raises(ValueError, match="no user of MovieLens100K has 11 ratings"):
        load_domain("MovieLens100K", 5, 6, data_root=tmp_path)


@pytest.mark.parametrize(
    "name,pattern",
    [
        ("MovieLens1M", r"needs --data-root: .*files.grouplens.org/datasets/movielens/ml-1m.zip"),
        ("Jester", r"needs --data-root: .*eigentaste.berkeley.edu"),
    ],
)
def test_missing_data_root(name, pattern):
    with pytest.raises(FileNotFoundError, match=pattern):
        ratings_of(name, None)


def test_empty_data_root_names_the_file_and_url(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no ratings.dat or ml-1m/ratings.dat under --data-root .*ml-1m.zip"):
        movielens.load_ml1m(tmp_path)
    with pytest.raises(FileNotFoundError, match="no jester_ratings.dat under --data-root"):
        jester.load_jester(tmp_path)


def test_malformed_lines(tmp_path):
    (tmp_path / "ratings.dat").write_text("1::2::3\n")
    with pytest.raises(ValueError, match="line 1 is not 'UserID::MovieID::Rating::Timestamp'"):
        movielens.load_ml1m(tmp_path)
    (tmp_path / "jester_ratings.dat").write_text("1 2\n")
    with pytest.raises(ValueError, match="line 1 is not 'user joke rating'"):
        jester.load_jester(tmp_path)


def test_synthetic_meta_batches_are_seeded_and_meta_test_differs_from_meta_train():
    domain = load_domain("Alpine2D", 5, 7, tasks=6, pool=30)
    a = domain.train_batch(torch.Generator().manual_seed(3), 4, 5, 7)
    b = domain.train_batch(torch.Generator().manual_seed(3), 4, 5, 7)
    assert all(torch.equal(x, y) for x, y in zip(a[0] + a[1], b[0] + b[1]))
    assert not torch.equal(domain.train.params, domain.test.params)
    evalset = domain.eval_set(4, 5, 7)
    assert evalset.support[0].shape == (4, 5, 2) and evalset.target[0].shape == (4, 31 * 31, 2)
    with pytest.raises(ValueError, match="at most the pool size 30"):
        domain.train_batch(torch.Generator(), 2, 31, 5)


def test_every_domain_is_listed():
    assert set(DOMAINS) == {
        "Alpine2D",
        "CosMixture",
        "CosMixture2D",
        "Sinusoid",
        "MovieLens100K",
        "MovieLens1M",
        "Jester",
        "Omniglot",
    }
    with pytest.raises(ValueError, match="domain='Ackley' is not known"):
        load_domain("Ackley", 5, 5)


@pytest.mark.skipif(not (REAL / "u.data").is_file(), reason="no local copy of MovieLens 100K in ../shared/data")
def test_real_movielens_domain_has_the_protocols_meta_test_users():
    for shots, query in ((10, 15), (20, 30)):
        domain = load_domain("MovieLens100K", shots, query, data_root=REAL)
        assert isinstance(domain, RatingsDomain) and len(domain.test.users) >= 100
        assert domain.eval_set(100, shots, query).tasks == 100


def test_reference_protocol_scales_over_every_task_and_fixes_the_episodes():
    """protocol='reference': pools and grids of all 200 tasks standardised together (population std), and a fixed,
    step-indexed episode sequence whose tasks run through seeded permutations."""
    from amaml_lab.tasks.domains import REFERENCE_EPISODES
    from amaml_lab.tasks.synthetic import make_split

    ref = load_domain("CosMixture", 5, 6, tasks=10, pool=40, protocol="reference")
    kit = load_domain("CosMixture", 5, 6, tasks=10, pool=40)
    ys = torch.cat([t.reshape(-1) for s in (ref.train, ref.test) for t in (s.support_y, s.query_y, s.test_y)])
    assert abs(float(ys.mean())) < 1e-12 and abs(float(ys.std(unbiased=False)) - 1) < 1e-12
    # the same functions as the kit's, only scaled differently: an affine map between the two
    raw = make_split(
        "CosMixture",
        tasks=10,
        pool=40,
        task_seed=101,
        design_seed=201,
        standardise_with={"x_mean": 0.0, "x_std": 1.0, "y_mean": 0.0, "y_std": 1.0},
    )
    ys_kit = torch.cat([t.reshape(-1) for s in (kit.train, kit.test) for t in (s.support_y, s.query_y, s.test_y)])
    assert abs(float(ys_kit.std(unbiased=False)) - 1) > 1e-3  # the kit does not see the meta-test tasks
    assert torch.allclose(ref.test.test_y * ref.train.stats["y_std"] + ref.train.stats["y_mean"], raw.test_y)
    # episodes: indexed, independent of the generator; each block of `tasks` episodes visits every task once
    a = ref.train_batch(torch.Generator().manual_seed(0), 3, 5, 6, episode=7)
    b = ref.train_batch(torch.Generator().manual_seed(9), 3, 5, 6, episode=7)
    assert all(torch.equal(x, y) for x, y in zip(a[0] + a[1], b[0] + b[1]))
    # experiment.sh's pool: 1,000 episodes, each epoch visiting every one of them once, in a new order
    assert REFERENCE_EPISODES == 1000

    def epoch(e):
        supports = ref.train_batch(torch.Generator(), REFERENCE_EPISODES, 5, 6, episode=e * REFERENCE_EPISODES)[0]
        return [(float(x.sum()), float(y.sum())) for x, y in zip(*supports)]

    first, second = epoch(0), epoch(1)
    assert len(set(first)) == REFERENCE_EPISODES and sorted(first) == sorted(second) and first != second
    assert epoch(1) == second  # the order is seeded: a resumed run visits what an uninterrupted one would
    assert sorted(ref.episode_tasks[:10].tolist()) == list(range(10))
    assert sorted(ref.episode_tasks[10:20].tolist()) == list(range(10))
    with pytest.raises(ValueError, match="protocol='reference' .*domain='MovieLens100K' has only protocol='kit'"):
        load_domain("MovieLens100K", 5, 5, protocol="reference")


def test_reference_protocol_scales_inputs_over_all_tasks_too():
    """The reference's input scaler, like its target scaler, is fitted on every pool and test grid of all 200
    tasks: pooled, the scaled inputs have mean 0 and population standard deviation 1 per input dimension."""
    ref = load_domain("Alpine2D", 5, 6, tasks=10, pool=40, protocol="reference")
    xs = torch.cat(
        [t.reshape(-1, t.shape[-1]) for s in (ref.train, ref.test) for t in (s.support_x, s.query_x, s.test_x)]
    )
    assert torch.allclose(xs.mean(0), torch.zeros(2, dtype=xs.dtype), atol=1e-12)
    assert torch.allclose(xs.std(0, unbiased=False), torch.ones(2, dtype=xs.dtype), atol=1e-12)
