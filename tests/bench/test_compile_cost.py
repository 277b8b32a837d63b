"""What --compile costs a run (amaml_lab.bench.compile_cost): the arithmetic on planted run folders, and the
committed runs of benchmarks/compile_runs.sh behind the numbers the README and docs/performance.md quote."""

import json
from pathlib import Path

import pytest

from amaml_lab.bench import compile_cost

ROOT = Path(__file__).resolve().parents[2]


def _plant(
    folder: Path, name: str, seconds: list[float], compiled_from: int | None = 0, compile_s: float = 1.0
) -> None:
    run = folder / name
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text(
        "meta_step,query_loss,seconds\n" + "".join(f"{i + 1},0.5,{s:.6f}\n" for i, s in enumerate(seconds))
    )
    elsewhere = None if compiled_from == 0 else 20.0
    compiled = {
        "compile_s": compile_s,
        "compiled_elsewhere_s": elsewhere,
        "compiles": [{"step": 0, "elsewhere_s": elsewhere, "compiled_from": compiled_from}],
    }
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
    and the docs' claims are its numbers: a later run pays back within the first 1 % of a 5,000-step run, a
    setting's first compile does not (on a machine whose inductor is set up, nor on a new one), and --compile keeps
    the run close to the eager pace where waiting does not."""
    folder = ROOT / "benchmarks" / "cpu-compile-runs"
    rows = compile_cost.rows(folder)
    assert json.loads(folder.with_suffix(".json").read_text()) == rows
    r = {(row["method"], row["compile"]): row for row in rows}
    readme = " ".join((ROOT / "README.md").read_text().split())
    docs = " ".join((ROOT / "docs" / "performance.md").read_text().split())
    label = {
        "cold": "machine's first, waited",
        "background": "machine's first, `--compile`",
        "new": "setting's first, waited",
        "new_background": "setting's first, `--compile`",
        "warm": "later, waited",
    }
    for (method, kind), x in r.items():
        elsewhere = "" if x["elsewhere_s"] is None else f"{x['elsewhere_s']:.1f}"
        line = (
            f"| {method} | {label[kind]} | {elsewhere} | {x['compile_s']:.1f} | {x['behind_s']:.1f} |"
            f" {x['cost_s']:.1f} s ({100 * x['share']:.1f} %) | {x['paid_back']} |"
        )
        assert " ".join(line.split()) in docs, (method, kind)
    m, a = ({k: r[name, k] for k in label} for name in ("maml", "adjoint"))
    pct = lambda x: f"{100 * x['share']:.1f}"  # noqa: E731
    loads = sorted(d[k]["compile_s"] for d in (m, a) for k in ("background", "new_background"))
    ahead = max(d[k]["behind_s"] for d in (m, a) for k in ("background", "new_background"))
    assert (
        f"a setting's first compile {m['new']['compile_s']:.1f} s (maml) and {a['new']['compile_s']:.1f} s (the"
        f" adjoint), {pct(m['new'])} and {pct(a['new'])} % of a 5,000-step run, and {m['cold']['compile_s']:.1f}"
        f" and {a['cold']['compile_s']:.1f} s on a machine's first (what inductor builds once a machine); every"
        f" later run of a setting, once inductor's cache holds its graphs, {m['warm']['compile_s']:.1f} and"
        f" {a['warm']['compile_s']:.1f} s ({pct(m['warm'])} %)"
    ) in readme
    assert pct(a["warm"]) == pct(m["warm"])
    assert (
        f"then loads the graphs ({loads[0]:.1f} to {loads[-1]:.1f} s): a run compiling so was never more than"
        f" {ahead:.1f} s behind an eager one"
    ) in readme
    later = max(m["warm"]["paid_back"], a["warm"]["paid_back"])
    setting = sorted(d[k]["paid_back"] for d in (m, a) for k in ("new", "new_background"))
    machine = sorted(d[k]["paid_back"] for d in (m, a) for k in ("cold", "background"))
    assert later <= 50 < setting[0] and setting[-1] < machine[0]  # 1 % of 5,000 meta-steps
    span = lambda v: f"{v[0]} to {v[-1]} ({100 * v[0] / 5000:.1f} to {100 * v[-1] / 5000:.1f} %)"  # noqa: E731
    assert (
        f"within the first 1 % of a 5,000-step run (by meta-step {later}), and a setting's first compile does"
        f" not, whichever way it compiles: by meta-step {span(setting)} where inductor has compiled on the"
        f" machine before, {span(machine)} where it has not"
    ) in docs
    once = [d["cold"]["compile_s"] - d["new"]["compile_s"] for d in (m, a)]
    assert f"The difference between the two, {once[0]:.1f} s (maml) and {once[1]:.1f} s (the adjoint) waited" in docs
    saved = [50 * (d["new"]["eager_s"] - d["new"]["compiled_s"]) for d in (m, a)]
    assert all(0.4 < s / d["new"]["cost_s"] < 0.6 for s, d in zip(saved, (m, a)))  # "half of what ... takes"
    assert (
        f"about {saved[0]:.0f} s for maml (50 compiled meta-steps save 50 x"
        f" {m['new']['eager_s'] - m['new']['compiled_s']:.2f} s) and {saved[1]:.0f} s for the adjoint (50 x"
        f" {a['new']['eager_s'] - a['new']['compiled_s']:.2f} s)"
    ) in docs
    cheaper = sorted(
        d[w]["cost_s"] - d[b]["cost_s"] for d in (m, a) for w, b in (("cold", "background"), ("new", "new_background"))
    )
    assert cheaper[0] > 0 and f"saves {cheaper[0]:.1f} to {cheaper[-1]:.1f} s of a first compile's cost" in docs
    waited = sorted(d[k]["behind_s"] for d in (m, a) for k in ("cold", "new"))
    assert ahead < waited[0] and f"where waiting leaves it {waited[0]:.1f} to {waited[-1]:.1f} s behind" in docs
    assert f"the eager adjoint took {a['cold']['eager_s']:.3f} s a meta-step here" in docs
    assert (
        f"its eager steps meanwhile took {m['background']['meanwhile_s']:.3f} s against the eager run's"
        f" {m['background']['eager_s']:.3f} for maml, {a['background']['meanwhile_s']:.3f} against"
        f" {a['background']['eager_s']:.3f} for the adjoint"
    ) in docs
    assert all(d[k]["meanwhile_s"] is None for d in (m, a) for k in ("cold", "new", "warm"))


@pytest.mark.parametrize("argv", [[], ["out", "two"], ["out", "1"], ["a", "40", "c"]])
def test_the_script_refuses_bad_arguments_in_one_line(argv, tmp_path):
    import subprocess

    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "compile_runs.sh"), *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "usage:" in done.stderr, done.stderr
    assert not list(tmp_path.iterdir())  # nothing ran


def test_the_committed_runs_decide_run_gpu_shs_choice_as_the_docs_say():
    """docs/performance.md: with these runs' numbers, run_gpu.sh's rule (compile + N compiled steps against N eager
    steps) compiles the full protocol's 5,000 meta-steps and, after a machine's first compile, not --small's 20."""
    rows = compile_cost.rows(ROOT / "benchmarks" / "cpu-compile-runs")
    for kind, meta, compiles in (("cold", 5000, True), ("cold", 20, False), ("warm", 5000, True)):
        assert all(
            (r["compile_s"] + meta * r["compiled_s"] < meta * r["eager_s"]) == compiles
            for r in rows
            if r["compile"] == kind
        ), (kind, meta)
    docs = " ".join((ROOT / "docs" / "performance.md").read_text().split())
    assert (
        "with the first-run numbers above the full protocol's 5,000 meta-steps compile and `--small`'s 20 do not."
        in docs
    )


def test_the_docs_jax_first_calls_are_the_side_by_sides():
    runs = [
        {r["name"]: r for r in json.loads((ROOT / "benchmarks" / f"{name}.json").read_text())}
        for name in ("cpu-jax-cold", "cpu-jax")
    ]
    jit, diffrax = ([round(run[n]["first_s"], 1) for run in runs] for n in ("jax-jit", "diffrax"))
    docs = " ".join((ROOT / "docs" / "performance.md").read_text().split())
    assert f"took {jit[0]} and {jit[1]} s for jax-jit, {diffrax[0]} and {diffrax[1]} s for diffrax" in docs


def test_committed_rows_say_where_they_live(monkeypatch, tmp_path):
    assert set(compile_cost.committed()) == {(m, c) for m in ("maml", "adjoint") for c in compile_cost.KINDS[1:]}
    monkeypatch.setattr(compile_cost, "COMMITTED", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="source tree"):
        compile_cost.committed()


def _floor():
    import importlib.util

    spec = importlib.util.spec_from_file_location("compile_floor", ROOT / "benchmarks" / "compile_floor.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_compile_floor_is_what_the_docs_say():
    """benchmarks/cpu-compile-floor.md is its json's table; the docs' sentence is its numbers and the compile runs':
    the smallest graph pair's setting's-first compile, what whole rk4 steps add, and that it nearly fills maml's
    budget for paying back by meta-step 50."""
    floor = _floor()
    rows = json.loads((ROOT / "benchmarks" / "cpu-compile-floor.json").read_text())
    assert (ROOT / "benchmarks" / "cpu-compile-floor.md").read_text() == floor.table(rows)
    both = {r["compile"]: r["forward_s"] + r["backward_s"] for r in rows}
    assert both["later"] < both["setting's first"] < both["machine's first"]
    runs = compile_cost.committed()
    add = [runs[m, "new"]["compile_s"] - both["setting's first"] for m in ("maml", "adjoint")]
    budget = 50 * (runs["maml", "new"]["eager_s"] - runs["maml", "new"]["compiled_s"])
    assert 0.5 * budget < both["setting's first"] < budget < runs["maml", "new"]["compile_s"]
    docs = " ".join((ROOT / "docs" / "performance.md").read_text().split())
    setting, machine = both["setting's first"], both["machine's first"]
    assert (
        f"took {setting:.1f} s on a setting's first compile, {machine:.1f} s on a machine's first and"
        f" {both['later']:.1f} s later; whole rk4 steps add {add[0]:.1f} s (maml) and {add[1]:.1f} s (the"
        f" adjoint, more graphs)"
    ) in docs
    assert f"That price alone is {setting:.1f} of the {budget:.0f} s maml's compile could take" in docs


@pytest.mark.parametrize("argv", [[], ["out.txt"], ["a.md", "b.md"]])
def test_the_floor_script_refuses_bad_arguments_in_one_line(argv, tmp_path, capsys):
    assert _floor().main(argv) == 2
    assert capsys.readouterr().err.count("\n") == 1
