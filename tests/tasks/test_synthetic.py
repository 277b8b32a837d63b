"""Synthetic task families: the formulas, seeding, the protocol's shapes, standardisation."""

import math

import pytest
import torch

from amaml_lab.tasks import FAMILIES, cos_mixture_task, family, make_split, sample_episode


def test_alpine_formula_and_bug_compatible_phase():
    fam = family("Alpine2D")
    x = torch.tensor([[1.0, -2.0], [3.0, 0.5]], dtype=torch.float64)
    s = torch.tensor([0.3, -0.7], dtype=torch.float64)
    expected = sum(abs(x[:, i] * torch.sin(x[:, i] + math.pi + s[i]) + x[:, i] / 10) for i in range(2))
    assert torch.allclose(fam.fn(s, x)[:, 0], expected)
    fixed = make_split("Alpine2D", tasks=4, pool=5).params
    bug = make_split("Alpine2D", tasks=4, pool=5, bug_compatible=True).params
    assert not torch.equal(fixed[:, 0], fixed[:, 1])
    assert torch.equal(bug[:, 0], bug[:, 1])  # the reference code's one phase for both dimensions
    assert fixed.abs().max() <= 5 * math.pi / 12


def test_cos_mixture_and_sinusoid_formulas():
    x = torch.tensor([[0.2, -0.4]], dtype=torch.float64)
    c, p, f = 0.5, 1.0, 4.0
    y = family("CosMixture2D").fn(torch.tensor([c, p, f], dtype=torch.float64), x)
    expected = -c * (math.cos(f * math.pi * 0.2 + p) + math.cos(f * math.pi * -0.4 + p)) - (0.04 + 0.16)
    assert float(y) == pytest.approx(expected, rel=1e-14)
    y = family("Sinusoid").fn(torch.tensor([2.0, 0.5], dtype=torch.float64), torch.tensor([[1.0]], dtype=torch.float64))
    assert float(y) == pytest.approx(2.0 * math.sin(0.5), rel=1e-14)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_protocol_shapes_ranges_and_standardisation(name):
    fam = FAMILIES[name]
    train = make_split(name, tasks=6, pool=40)
    test = make_split(name, tasks=6, pool=40, task_seed=101, standardise_with=train.stats)
    grid = 31 * 31 if fam.dim == 2 else 1000
    assert train.support_x.shape == (6, 40, fam.dim) and train.query_y.shape == (6, 40, 1)
    assert train.test_x.shape == (6, grid, fam.dim) and train.test_y.shape == (6, grid, 1)
    assert abs(float(train.support_y.mean())) < 1e-12 and float(train.support_y.std()) == pytest.approx(1.0)
    raw = train.support_x * train.stats["x_std"] + train.stats["x_mean"]
    assert raw.min() >= fam.low and raw.max() <= fam.high
    assert not torch.equal(train.params, test.params)
    again = make_split(name, tasks=6, pool=40)
    assert torch.equal(again.support_y, train.support_y)  # seeded


def test_episode_sampling_is_seeded_and_checked():
    split = make_split("Sinusoid", tasks=3, pool=30)
    a = sample_episode(split, 1, 5, 7, torch.Generator().manual_seed(0))
    b = sample_episode(split, 1, 5, 7, torch.Generator().manual_seed(0))
    assert torch.equal(a[0][0], b[0][0]) and a[0][0].shape == (5, 1) and a[1][1].shape == (7, 1)
    with pytest.raises(ValueError, match="shots and query must be in 1..30"):
        sample_episode(split, 0, 31, 5, torch.Generator())


def test_unknown_domain():
    with pytest.raises(ValueError, match="domain='Ackley' is not known; allowed values: Alpine2D, CosMixture"):
        make_split("Ackley")


def test_cos_mixture_task_is_seeded():
    (xs, ys), _ = cos_mixture_task(5, 5, seed=3)
    (xs2, ys2), _ = cos_mixture_task(5, 5, seed=3)
    assert torch.equal(ys, ys2) and xs.shape == (5, 2)


def test_family_task_draws_one_task_on_the_family_box():
    from amaml_lab.tasks.synthetic import FAMILIES, family_task

    for name, fam in FAMILIES.items():
        (xs, ys), (xq, yq), params = family_task(name, 7, 5, seed=3)
        assert xs.shape == (7, fam.dim) and ys.shape == (7, 1) and xq.shape == (5, fam.dim) and yq.shape == (5, 1)
        assert bool(((xs >= fam.low) & (xs <= fam.high)).all())
        assert torch.equal(ys[:, 0], fam.fn(params, xs).reshape(-1))
        again = family_task(name, 7, 5, seed=3)
        assert torch.equal(again[0][0], xs) and torch.equal(again[1][1], yq)
    with pytest.raises(ValueError, match="Nope"):
        family_task("Nope", 1, 1)
