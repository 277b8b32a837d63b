"""bench --jax: the kit's meta-gradient written in JAX and diffrax is the kit's (back-propagation through the same
rk4 steps, float64) on the same theta and meta-batch, and a missing JAX gives rows that say so."""

import pytest

from amaml_lab.bench import peers_jax
from amaml_lab.bench.side_by_side import measure_side_by_side
from amaml_lab.bench.tables import side_by_side_table

SMALL = dict(domain="CosMixture2D", shots=10, steps=6, seed=3, rounds=1)


@pytest.mark.skipif(peers_jax.available() is not None, reason=f"{peers_jax.available()}")
def test_jax_and_diffrax_give_the_kits_maml_gradient():
    """Every peer (back-propagation, rematerialised, diffrax's default and every-step checkpoints) is the kit's maml
    to 1e-12: the same steps differentiated exactly, however the backward pass keeps or recomputes them."""
    rows = {r["name"]: r for r in measure_side_by_side({**SMALL, "rows": list(peers_jax.PEERS)})["rows"]}
    assert set(rows) == {"kit maml", "kit adjoint", *peers_jax.PEERS}
    assert rows["kit maml"]["rel_error"] == 0.0 and rows["kit maml"]["ratio"] > 0
    for peer in peers_jax.PEERS:
        assert rows[peer]["rel_error"] < 1e-12, rows[peer]
    assert 1e-12 < rows["kit adjoint"]["rel_error"] < 1e-3  # the continuous adjoint: the flow's, not the steps'
    assert set(rows["kit maml"]["vs"]) == set(peers_jax.PEERS) and rows["jax-jit"]["vs"]["jax-jit"] == 1.0
    table = side_by_side_table([{**r, "steps": 6} for r in rows.values()])
    assert "| / jax-jit | / jax-jit-checkpoint | / diffrax | / diffrax-checkpoints |" in table
    assert f"| {rows['kit maml']['vs']['diffrax']:.2f} |" in table


def test_the_compiled_discrete_adjoint_row_is_the_kits_maml_gradient():
    """The side-by-side's rematerialised kit row: the discrete adjoint, compiled, is maml's gradient to rounding."""
    chosen = ["kit adjoint discrete (compiled)"]
    rows = {r["name"]: r for r in measure_side_by_side({**SMALL, "rows": chosen})["rows"]}
    assert set(rows) == {"kit maml", "kit adjoint", *chosen}
    assert rows[chosen[0]]["rel_error"] < 1e-12 and rows[chosen[0]]["time_s"] > 0, rows[chosen[0]]


def test_without_jax_the_peers_say_what_to_install(monkeypatch):
    monkeypatch.setattr(peers_jax, "available", lambda: 'jax not installed (pip install -e ".[jax]")')
    rows = {r["name"]: r for r in measure_side_by_side({**SMALL, "rows": ["jax-jit", "diffrax"]})["rows"]}
    assert rows["jax-jit"] == {"name": "jax-jit", "error": 'skipped: jax not installed (pip install -e ".[jax]")'}
    assert "time_s" in rows["kit adjoint"] and "diffrax" in rows


def test_the_committed_side_by_side_is_what_the_docs_say():
    """benchmarks/cpu-jax.json (bench --jax, runs paused, warm cache) and cpu-jax-cold.json (an empty cache) hold the
    numbers docs/performance.md and the README quote: the kit's fastest exact meta-gradient (the compiled discrete
    adjoint) at or below JAX's fastest (jit with jax.checkpoint) and diffrax with a checkpoint a step, in both runs
    (paired ratios), every exact gradient the kit's maml, the compile times (issue 36's bar)."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    runs = {
        name: {r["name"]: r for r in json.loads((root / "benchmarks" / f"{name}.json").read_text())}
        for name in ("cpu-jax", "cpu-jax-cold")
    }
    rows = runs["cpu-jax"]
    docs = " ".join((root / "docs" / "performance.md").read_text().split())
    readme = " ".join((root / "README.md").read_text().split())
    fastest = "kit adjoint discrete (compiled)"
    for name, seconds in {fastest: 0.116, "jax-jit-checkpoint": 0.155}.items():
        assert round(rows[name]["time_s"], 3) == seconds and f"({seconds:.3f} s)" in docs, name
    for run, jax, diffrax in (("cpu-jax", 0.76, 0.47), ("cpu-jax-cold", 0.79, 0.48)):
        vs = runs[run][fastest]["vs"]
        assert (round(vs["jax-jit-checkpoint"], 2), round(vs["diffrax-checkpoints"], 2)) == (jax, diffrax)
        assert jax <= 1.0 and diffrax <= 1.0
    assert "takes 0.76 of the time of JAX's fastest" in docs and "gave 0.79 and 0.48" in docs
    assert "0.76 of JAX's fastest" in readme and "0.47 of diffrax's with a checkpoint a step" in readme
    assert round(rows["kit adjoint (compiled)"]["vs"]["jax-jit-checkpoint"], 2) == 0.83 and "0.83 of" in docs
    assert round(rows["kit maml (compiled)"]["vs"]["jax-jit-checkpoint"], 2) == 1.13 and "`maml`, which keeps" in docs
    compile_s = {
        (run, n): round(runs[run][n]["first_s"], 1)
        for run in runs
        for n in ("kit maml (compiled)", "kit adjoint (compiled)", fastest)
    }
    assert compile_s == {
        ("cpu-jax", "kit maml (compiled)"): 3.3,
        ("cpu-jax", "kit adjoint (compiled)"): 1.7,
        ("cpu-jax", fastest): 0.9,
        ("cpu-jax-cold", "kit maml (compiled)"): 22.2,
        ("cpu-jax-cold", "kit adjoint (compiled)"): 17.7,
        ("cpu-jax-cold", fastest): 10.9,
    }
    assert all(f"{v} s" in docs for v in compile_s.values())
    exact = ("kit maml (compiled)", fastest, *peers_jax.PEERS)
    assert all(rows[n]["rel_error"] < 2e-15 for n in exact) and "to 1.4e-15" in docs
    speedups = [
        round(rows[f"kit {m}"]["time_s"] / rows[f"kit {m} (compiled)"]["time_s"], 1) for m in ("maml", "adjoint")
    ]
    assert speedups == [2.3, 4.0] and "2.3x (maml) and 4.0x (the adjoint) faster" in readme
    for name, label in README_ROWS.items():
        r, vs = rows[name], rows[name]["vs"]
        ratios = f"{vs['jax-jit-checkpoint']:.2f} | {vs['diffrax-checkpoints']:.2f}"
        assert f"| {label} | {r['time_s']:.3f} | {ratios} |" in readme


README_ROWS = {
    "kit maml": "kit maml, eager",
    "kit adjoint": "kit adjoint, eager",
    "kit maml (compiled)": "kit maml, compiled",
    "kit adjoint (compiled)": "kit adjoint, compiled",
    "kit adjoint discrete (compiled)": "**kit adjoint, discrete scheme, compiled** (maml's gradient)",
    "jax-jit": "jax-jit (back-propagation through the loop)",
    "jax-jit-checkpoint": "jax-jit-checkpoint (the same, each step recomputed)",
    "diffrax": "diffrax (its default adjoint)",
    "diffrax-checkpoints": "diffrax-checkpoints (a checkpoint a step)",
}


def test_the_scan_before_and_after_is_what_the_docs_say():
    """benchmarks/cpu-scan-before-after.md: the discrete adjoint in two scans against a graph a step, interleaved in
    two workers: faster, the continuous adjoint faster, maml (unchanged) the control, gradients equal."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    table = (root / "benchmarks" / "cpu-scan-before-after.md").read_text()
    docs = " ".join((root / "docs" / "performance.md").read_text().split())
    ratios = {
        line.split("|")[1].strip(): float(line.rstrip(" |").rsplit("|", 1)[1])
        for line in table.splitlines()
        if line.startswith("| kit")
    }
    assert ratios == {
        "kit adjoint discrete (compiled)": 0.72,
        "kit adjoint (compiled)": 0.89,
        "kit maml (compiled)": 1.00,
    }
    assert "before a graph a step, after a scan a solve" in table and "differ by 0.0e+00" in table
    assert "takes 0.72 of its time before, the compiled continuous adjoint's" in docs and "0.89, and compiled" in docs
    assert "bought 28 % of the meta-step" in docs
    ends = (root / "benchmarks" / "cpu-scan-ends-before-after.md").read_text()
    rows = {
        x.split("|")[1].strip(): x.rstrip(" |").rsplit("|", 1)[1].strip()
        for x in ends.splitlines()
        if x.startswith("| kit")
    }
    assert rows == {"kit reptile (compiled)": "0.72", "kit fomaml (compiled)": "0.73", "kit imaml (compiled)": "0.66"}
    assert "differ by 0.0e+00" in ends and "Reptile takes 0.72 of its time before, FOMAML 0.73 and iMAML 0.66" in docs


def test_the_profile_the_docs_quote_is_the_committed_one():
    """docs/performance.md's "Where the compiled step's time goes": every number is a cell of
    benchmarks/cpu-profile-meta-step.md (benchmarks/profile_meta_step.py's output) or of cpu-tanh-before-after.md
    (the switch to ATen's tanh), and the switch made each compiled meta-step faster; the profile is of the graphs a
    step the kit called before the scans."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    table = (root / "benchmarks" / "cpu-profile-meta-step.md").read_text()
    tanh = (root / "benchmarks" / "cpu-tanh-before-after.md").read_text()
    docs = " ".join((root / "docs" / "performance.md").read_text().split())
    part = docs.split("**Where the compiled step's time went**")[1].split("* **")[0]

    def cell(text: str, row: str) -> str:
        return next(line for line in text.splitlines() if row in line).rstrip(" |").rsplit("|", 1)[1].strip()

    cells = {
        "| kit adjoint discrete (compiled)": "1.25",
        "| kit maml (compiled)": "1.39",
        "forward_step (one rk4 step": "0.748",
        "pullback (one step's": "1.480",
        "a trivial graph": "0.058",
        "pullback of 10 steps in one graph": "1.296",
    }
    for row, value in cells.items():
        assert cell(table, row) == value and value in part, row
    assert "(first call 117 s)" in table and "first compile of 117 s" in part
    befores = {"| kit adjoint discrete (compiled)": "0.89", "| kit maml (compiled)": "0.94"}
    for row, value in befores.items():
        assert cell(tanh, row) == value and float(value) < 1 and value in part, row
    assert "before inductor, after aten" in tanh and "differ by 4.2e-16" in tanh and "4.2e-16" in part
    shares = {("forward_step", "tanh"): "21%", ("pullback", "tanh"): "10%"}
    shares |= {("forward_step", "Cache Lookup"): "13%", ("pullback", "Cache Lookup"): "10%"}
    for (graph, kernel), share in shares.items():
        line = next(x for x in table.splitlines() if x.startswith(f"| {graph} |") and kernel in x)
        assert line.rstrip(" |").endswith(share) and share.replace("%", " %") in part, (graph, kernel)
    products = {
        graph: sum(
            int(x.rstrip(" |").rsplit("|", 1)[1].strip(" %"))
            for x in table.splitlines()
            if x.startswith(f"| {graph} |") and re.search(r"aten::(bmm|baddbmm)", x)
        )
        for graph in ("forward_step", "pullback")
    }
    assert products == {"forward_step": 35, "pullback": 45} and "35 % and 45 %" in part


def test_the_warm_run_measurement_the_docs_quote_is_the_committed_one():
    """docs/performance.md's `warm` paragraph: the seconds are benchmarks/cpu-warm-runs.json's, and the runs after
    `warm` loaded every graph and compiled none (what "paid ahead" means)."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    rows = {r["method"]: r for r in json.loads((root / "benchmarks" / "cpu-warm-runs.json").read_text())}
    docs = " ".join((root / "docs" / "performance.md").read_text().split())
    assert f"`warm` took {rows['adjoint']['warm_s']:.1f} s for the paper's adjoint" in docs
    assert f"{rows['maml']['warm_s']:.1f} s for its maml" in docs
    assert f"waited {rows['adjoint']['compile_s']:.1f} s and {rows['maml']['compile_s']:.1f} s for its compile" in docs
    assert all(r["cache"]["compiled"] == 0 and r["cache"]["loaded"] >= 1 for r in rows.values())
    assert all(r["compile_s"] <= 5.0 for r in rows.values())  # issue 36's bar: a run's compile after warm, here
    readme = " ".join((root / "README.md").read_text().split())
    waited = f"waited {rows['adjoint']['compile_s']:.1f} and {rows['maml']['compile_s']:.1f} s, every graph loaded"
    assert waited in readme
    readme = " ".join((root / "README.md").read_text().split())
    said = [f"{rows[m]['warm_s']:.1f} s" for m in ("adjoint", "maml")] + [
        f"waited {rows['adjoint']['compile_s']:.1f} and {rows['maml']['compile_s']:.1f} s"
    ]
    assert all(x in readme for x in said), said
