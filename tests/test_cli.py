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


def test_bench_runs_and_writes_rows(tmp_path):
    out = tmp_path / "rows.json"
    p = run("bench", "--steps", "2,4", "--methods", "maml,adjoint-sqrt", "--shots", "5", "--hidden", "4",
            "--out", str(out))
    assert p.returncode == 0, p.stderr
    lines = [line for line in p.stdout.splitlines() if line.startswith("| ")]
    assert len(lines) == 1 + 4  # header and one row a (method, steps)
    rows = json.loads(out.read_text())
    assert {(r["name"], r["steps"]) for r in rows} == {(m, s) for m in ("maml", "adjoint-sqrt") for s in (2, 4)}
    assert all(r["time_s"] > 0 and r["peak_mb"] >= 0 for r in rows)


@pytest.mark.parametrize("args,pattern", [
    (["bench", "--methods", "sgd"], "unknown method 'sgd'; allowed: maml, adjoint"),
    (["bench", "--steps", "0,10"], "steps must be integers >= 1"),
    (["demo", "--solver", "rk45"], "invalid choice: 'rk45'"),
    (["demo", "--steps", "0"], "steps must be >= 1"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_input_exits_2_with_one_line(args, pattern):
    p = run(*args)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert pattern in lines[0]
    assert "Traceback" not in p.stderr
