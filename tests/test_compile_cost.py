"""What --compile costs a run (amaml_lab.bench.compile_cost): the arithmetic on planted run folders, and the
committed runs of benchmarks/compile_runs.sh behind the numbers the README and docs/performance.md quote."""
import json
from pathlib import Path

import pytest

from amaml_lab.bench import compile_cost

ROOT = Path(__file__).resolve().parents[1]


def _plant(folder: Path, name: str, seconds: list[float], compiled_from: int | None = 0, compile_s: float = 1.0) -> None:
    run = folder / name
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text("meta_step,query_loss,seconds\n" + "".join(
        f"{i + 1},0.5,{s:.6f}\n" for i, s in enumerate(seconds)))
    elsewhere = None if compiled_from == 0 else 20.0
    compiled = {"compile_s": compile_s, "compiled_elsewhere_s": elsewhere,
                "compiles": [{"step": 0, "elsewhere_s": elsewhere, "compiled_from": compiled_from}]}
    (run / "summary.json").write_text(json.dumps({} if name.endswith("eager") else compiled))


def test_a_row_is_what_the_run_paid_against_the_eager_run(tmp_path):
    """Eager steps of 1 s.  A waited compile: 5.5 s, then 0.5 s steps: compiled 0.5 s, its cost 7 - 4 x 0.5 = 5 s,
    paid back at meta-step 10 (5 / 0.5), 4.5 s behind the eager pace at most.  A background compile: two eager
    steps, then compiled ones: its cost 3 - 4 x 0.5 = 1 s, paid back at 2, never behind.  One still compiling at
    the end: no compiled step, nothing paid back, 0.1 s behind."""
    _plant(tmp_path, "maml-eager", [1.2, 1.0, 1.0, 0.9])
    _plant(tmp_path, "maml-cold", [5.5, 0.5, 0.5, 0.5], compile_s=5.0)
    _plant(tmp_path, "maml-background", [1.0, 1.0, 0.5, 0.5], compiled_from=2, compile_s=1.8)
    _plant(tmp_path, "slow-eager", [1.0, 1.0])
    _plant(tmp_path, "slow-background", [1.0, 1.1], compiled_from=None, compile_s=30.0)
    rows = {(r["method"], r["compile"]): r for r in compile_cost.rows(tmp_path)}
    assert set(rows) == {("maml", "cold"), ("maml", "background"), ("slow", "background")}
    cold, background, slow = rows["maml", "cold"], rows["maml", "background"], rows["slow", "background"]
    assert (cold["eager_s"], cold["compiled_s"], cold["compiled_from"], cold["paid_back"]) == (1.0, 0.5, 1, 10)
    assert cold["cost_s"] == pytest.approx(5.0) and cold["behind_s"] == pytest.approx(4.5)
    assert cold["share"] == pytest.approx(5.0 / (5000 * 0.5))
    assert (background["compiled_from"], background["paid_back"], background["behind_s"]) == (3, 2, 0.0)
    assert background["cost_s"] == pytest.approx(1.0) and background["compile_s"] == 1.8
    assert background["meanwhile_s"] == 1.0 and cold["meanwhile_s"] is None
    assert slow["compiled_s"] is slow["cost_s"] is slow["share"] is slow["compiled_from"] is slow["paid_back"] is None
    assert slow["behind_s"] == pytest.approx(0.1)
    text = compile_cost.table(list(rows.values()))
    assert "| maml | cold |  | 5.0 | 1 | 1.000 | 0.500 | 10 | 4.5 | 5.0 | 0.2 % |" in text
    assert "| maml | background | 20.0 | 1.8 | 3 | 1.000 | 0.500 | 2 | 0.0 | 1.0 | 0.0 % |" in text
    assert "| slow | background | 20.0 | 30.0 |  | 1.000 |  | never | 0.1 |  |  |" in text


def test_the_command_line_writes_the_tables_and_refuses_a_missing_folder(tmp_path, capsys):
    _plant(tmp_path / "runs", "maml-eager", [1.0, 1.0])
    _plant(tmp_path / "runs", "maml-warm", [1.5, 0.5], compile_s=1.0)
    assert compile_cost.main([str(tmp_path / "runs")]) == 0
    assert json.loads((tmp_path / "runs.json").read_text()) == compile_cost.rows(tmp_path / "runs")
    assert "| maml | warm |  | 1.0 |" in (tmp_path / "runs.md").read_text()
    assert compile_cost.main([str(tmp_path / "absent")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_the_committed_compile_runs_are_what_the_readme_and_docs_say():
    """benchmarks/cpu-compile-runs.json is its run folders read again; the docs' table is its rows; the README's
    and the docs' claims are its numbers: every later run pays back within the first 1 % of a 5,000-step run, a
    machine's first does not, and --compile keeps the run close to the eager pace where waiting does not."""
    folder = ROOT / "benchmarks" / "cpu-compile-runs"
    rows = compile_cost.rows(folder)
    assert json.loads(folder.with_suffix(".json").read_text()) == rows
    r = {(row["method"], row["compile"]): row for row in rows}
    readme = " ".join((ROOT / "README.md").read_text().split())
    docs = " ".join((ROOT / "docs" / "performance.md").read_text().split())
    label = {"cold": "machine's first, waited", "warm": "later, waited", "background": "machine's first, `--compile`"}
    for (method, kind), x in r.items():
        elsewhere = "" if x["elsewhere_s"] is None else f"{x['elsewhere_s']:.1f}"
        line = (f"| {method} | {label[kind]} | {elsewhere} | {x['compile_s']:.1f} | {x['behind_s']:.1f} |"
                f" {x['cost_s']:.1f} s ({100 * x['share']:.1f} %) | {x['paid_back']} |")
        assert " ".join(line.split()) in docs, (method, kind)
    m, a = ({k: r[name, k] for k in label} for name in ("maml", "adjoint"))
    assert (f"a machine's first compile {m['cold']['compile_s']:.1f} s (maml) and {a['cold']['compile_s']:.1f} s (the"
            f" adjoint), {100 * m['cold']['share']:.1f} and {100 * a['cold']['share']:.1f} % of a 5,000-step run;"
            f" every later run, once inductor's cache holds what it built, {m['warm']['compile_s']:.1f} and"
            f" {a['warm']['compile_s']:.1f} s ({100 * m['warm']['share']:.1f} %)") in readme
    assert round(100 * a["warm"]["share"], 1) == round(100 * m["warm"]["share"], 1)
    assert (f"then loads the graphs ({m['background']['compile_s']:.1f} and {a['background']['compile_s']:.1f} s): on a"
            f" machine's first compile the run was never more than"
            f" {max(m['background']['behind_s'], a['background']['behind_s']):.1f} s behind an eager one") in readme
    later = max(m["warm"]["paid_back"], a["warm"]["paid_back"])
    first = [x["paid_back"] for d in (m, a) for k, x in d.items() if k != "warm"]
    assert later <= 50 < min(first)  # 1 % of 5,000 meta-steps
    assert (f"within the first 1 % of a 5,000-step run (by meta-step {later}), and a machine's first does not, whichever"
            f" way it compiles (by meta-step {min(first)} to {max(first)}, {100 * min(first) / 5000:.1f} to"
            f" {100 * max(first) / 5000:.1f} %)") in docs
    waited = sorted(x["behind_s"] for d in (m, a) for k, x in d.items() if k == "cold")
    assert max(m["background"]["behind_s"], a["background"]["behind_s"]) < min(waited)
    assert f"where waiting leaves it {waited[0]:.1f} to {waited[-1]:.1f} s behind" in docs
    assert f"the eager adjoint took {a['cold']['eager_s']:.3f} s a meta-step here" in docs
    assert (f"its eager steps meanwhile took {m['background']['meanwhile_s']:.3f} s against the eager run's"
            f" {m['background']['eager_s']:.3f} for maml, {a['background']['meanwhile_s']:.3f} against"
            f" {a['background']['eager_s']:.3f} for the adjoint") in docs
    assert all(d[k]["meanwhile_s"] is None for d in (m, a) for k in ("cold", "warm"))


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
    for kind, meta, compiles in (("cold", 5000, True), ("cold", 20, False), ("warm", 5000, True)):
        assert all((r["compile_s"] + meta * r["compiled_s"] < meta * r["eager_s"]) == compiles
                   for r in rows if r["compile"] == kind), (kind, meta)
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
    assert set(compile_cost.committed()) == {(m, c) for m in ("maml", "adjoint") for c in ("cold", "warm", "background")}
    monkeypatch.setattr(compile_cost, "COMMITTED", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="source tree"):
        compile_cost.committed()
