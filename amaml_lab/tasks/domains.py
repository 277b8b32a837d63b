"""The experiment domains behind ``amaml-lab run``: where meta-training batches and meta-test sets come from.

A domain hands out two things, both stacked along a leading task dimension:
``train_batch`` (a meta-batch of support and query sets drawn from the
meta-train tasks with a torch.Generator, so a checkpointed generator state
makes a resumed run draw what an uninterrupted one would) and ``eval_set``
(fixed, seeded support sets of the meta-test tasks with the points their error
is measured on: the test grid of a synthetic function, a user's held-out
ratings).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from ..checks import check_choice
from . import jester, movielens, omniglot
from .synthetic import FAMILIES, make_split

RATINGS = ("MovieLens100K", "MovieLens1M", "Jester")
CLASSIFICATION = ("Omniglot",)
SPLITS = ("test", "validation")  # the task sets a synthetic domain evaluates on
DOMAINS = (*FAMILIES, *RATINGS, *CLASSIFICATION)
EVAL_SEED = 300  # meta-test episodes are the same for every method, run seed and meta-step
# meta-validation functions (synthetic families): neither meta-train (task seed 100) nor meta-test (101) functions,
# for choosing settings such as the meta-learning rate without looking at the meta-test tasks
VALIDATION_TASK_SEED, VALIDATION_DESIGN_SEED = 102, 202
# Omniglot's meta-validation: the meta-train characters held out (all four rotations of each), chosen by this seed,
# and the episodes drawn from them by the next
VALIDATION_CHARACTERS_SEED, VALIDATION_EPISODES_SEED = 103, 301


def check_domain(name: str) -> str:
    check_choice("domain", name, DOMAINS)
    return name


def default_hidden(name: str) -> int:
    """The reference's widths: 2 x 32 for synthetic functions, 2 x 40 for collaborative filtering, 64 filters for
    Conv-4."""
    check_domain(name)
    return 64 if name in CLASSIFICATION else 40 if name in RATINGS else 32


@dataclass
class EvalSet:
    """Meta-test tasks: support (x, y) to fine-tune on, target (x, y) to measure the error on."""

    support: tuple
    target: tuple

    @property
    def tasks(self) -> int:
        return self.support[0].shape[0]

    def ids(self) -> list[str]:
        """One short content hash per task (its support and target tensors in float64): two runs' tasks.csv
        rows are the same task exactly when their ids agree (experiments.paired checks it)."""
        ids = []
        for i in range(self.tasks):
            digest = hashlib.sha1()
            for t in (*self.support, *self.target):
                row = t[i].detach().cpu()
                digest.update((row.double() if row.is_floating_point() else row.long()).contiguous().numpy().tobytes())
            ids.append(digest.hexdigest()[:12])
        return ids


# the reference's experiment.sh: batchsize=1000 episodes drawn once, meta_shuffle_batch=True (a new order each epoch)
REFERENCE_EPISODES = 1000
EPOCH_ORDER_SEED = 5000  # epoch e visits the episodes in the order of randperm(REFERENCE_EPISODES) seeded 5000 + e


class SyntheticDomain:
    """A synthetic family: meta-train functions from task seed 100, meta-test functions from task seed 101.

    ``protocol="kit"`` (the default): both splits follow :func:`make_split`
    (pools of ``pool`` points) standardised with the meta-train split's
    statistics only, and every meta-batch draws fresh episodes.
    ``protocol="reference"`` reproduces the Adjoint MAML code instead: one
    scaler (mean and population standard deviation) fitted on every pool and
    test grid of all meta-train and meta-test tasks together (meta-test
    statistics leak into training), and a fixed sequence of
    ``REFERENCE_EPISODES`` (1,000) episodes drawn once (task order from seeded
    permutations, episode i's support and query points from seeds 2i and
    2i + 1) and visited in a new seeded order each epoch, as the reference's
    ``experiment.sh`` runs it (``batchsize=1000``, ``meta_shuffle_batch=True``).
    Meta-test tasks are scored on the family's test grid either way.
    """

    def __init__(
        self, name: str, tasks: int = 100, pool: int = 1000, bug_compatible: bool = False, protocol: str = "kit"
    ):
        if protocol not in ("kit", "reference"):
            raise ValueError(f"protocol={protocol!r} is not known; allowed values: kit, reference")
        self.name, self.protocol = name, protocol
        kw = dict(tasks=tasks, pool=pool, bug_compatible=bug_compatible)
        if protocol == "kit":
            self.train = make_split(name, task_seed=100, design_seed=200, **kw)
            stats = self.train.stats
        else:
            identity = {"x_mean": 0.0, "x_std": 1.0, "y_mean": 0.0, "y_std": 1.0}
            raw = [
                make_split(name, task_seed=100 + i, design_seed=200 + i, standardise_with=identity, **kw)
                for i in (0, 1)
            ]
            xs = torch.cat([t.reshape(-1, t.shape[-1]) for r in raw for t in (r.support_x, r.query_x, r.test_x)])
            ys = torch.cat([t.reshape(-1) for r in raw for t in (r.support_y, r.query_y, r.test_y)])
            stats = {
                "x_mean": xs.mean(0),
                "x_std": xs.std(0, unbiased=False),
                "y_mean": ys.mean(),
                "y_std": ys.std(unbiased=False),
            }
            self.train = make_split(name, task_seed=100, design_seed=200, standardise_with=stats, **kw)
            order = [
                torch.randperm(tasks, generator=torch.Generator().manual_seed(1 + n))
                for n in range(-(-REFERENCE_EPISODES // tasks))
            ]
            self.episode_tasks = torch.cat(order)[:REFERENCE_EPISODES]
            self._order = (-1, None)
        self.test = make_split(name, task_seed=101, design_seed=201, standardise_with=stats, **kw)
        self.in_features = FAMILIES[name].dim
        self.pool, self.stats, self.kw, self._validation = pool, stats, kw, None

    def _check(self, shots: int, query: int):
        if shots > self.pool or query > self.pool:
            raise ValueError(f"shots and query must be at most the pool size {self.pool}; got {shots} and {query}")

    def _reference_episode(self, i: int, shots: int, query: int):
        """The i-th episode visited: epoch i // 1000 visits the fixed episodes in its own shuffled order."""
        epoch, position = divmod(i, REFERENCE_EPISODES)
        if self._order[0] != epoch:
            self._order = (
                epoch,
                torch.randperm(REFERENCE_EPISODES, generator=torch.Generator().manual_seed(EPOCH_ORDER_SEED + epoch)),
            )
        i = int(self._order[1][position])
        s_idx = torch.randperm(self.pool, generator=torch.Generator().manual_seed(2 * i))[:shots]
        q_idx = torch.randperm(self.pool, generator=torch.Generator().manual_seed(2 * i + 1))[:query]
        return int(self.episode_tasks[i]), s_idx, q_idx

    def train_batch(self, gen: torch.Generator, size: int, shots: int, query: int, episode: int = 0):
        """A meta-batch: fresh draws from ``gen`` (kit), or episodes ``episode``.. of the fixed sequence (reference)."""
        self._check(shots, query)
        split = self.train
        if self.protocol == "reference":
            draws = [self._reference_episode(episode + j, shots, query) for j in range(size)]
        else:
            picks = torch.randint(0, split.tasks, (size,), generator=gen).tolist()
            draws = [
                (t, torch.randperm(self.pool, generator=gen)[:shots], torch.randperm(self.pool, generator=gen)[:query])
                for t in picks
            ]
        sx, sy, qx, qy = [], [], [], []
        for t, s_idx, q_idx in draws:
            sx.append(split.support_x[t, s_idx])
            sy.append(split.support_y[t, s_idx])
            qx.append(split.query_x[t, q_idx])
            qy.append(split.query_y[t, q_idx])
        return (torch.stack(sx), torch.stack(sy)), (torch.stack(qx), torch.stack(qy))

    def eval_set(self, tasks: int, shots: int, query: int, split: str = "test") -> EvalSet:
        """The first ``tasks`` meta-test functions: ``shots`` support points each, scored on the test grid.

        ``split="validation"``: meta-validation functions instead (task seed 102, standardised like the rest), for
        choosing settings without the meta-test tasks."""
        check_choice("split", split, SPLITS)
        self._check(shots, query)
        if split == "validation" and self._validation is None:
            self._validation = make_split(
                self.name,
                task_seed=VALIDATION_TASK_SEED,
                design_seed=VALIDATION_DESIGN_SEED,
                standardise_with=self.stats,
                **self.kw,
            )
        functions = self.test if split == "test" else self._validation
        tasks = min(tasks, functions.tasks)
        gen = torch.Generator().manual_seed(EVAL_SEED)
        idx = torch.stack([torch.randperm(self.pool, generator=gen)[:shots] for _ in range(tasks)])
        rows = torch.arange(tasks)[:, None]
        support = (functions.support_x[rows, idx], functions.support_y[rows, idx])
        return EvalSet(support, (functions.test_x[:tasks].contiguous(), functions.test_y[:tasks]))


class RatingsDomain:
    """Collaborative filtering: each user a task, each rated item a point (100-d item features).

    Users are split 80/20 into meta-train and meta-test (seed 100) by
    :func:`~amaml_lab.tasks.movielens.rating_tasks`; only users with at least
    ``shots + query`` ratings take part, so support and query are disjoint
    draws of one user's ratings.  A meta-test user is scored on ``query``
    held-out ratings.
    """

    def __init__(self, name: str, ratings: torch.Tensor, shots: int, query: int, dim: int = 100):
        self.name = name
        self.in_features = dim
        self.shots, self.query = shots, query
        train, test = movielens.rating_tasks(ratings, dim=dim, min_ratings=shots + query)
        if not train.users or not test.users:
            raise ValueError(f"no user of {name} has {shots + query} ratings (shots + query); use fewer")
        self.train, self.test = train, test

    def _check(self, shots: int, query: int):
        if (shots, query) != (self.shots, self.query):
            raise ValueError(f"this {self.name} domain was built for {self.shots}/{self.query} shots/query")

    @staticmethod
    def _draw(tasks, user: int, gen, shots: int, query: int):
        x, y = tasks.features[user], tasks.targets[user]
        order = torch.randperm(len(y), generator=gen)
        s, q = order[:shots], order[shots : shots + query]
        return x[s], y[s], x[q], y[q]

    def train_batch(self, gen: torch.Generator, size: int, shots: int, query: int):
        self._check(shots, query)
        picks = torch.randint(0, len(self.train.users), (size,), generator=gen)
        parts = [self._draw(self.train, u, gen, shots, query) for u in picks.tolist()]
        sx, sy, qx, qy = (torch.stack(p) for p in zip(*parts))
        return (sx, sy), (qx, qy)

    def eval_set(self, tasks: int, shots: int, query: int) -> EvalSet:
        """The first ``tasks`` meta-test users (by id): ``shots`` ratings to fine-tune on, ``query`` to score."""
        self._check(shots, query)
        gen = torch.Generator().manual_seed(EVAL_SEED)
        parts = [self._draw(self.test, u, gen, shots, query) for u in range(min(tasks, len(self.test.users)))]
        sx, sy, qx, qy = (torch.stack(p) for p in zip(*parts))
        return EvalSet((sx, sy), (qx, qy))


class OmniglotDomain:
    """N-way K-shot episodes: meta-train from the split's training characters, meta-test from its test characters.

    ``subset`` picks the archives (see :mod:`amaml_lab.tasks.omniglot`): "auto"
    uses the full set where both of its zips are found, else the small subsets.
    Meta-test episodes come from a fixed seed, the same for every method.
    ``validation`` meta-train characters (a seeded choice, each with its four
    rotations, so no rotation of one is trained on) are held out of training for
    meta-validation episodes (``eval_set(..., split="validation")``).
    """

    _cache: dict = {}

    def __init__(self, ways: int, data_root=None, subset: str = "auto", validation: int = 0):
        key = (str(data_root), subset)
        if key not in self._cache:  # reading the PNGs takes seconds; a compare reads them once
            self._cache.clear()
            self._cache[key] = omniglot.load(data_root, subset)
        self.data = self._cache[key]
        self.name, self.ways = "Omniglot", ways
        self.subset = self.data.subset
        self.train, self.validation = _hold_out(self.data.train, validation)

    def train_batch(self, gen: torch.Generator, size: int, shots: int, query: int):
        return omniglot.episodes(self.train, size, self.ways, shots, query, gen)

    def eval_set(self, tasks: int, shots: int, query: int, split: str = "test") -> EvalSet:
        """``tasks`` episodes of the meta-test characters (``split="validation"``: of the held-out meta-train ones),
        the same for every method, run seed and meta-step."""
        check_choice("split", split, SPLITS)
        if split == "validation" and self.validation is None:
            raise ValueError("split='validation' needs held-out characters: build the domain with validation > 0")
        classes, seed = (self.data.test, EVAL_SEED) if split == "test" else (self.validation, VALIDATION_EPISODES_SEED)
        support, target = omniglot.episodes(
            classes, tasks, self.ways, shots, query, torch.Generator().manual_seed(seed)
        )
        return EvalSet(support, target)


def _hold_out(classes: torch.Tensor, characters: int):
    """(training classes, held-out classes or None): ``characters`` characters out of ``classes`` (rotations of C
    characters in four blocks of C, as :func:`~amaml_lab.tasks.omniglot.with_rotations` stacks them), each with its
    four rotations."""
    count = classes.shape[0] // 4
    if isinstance(characters, bool) or not isinstance(characters, int) or not 0 <= characters < count:
        raise ValueError(
            f"validation must be an integer in 0..{count - 1} (held-out meta-train characters); got {characters!r}"
        )
    if characters == 0:
        return classes, None
    held = torch.zeros(count, dtype=torch.bool)
    held[torch.randperm(count, generator=torch.Generator().manual_seed(VALIDATION_CHARACTERS_SEED))[:characters]] = True
    held = held.repeat(4)
    return classes[~held], classes[held]


def ratings_of(name: str, data_root=None) -> torch.Tensor:
    """The (user, item, rating) rows of a ratings domain, read from ``data_root`` (MovieLens 100K may download)."""
    if name == "MovieLens100K":
        return movielens.load_ratings(movielens.locate_ml100k(data_root))
    if name == "MovieLens1M":
        return movielens.load_ml1m(data_root)
    if name == "Jester":
        return jester.load_jester(data_root)
    raise ValueError(f"domain={name!r} is not a ratings domain; allowed values: {', '.join(RATINGS)}")


def load_domain(
    name: str,
    shots: int,
    query: int,
    data_root=None,
    tasks: int = 100,
    pool: int = 1000,
    bug_compatible: bool = False,
    ways: int = 5,
    subset: str = "auto",
    protocol: str = "kit",
    validation: int = 0,
):
    """The domain ``name`` ready to hand out batches (ratings domains and Omniglot read ``data_root``).

    ``protocol="reference"`` (synthetic families only) is :class:`SyntheticDomain`'s.

    Args:
        name: one of :data:`DOMAINS`: the synthetic families ``Alpine2D``, ``CosMixture``, ``CosMixture2D``,
            ``Sinusoid``; the ratings domains ``MovieLens100K``, ``MovieLens1M``, ``Jester``; ``Omniglot``.
        shots, query: support and query points a task.  A ratings domain is built for exactly these (only users
            with at least ``shots + query`` ratings take part); the other domains take them batch by batch.
        data_root: the folder holding a ratings domain's or Omniglot's files, or None (then MovieLens 100K and
            Omniglot may download).
        tasks, pool: a synthetic family's number of functions a split and the size of each task's pools.
        bug_compatible: a synthetic family's draw as the reference code made it (see :func:`make_split`).
        ways: Omniglot's classes an episode.
        subset: Omniglot's archives, ``"auto"``, ``"full"``, ``"small"`` or ``"demo"`` (generated glyphs).
        protocol: ``"kit"`` or ``"reference"``.
        validation: Omniglot's meta-train characters held out for meta-validation (0: none).

    Returns:
        A :class:`SyntheticDomain`, :class:`RatingsDomain` or :class:`OmniglotDomain`.

    Raises:
        ValueError: an unknown ``name``, ``protocol`` or (Omniglot) ``subset``, ``protocol="reference"`` for a domain
            that is not a synthetic family, or a ratings domain where no user has ``shots + query`` ratings.
        FileNotFoundError: a ratings domain's or Omniglot's files are not found (nor downloaded).
    """
    check_domain(name)
    if protocol != "kit" and name not in FAMILIES:
        raise ValueError(
            f"protocol={protocol!r} reproduces the reference code's synthetic data; domain={name!r}"
            f" has only protocol='kit'. Use it with {', '.join(FAMILIES)}"
        )
    if validation and name not in CLASSIFICATION:
        raise ValueError(f"validation holds out Omniglot's characters; domain={name!r} has its own validation split")
    if name in CLASSIFICATION:
        return OmniglotDomain(ways, data_root, subset, validation)
    if name in RATINGS:
        return RatingsDomain(name, ratings_of(name, data_root), shots, query)
    return SyntheticDomain(name, tasks=tasks, pool=pool, bug_compatible=bug_compatible, protocol=protocol)
