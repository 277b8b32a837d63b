"""The command line: the demo and the benchmark run; bad input exits 2 with one line."""

import json
import subprocess
import sys

import pytest

from amaml_lab.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "amaml_lab", *args], capture_output=True, text=True)


def test_demo_prints_every_method(capsys):
    assert main(["demo", "--steps", "20", "--shots", "10"]) == 0
    out = capsys.readouterr().out
    for name in ("maml", "adjoint", "backsolve", "fomaml", "reptile", "imaml", "truncated"):
        assert f"| {name}" in out
    rows = [line for line in out.splitlines() if line.startswith("| adjoint (discrete) |")]
    err = float(rows[0].split("|")[3])
    assert err < 1e-10  # the discrete adjoint is maml's gradient to rounding


@pytest.mark.integration  # starts other processes
def test_bench_runs_and_writes_rows(tmp_path):
    out = tmp_path / "rows.json"
    p = run(
        "bench", "--steps", "2,4", "--methods", "maml,adjoint-sqrt", "--shots", "5", "--hidden", "4", "--out", str(out)
    )
    assert p.returncode == 0, p.stderr
    lines = [line for line in p.stdout.splitlines() if line.startswith("| ")]
    assert len(lines) == 1 + 4  # header and one row a (method, steps)
    rows = json.loads(out.read_text())
    assert {(r["name"], r["steps"]) for r in rows} == {(m, s) for m in ("maml", "adjoint-sqrt") for s in (2, 4)}
    assert all(r["time_s"] > 0 and r["peak_mb"] >= 0 for r in rows)


@pytest.mark.parametrize(
    "args,pattern",
    [
        (["bench", "--methods", "sgd"], "unknown method 'sgd'; allowed: maml, adjoint"),
        (["bench", "--steps", "0,10"], "steps must be integers >= 1"),
        (["demo", "--solver", "rk45"], "invalid choice: 'rk45'"),
        (["demo", "--steps", "0"], "steps must be >= 1"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["warm", "Sinusoid 10 10 maml"], "setting 'Sinusoid 10 10 maml' is not known; allowed values: CosMixture"),
    ],
)
@pytest.mark.integration  # starts other processes
def test_bad_input_exits_2_with_one_line(args, pattern):
    p = run(*args)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert pattern in lines[0]
    assert "Traceback" not in p.stderr


def test_progress_in_a_notebook_is_one_text_line_per_run(monkeypatch):
    """In a Jupyter kernel a run's bar is text that stays; the bars of its parts are off (no widgets)."""
    import sys
    import types

    from tqdm import tqdm as text_bar

    from amaml_lab.progress import progress

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("AMAML_LAB_QUIET", raising=False)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)  # another test's kernel client may have loaded it
    outside = progress(5, "run")
    assert type(outside) is text_bar and not outside.disable and not outside.leave
    outside.close()
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    run_bar, part_bar = progress(5, "run"), progress(5, "fine-tuning", part=True)
    assert type(run_bar) is text_bar and run_bar.leave and not run_bar.disable and run_bar.fp is not None
    assert part_bar.disable
    run_bar.close(), part_bar.close()
    monkeypatch.setenv("CI", "true")
    assert progress(5, "run").disable
