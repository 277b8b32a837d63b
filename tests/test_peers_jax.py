"""bench --jax: the kit's meta-gradient written in JAX and diffrax is the kit's (back-propagation through the same
rk4 steps, float64) on the same theta and meta-batch, and a missing JAX gives rows that say so."""
import pytest

from amaml_lab import peers_jax
from amaml_lab.bench.tables import side_by_side_table
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
    assert set(rows["kit maml"]["vs"]) == {"jax-jit", "diffrax"} and rows["jax-jit"]["vs"]["jax-jit"] == 1.0
    table = side_by_side_table([{**r, "steps": 6} for r in rows.values()])
    assert "| / jax-jit | / diffrax |" in table and f"| {rows['kit maml']['vs']['diffrax']:.2f} |" in table


def test_without_jax_the_peers_say_what_to_install(monkeypatch):
    monkeypatch.setattr(peers_jax, "available", lambda: "jax not installed (pip install -e \".[jax]\")")
    rows = {r["name"]: r for r in measure_side_by_side({**SMALL, "rows": ["jax-jit", "diffrax"]})["rows"]}
    assert rows["jax-jit"] == {"name": "jax-jit", "error": "skipped: jax not installed (pip install -e \".[jax]\")"}
    assert "time_s" in rows["kit adjoint"] and "diffrax" in rows


def test_the_committed_side_by_side_is_what_the_docs_say():
    """benchmarks/cpu-jax.json (bench --jax, quiet machine) holds the numbers docs/performance.md and the README
    quote: compiled about 2x the eager adjoint, within 1.15x of JAX and diffrax, every gradient the kit's maml."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    rows = {r["name"]: r for r in json.loads((root / "benchmarks" / "cpu-jax.json").read_text())}
    quoted = {"kit adjoint": 0.555, "kit maml (compiled)": 0.221, "kit adjoint (compiled)": 0.232,
              "jax-jit": 0.204, "diffrax": 0.208}
    docs = (root / "docs" / "performance.md").read_text()
    for name, seconds in quoted.items():
        assert round(rows[name]["time_s"], 3) == seconds and f"{seconds:.3f} s" in docs, name
    assert rows["kit adjoint (compiled)"]["ratio"] <= 0.5 and rows["kit maml (compiled)"]["ratio"] <= 0.5
    assert rows["kit maml (compiled)"]["time_s"] / rows["jax-jit"]["time_s"] < 1.15
    assert rows["kit adjoint (compiled)"]["time_s"] / rows["diffrax"]["time_s"] < 1.15
    assert all(rows[n]["rel_error"] < 1e-14 for n in ("kit maml (compiled)", "jax-jit", "diffrax"))
    assert "within 1.15x of JAX and diffrax" in (root / "README.md").read_text()
