"""What --compile costs a run (amaml_lab.bench.compile_cost): the arithmetic on planted run folders, and the
committed runs of benchmarks/compile_runs.sh behind the numbers the README and docs/performance.md quote."""
import json
from pathlib import Path

import pytest

from amaml_lab.bench import compile_cost

ROOT = Path(__file__).resolve().parents[1]


def _plant(folder: Path, name: str, seconds: list[float], compile_s: float | None = None) -> None:
    run = folder / name
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text("meta_step,query_loss,seconds\n" + "".join(
        f"{i + 1},0.5,{s:.6f}\n" for i, s in enumerate(seconds)))
    (run / "summary.json").write_text(json.dumps({} if compile_s is None else {"compile_s": compile_s}))


def test_paid_back_is_the_compile_over_what_each_step_saves(tmp_path):
    """eager steps of 1.0 s, compiled of 0.25 s: a 30 s compile is paid back at meta-step 40 (30 / 0.75) and is
    30 / (5000 x 0.25) of a 5,000-step run; a compiled run no faster than eager never pays back."""
    _plant(tmp_path, "maml-eager", [1.2, 1.0, 1.0, 0.9])
    _plant(tmp_path, "maml-cold", [30.25, 0.25, 0.25, 0.3], compile_s=30.0)
    _plant(tmp_path, "maml-warm", [3.25, 0.2, 0.25, 0.25], compile_s=3.0)
    _plant(tmp_path, "slow-eager", [1.0, 1.0, 1.0])
    _plant(tmp_path, "slow-cold", [9.0, 1.0, 1.0], compile_s=8.0)
    _plant(tmp_path, "slow-warm", [2.0, 1.5, 1.5], compile_s=1.0)
    rows = {(r["method"], r["cache"]): r for r in compile_cost.rows(tmp_path)}
    cold = rows["maml", "cold"]
    assert (cold["eager_s"], cold["compiled_s"]) == (1.0, 0.275)  # medians of the runs' steps
    assert cold["break_even"] == pytest.approx(30.0 / 0.725) and cold["share"] == pytest.approx(30.0 / (5000 * 0.275))
    assert rows["maml", "warm"]["break_even"] == pytest.approx(3.0 / 0.75)
    assert rows["slow", "cold"]["break_even"] is None and rows["slow", "warm"]["break_even"] is None
    text = compile_cost.table(list(rows.values()))
    assert "| maml | cold | 30.0 | 1.000 | 0.275 | 41 (0.8 %) | 2.2 % |" in text
    assert "| slow | warm | 1.0 | 1.000 | 1.500 | never | 0.0 % |" in text


def test_the_command_line_writes_the_tables_and_refuses_a_missing_folder(tmp_path, capsys):
    _plant(tmp_path / "runs", "maml-eager", [1.0, 1.0])
    _plant(tmp_path / "runs", "maml-cold", [5.5, 0.5], compile_s=5.0)
    _plant(tmp_path / "runs", "maml-warm", [1.5, 0.5], compile_s=1.0)
    assert compile_cost.main([str(tmp_path / "runs")]) == 0
    assert json.loads((tmp_path / "runs.json").read_text()) == compile_cost.rows(tmp_path / "runs")
    assert "| maml | warm | 1.0 |" in (tmp_path / "runs.md").read_text()
    assert compile_cost.main([str(tmp_path / "absent")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_the_committed_compile_runs_are_what_the_readme_and_docs_say():
    """benchmarks/cpu-compile-runs.json is its run folders read again, and the README's and docs' compile numbers
    are its rows: a machine's first run pays back after 1 % of a 5,000-step run, every later one within it."""
    folder = ROOT / "benchmarks" / "cpu-compile-runs"
    rows = compile_cost.rows(folder)
    assert json.loads(folder.with_suffix(".json").read_text()) == rows
    r = {(row["method"], row["cache"]): row for row in rows}
    readme = " ".join((ROOT / "README.md").read_text().split())
    docs = " ".join((ROOT / "docs" / "performance.md").read_text().split())
    cold, warm = (tuple(r[m, kind] for m in ("maml", "adjoint")) for kind in ("cold", "warm"))
    assert (f"{cold[0]['compile_s']:.1f} s and {cold[1]['compile_s']:.1f} s in a machine's first run, paid back (the"
            f" run ahead of an eager one) by the {cold[0]['break_even']:.0f}th and {cold[1]['break_even']:.0f}rd"
            f" meta-step, {100 * cold[0]['break_even'] / 5000:.1f} and {100 * cold[1]['break_even'] / 5000:.1f} %"
            f" of a 5,000-step run; {warm[0]['compile_s']:.1f} s and {warm[1]['compile_s']:.1f} s in every later"
            f" run") in readme
    assert f"paid back by the {warm[0]['break_even']:.0f}th and {warm[1]['break_even']:.0f}rd" in readme
    for m in ("maml", "adjoint"):
        c, w = r[m, "cold"], r[m, "warm"]
        assert (f"| {m} | {c['compile_s']:.1f} s ({100 * c['share']:.1f} %" in docs
                and f"| {c['break_even']:.0f} ({100 * c['break_even'] / 5000:.1f} %) | {w['compile_s']:.1f} s"
                    f" ({100 * w['share']:.1f} %) | {w['break_even']:.0f} ({100 * w['break_even'] / 5000:.1f} %) |"
                    in docs), m
    assert all(x["break_even"] > 50 for x in cold) and all(x["break_even"] < 50 for x in warm)  # 1 % of 5,000
    assert ("within the first 1 % of a 5,000-step run in every run after a machine's first, and not in the first"
            f" (within its first {100 * cold[0]['break_even'] / 5000:.1f} and {100 * cold[1]['break_even'] / 5000:.1f} %)"
            in docs)


@pytest.mark.parametrize("argv", [[], ["out", "two"], ["out", "1"], ["a", "40", "c"]])
def test_the_script_refuses_bad_arguments_in_one_line(argv, tmp_path):
    import subprocess

    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "compile_runs.sh"), *argv], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "usage:" in done.stderr, done.stderr
    assert not list(tmp_path.iterdir())  # nothing ran


def test_the_committed_runs_decide_run_gpu_shs_choice_as_the_docs_say():
    """docs/performance.md: with these runs' numbers, run_gpu.sh's rule (compile + N compiled steps against N eager
    steps) compiles the full protocol's 5,000 meta-steps and, after a machine's first compile, not --small's 20."""
    rows = compile_cost.rows(ROOT / "benchmarks" / "cpu-compile-runs")
    for cache, meta, compiles in (("cold", 5000, True), ("cold", 20, False), ("warm", 5000, True)):
        assert all((r["compile_s"] + meta * r["compiled_s"] < meta * r["eager_s"]) == compiles
                   for r in rows if r["cache"] == cache), (cache, meta)
    docs = " ".join((ROOT / "docs" / "performance.md").read_text().split())
    assert "with the first-run numbers above the full protocol's 5,000 meta-steps compile and `--small`'s 20 do not." \
        in docs


def test_the_docs_jax_first_calls_are_the_side_by_sides():
    runs = [{r["name"]: r for r in json.loads((ROOT / "benchmarks" / f"{name}.json").read_text())}
            for name in ("cpu-jax-cold", "cpu-jax")]
    jit, diffrax = ([round(run[n]["first_s"], 1) for run in runs] for n in ("jax-jit", "diffrax"))
    docs = " ".join((ROOT / "docs" / "performance.md").read_text().split())
    assert f"took {jit[0]} and {jit[1]} s for jax-jit, {diffrax[0]} and {diffrax[1]} s for diffrax" in docs


def test_committed_rows_say_where_they_live(monkeypatch, tmp_path):
    assert set(compile_cost.committed()) == {(m, c) for m in ("maml", "adjoint") for c in ("cold", "warm")}
    monkeypatch.setattr(compile_cost, "COMMITTED", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="source tree"):
        compile_cost.committed()
