"""bench --jax: the kit's meta-gradient written in JAX and diffrax is the kit's (back-propagation through the same
rk4 steps, float64) on the same theta and meta-batch, and a missing JAX gives rows that say so."""
import pytest

from amaml_lab import peers_jax
from amaml_lab.side_by_side import measure_side_by_side

SMALL = dict(domain="CosMixture2D", shots=10, steps=6, seed=3, rounds=1)


@pytest.mark.skipif(peers_jax.available() is not None, reason=f"{peers_jax.available()}")
def test_jax_and_diffrax_give_the_kits_maml_gradient():
    rows = {r["name"]: r for r in measure_side_by_side({**SMALL, "rows": ["jax-jit", "diffrax"]})["rows"]}
    assert set(rows) == {"kit maml", "kit adjoint", "jax-jit", "diffrax"}
    assert rows["kit maml"]["rel_error"] == 0.0 and rows["kit maml"]["ratio"] > 0
    for peer in ("jax-jit", "diffrax"):
        assert rows[peer]["rel_error"] < 1e-12, rows[peer]
    assert 1e-12 < rows["kit adjoint"]["rel_error"] < 1e-3  # the continuous adjoint: the flow's, not the steps'


def test_without_jax_the_peers_say_what_to_install(monkeypatch):
    monkeypatch.setattr(peers_jax, "available", lambda: "jax not installed (pip install -e \".[jax]\")")
    rows = {r["name"]: r for r in measure_side_by_side({**SMALL, "rows": ["jax-jit", "diffrax"]})["rows"]}
    assert rows["jax-jit"] == {"name": "jax-jit", "error": "skipped: jax not installed (pip install -e \".[jax]\")"}
    assert "time_s" in rows["kit adjoint"] and "diffrax" in rows
