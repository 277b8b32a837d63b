"""``amaml-lab run`` and ``compare``: files, resume, the ratings domains and every bad input."""

import csv
import json
import os
import statistics
import subprocess
import sys

import pytest
import torch
from helpers import SMALL_RUN as SMALL
from helpers import run_cli as cli
from helpers import write_ratings

from amaml_lab.bench.compile_cost import step_seconds


def test_run_writes_summary_metrics_eval_and_checkpoint(tmp_path, capsys):
    code, out, err = cli(capsys, "run", "Sinusoid", 5, 5, 3, "cpu", "--meta-steps", 4, "--out", tmp_path, *SMALL)
    assert code == 0, err
    assert "nRMSE" in out and str(tmp_path) in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "done" and summary["meta_steps"] == 4
    assert summary["config"]["method"] == "adjoint" and summary["config"]["inner_steps"] == 3
    final = summary["final"]
    assert final["eval_tasks"] == 3 and final["eval_steps"] == 20 and 0 < final["nrmse"] < 10
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [int(r["meta_step"]) for r in rows] == [1, 2, 3, 4]
    curve = list(csv.DictReader(open(tmp_path / "eval.csv")))
    assert [int(r["iteration"]) for r in curve] == [0, 10, 20]
    assert float(curve[-1]["nrmse_mean"]) == pytest.approx(final["nrmse"], rel=1e-15)
    # each meta-test task's numbers, whose means are the summary's
    tasks = list(csv.DictReader(open(tmp_path / "tasks.csv")))
    assert [int(r["task"]) for r in tasks] == [0, 1, 2]
    for column, key in (
        ("finetuned", "nrmse"),
        ("theta", "nrmse_at_theta"),
        ("inner", "nrmse_inner"),
        ("ft10", "nrmse_ft10"),
    ):
        assert sum(float(r[column]) for r in tasks) / 3 == pytest.approx(final[key], rel=1e-12), column
    assert not list(tmp_path.glob(".tmp-*"))  # atomic writes leave no temporary files


def test_run_flags_reach_the_run(tmp_path, capsys):
    """--protocol, --eval-interval, --deterministic and --normalize-grad from the command line into the run and its
    files."""
    code, out, err = cli(
        capsys,
        "run",
        "CosMixture",
        5,
        5,
        3,
        "cpu",
        "--meta-steps",
        4,
        "--out",
        tmp_path,
        "--protocol",
        "reference",
        "--eval-interval",
        2,
        "--deterministic",
        "--normalize-grad",
        *SMALL,
    )
    assert code == 0, err
    config = json.loads((tmp_path / "summary.json").read_text())["config"]
    assert config["protocol"] == "reference" and config["eval_interval"] == 2 and config["deterministic"] is True
    assert config["normalize_grad"] is True
    rows = list(csv.DictReader(open(tmp_path / "evals.csv")))
    assert [int(r["meta_step"]) for r in rows] == [0, 2, 4]
    torch.use_deterministic_algorithms(False)  # --deterministic set it for this process


def test_compile_reaches_the_run_and_trains_the_same_theta(tmp_path, capsys):
    """--compile-wait: recorded in the run's config, every meta-step compiled, and the same θ as the eager run after
    the same meta-steps (the compiled graphs are the eager arithmetic to rounding); a second such run repeats it
    bit for bit.  The run states what compiling took and from which meta-step it ran compiled."""
    args = ["run", "Sinusoid", 5, 5, 4, "cpu", "--meta-steps", 2, *SMALL]
    code, line, _ = cli(capsys, *args, "--compile-wait", "--out", tmp_path / "compiled")
    assert code == 0 and cli(capsys, *args, "--compile-wait", "--out", tmp_path / "again")[0] == 0
    assert cli(capsys, *args, "--out", tmp_path / "eager")[0] == 0
    summary = json.loads((tmp_path / "compiled" / "summary.json").read_text())
    assert summary["config"]["compile"] is True and summary["config"]["compile_wait"] is True
    a, b, c = (
        torch.load(tmp_path / d / "checkpoint.pt", weights_only=False)["theta"] for d in ("compiled", "eager", "again")
    )
    assert all(torch.allclose(a[k], b[k], rtol=1e-10, atol=1e-13) and torch.equal(a[k], c[k]) for k in a)
    [record] = summary["compiles"]
    assert (record["step"], record["compiled_from"], record["elsewhere_s"]) == (0, 0, None)
    metrics = step_seconds(tmp_path / "compiled")
    assert summary["compile_s"] == record["here_s"] == pytest.approx(max(metrics[0] - metrics[1], 0), abs=2e-6)
    cache = record["cache"]  # what inductor loaded or compiled here: the line says it (nothing where held in memory)
    said = (
        ""
        if not (cache["loaded"] or cache["compiled"])
        else f" (warm: {cache['loaded']} graphs loaded from the cache)"
        if not cache["compiled"]
        else f" ({cache['compiled']} graphs compiled, {cache['loaded']} loaded: `amaml-lab warm` pays this ahead)"
    )
    assert f"(compiling: {record['here_s']:.1f} s here{said}, compiled from meta-step 1)" in line
    assert "compile_s" not in json.loads((tmp_path / "eager" / "summary.json").read_text())


def test_a_background_compile_is_recorded_however_far_it_got(tmp_path, capsys):
    """--compile (in the background) on a 2-step run: the compile is recorded, and the last line says how far it
    got: compiled from some meta-step, done after meta-training, or unfinished (it depends on the machine)."""
    args = ["run", "Sinusoid", 5, 5, 4, "cpu", "--meta-steps", 2, *SMALL]
    code, line, _ = cli(capsys, *args, "--compile", "--out", tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    [record] = summary["compiles"]
    assert code == 0 and record["step"] == 0 and summary["config"]["compile_wait"] is False
    assert (
        "still compiling in another process when meta-training ended" in line
        if record["compiled_from"] is None
        else f"compiled in another process in {record['elsewhere_s']:.1f} s (" in line
    )
    if record["compiled_from"] is not None:  # the compiling process said what it found in inductor's cache
        cache = record["cache"]
        assert cache["loaded"] + cache["compiled"] >= 1
        assert ("(warm: " if cache["compiled"] == 0 else f"({cache['compiled']} graphs compiled") in line


def test_a_resumed_compiled_run_counts_each_process_compile(tmp_path, capsys):
    """A run resumed in a new process compiles again: compile_s adds each process's compile."""
    args = ["run", "Sinusoid", 5, 5, 4, "cpu", "--compile-wait", *SMALL, "--out", tmp_path / "run"]
    assert cli(capsys, *args, "--meta-steps", 2)[0] == 0
    assert cli(capsys, *args, "--meta-steps", 4, "--resume")[0] == 0
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert saved["starts"] == [0, 2] and [(c["step"], c["compiled_from"]) for c in saved["compiles"]] == [
        (0, 0),
        (2, 2),
    ]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    metrics = step_seconds(tmp_path / "run")
    median = statistics.median([metrics[1], metrics[3]])  # the compiled steps after each process's first
    assert [c["here_s"] for c in summary["compiles"]] == pytest.approx(
        [max(metrics[i] - median, 0) for i in (0, 2)], abs=4e-6
    )
    assert summary["compile_s"] == pytest.approx(sum(c["here_s"] for c in summary["compiles"]))


def test_scheme_reaches_the_run_and_its_gradient(tmp_path, capsys):
    """--scheme grid trains with the grid scheme: recorded in the run's options, and a different θ than the
    default continuous scheme after the same meta-steps (the two schemes' gradients differ in their error)."""
    args = ["run", "Sinusoid", 5, 5, 4, "cpu", "--meta-steps", 2, "--checkpoints", 3, *SMALL]
    assert cli(capsys, *args, "--scheme", "grid", "--out", tmp_path / "grid")[0] == 0
    assert cli(capsys, *args, "--out", tmp_path / "continuous")[0] == 0
    config = json.loads((tmp_path / "grid" / "summary.json").read_text())["config"]
    assert config["options"] == {"checkpoints": 3, "scheme": "grid"}
    a, b = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=False)["theta"] for d in ("grid", "continuous"))
    assert any(not torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("method", ["adjoint", "maml"])
def test_resume_equals_uninterrupted_through_the_command_line(tmp_path, capsys, method):
    args = ["run", "Alpine2D", 6, 6, 4, "cpu", "--method", method, "--seed", 3, *SMALL]
    assert cli(capsys, *args, "--meta-steps", 6, "--out", tmp_path / "whole")[0] == 0
    assert cli(capsys, *args, "--meta-steps", 3, "--out", tmp_path / "part")[0] == 0
    assert cli(capsys, *args, "--meta-steps", 6, "--out", tmp_path / "part", "--resume")[0] == 0
    whole, part = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("whole", "part"))
    assert whole["meta_steps"] == part["meta_steps"] == 6
    assert whole["final"] == part["final"]
    a, b = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=False)["theta"] for d in ("whole", "part"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    losses = [[r["query_loss"] for r in csv.DictReader(open(tmp_path / d / "metrics.csv"))] for d in ("whole", "part")]
    assert losses[0] == losses[1]


def test_movielens_run_from_a_data_root(tmp_path, capsys):
    write_ratings(tmp_path / "data" / "ml-100k", "ml100k")
    code, out, err = cli(
        capsys,
        "run",
        "MovieLens100K",
        4,
        6,
        3,
        "cpu",
        "--meta-steps",
        2,
        "--data-root",
        tmp_path / "data",
        "--out",
        tmp_path / "run",
        *SMALL,
    )
    assert code == 0, err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["final"]["eval_tasks"] == 3 and summary["config"]["domain"] == "MovieLens100K"


def test_compare_writes_a_table_and_keeps_finished_runs(tmp_path, capsys):
    args = [
        "compare",
        "Sinusoid",
        5,
        5,
        4,
        "cpu",
        "--meta-steps",
        2,
        "--methods",
        "adjoint,maml,imaml,truncated",
        "--maml-steps",
        2,
        "--truncate",
        1,
        "--out",
        tmp_path,
        *SMALL,
    ]
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    md = (tmp_path / "table.md").read_text()
    for method, steps in (("adjoint", 4), ("maml", 2), ("imaml", 4), ("truncated", 4)):
        assert f"| {method} | {steps} | " in md
        assert json.loads((tmp_path / method / "summary.json").read_text())["status"] == "done"
    rows = list(csv.DictReader(open(tmp_path / "table.csv")))
    assert [r["method"] for r in rows] == ["adjoint", "maml", "imaml", "truncated"]
    assert json.loads((tmp_path / "truncated" / "summary.json").read_text())["config"]["options"] == {"truncate": 1}
    # the paired column: each method's difference to the first on the same tasks, from the runs' tasks.csv
    from amaml_lab.studies.rundir import per_task
    from amaml_lab.studies.stats import paired

    assert "| vs adjoint, paired |" in md and "| (reference) |" in md
    first = per_task(tmp_path / "adjoint")["finetuned"]
    for method in ("maml", "imaml", "truncated"):
        p = paired(first, per_task(tmp_path / method)["finetuned"])
        fmt = ".1e" if abs(p["difference"]) < 1e-4 else ".4f"
        cell = f"{p['difference']:+{fmt}} ± {p['ci95']:{fmt}} (better on {p['better']}/3)"
        assert f"| {method} | " in md and cell in md.split(f"| {method} | ")[1].splitlines()[0]
    code, out, _ = cli(capsys, *args)
    assert code == 0 and out.count("kept the finished run") == 4
    assert (tmp_path / "table.md").read_text() == md
    # runs finished by an older kit, whose summaries lack fields added since, are still kept
    for method in ("adjoint", "maml", "imaml", "truncated"):
        path = tmp_path / method / "summary.json"
        summary = json.loads(path.read_text())
        del summary["config"]["deterministic"], summary["config"]["protocol"]
        path.write_text(json.dumps(summary))
    code, out, _ = cli(capsys, *args)
    assert code == 0 and out.count("kept the finished run") == 4
    # and a finished run with another setting is run again
    code, out, _ = cli(
        capsys, *[a if a != "adjoint,maml,imaml,truncated" else "adjoint,maml" for a in args], "--eval-steps", 10
    )
    assert code == 0 and "kept the finished run" not in out


def test_paired_differences_by_hand():
    from amaml_lab.studies.stats import paired

    base, other = [1.0, 2.0, 3.0, 4.0], [0.9, 2.1, 2.7, 3.8]  # differences -0.1, 0.1, -0.3, -0.2
    p = paired(base, other)
    # mean -0.125; deviations 0.025, 0.225, -0.175, -0.075; sample variance 0.0875 / 3
    assert p["difference"] == pytest.approx(-0.125, rel=1e-12)
    assert p["ci95"] == pytest.approx(1.96 * (0.0875 / 3) ** 0.5 / 2, rel=1e-12)
    assert (p["better"], p["worse"], p["tasks"]) == (3, 1, 4)
    q = paired([0.5, 0.6, 0.7], [0.5, 0.8, 0.9], lower_is_better=False)  # accuracy: higher is better; a tie
    assert (q["better"], q["worse"]) == (2, 0) and q["difference"] == pytest.approx(0.4 / 3, rel=1e-12)
    with pytest.raises(ValueError, match="same tasks"):
        paired([1.0, 2.0], [1.0])
    from amaml_lab.studies.stats import format_paired

    assert format_paired(p) == "-0.1250 ± 0.1674 (better on 3/4)"
    tiny = {"difference": -2e-11, "ci95": 1.4e-11, "better": 60, "tasks": 100}  # not to read as -0.0000
    assert format_paired(tiny, counts="") == "-2.0e-11 ± 1.4e-11 (60/100)"
    assert format_paired(q, 100, 2) == "+13.33 ± 13.07 (better on 2/3)"


def test_per_task_reads_omniglot_episodes_and_is_none_without_files(tmp_path):
    from amaml_lab.studies.rundir import per_task
    from amaml_lab.studies.stats import markdown_table

    assert per_task(tmp_path) is None
    (tmp_path / "eval.csv").write_text("episode,accuracy\n0,0.6\n1,0.8\n2,0.4\n")
    assert per_task(tmp_path) == {"accuracy": [0.6, 0.8, 0.4]}
    (tmp_path / "eval.csv").write_text("iteration,nrmse_mean,nrmse_se\n0,1.0,0.1\n")  # a regression curve
    assert per_task(tmp_path) is None
    summary = {
        "config": {
            "method": "maml",
            "inner_steps": 10,
            "ways": 5,
            "shots": 1,
            "query": 15,
            "seed": 0,
            "domain": "Omniglot",
        },
        "final": {"accuracy": 0.6, "accuracy_ci95": 0.1, "eval_tasks": 3},
        "meta_steps": 5,
        "seconds_per_meta_step": 0.1,
    }
    other = {**summary, "config": {**summary["config"], "method": "adjoint"}}
    md = markdown_table([summary, other], [{"accuracy": [0.6, 0.8, 0.4]}, {"accuracy": [0.8, 0.8, 0.6]}])
    assert "| adjoint | 10 | 60.00 ± 10.00 | 0.100 | +13.33 ± 13.07 (better on 2/3) |" in md
    assert "paired" not in markdown_table([summary, other], [{"accuracy": [0.6]}, None])
    assert "paired" not in markdown_table([summary, other], [{"accuracy": [0.6]}, {"accuracy": [0.8]}])  # 1 task
    assert "paired" not in markdown_table([summary, other], [{"accuracy": [0.6, 0.7]}, {"accuracy": [0.8]}])
    assert "paired" not in markdown_table([summary], [{"accuracy": [0.6, 0.7]}])


@pytest.mark.parametrize(
    "args,pattern",
    [
        (["run", "Ackley", 5, 5, 3, "cpu"], "argument DOMAIN: invalid choice: 'Ackley' (choose from 'Alpine2D'"),
        (
            ["run", "Sinusoid", 5, 5, 3, "cpu", "--method", "sgd"],
            "argument --method: invalid choice: 'sgd' (choose from 'maml'",
        ),
        (["run", "Sinusoid", 0, 5, 3, "cpu"], "argument SHOTS: must be an integer >= 1; got '0'"),
        (["run", "Sinusoid", 5, -2, 3, "cpu"], "argument QUERY: must be an integer >= 1; got '-2'"),
        (["run", "Sinusoid", 5, 5, 0, "cpu"], "argument INNER_STEPS: must be an integer >= 1; got '0'"),
        (["run", "Sinusoid", 5, 5, "ten", "cpu"], "argument INNER_STEPS: must be an integer >= 1; got 'ten'"),
        (["run", "Sinusoid", 5, 5, 3, "cpu", "--meta-steps", 0], "argument --meta-steps: must be an integer >= 1"),
        (["run", "Sinusoid", 5, 5, 3, "tpu"], "device='tpu' is not known; allowed values: cpu, cuda, cuda:N"),
        (["run", "Sinusoid", 5, 5, 3, "cpu", "--lam", 2], "option lam=2.0 is not known to method='adjoint'"),
        (["run", "Sinusoid", 5, 5, 3, "cpu", "--scheme", "exact"], "argument --scheme: invalid choice: 'exact'"),
        (
            ["run", "Sinusoid", 5, 5, 3, "cpu", "--method", "maml", "--scheme", "grid"],
            "option scheme='grid' is not known to method='maml'",
        ),
        (["compare", "Sinusoid", 5, 5, 3, "cpu", "--methods", "adjoint,sgd"], "unknown method 'sgd'; allowed: maml"),
        (["compare", "Sinusoid", 5, 5, 3, "cpu", "--eval-steps", -1], "argument --eval-steps: must be an integer >= 0"),
        (["run", "Sinusoid", 5, 5, 3], "the following arguments are required: DEVICE"),
        (
            ["run", "MovieLens1M", 5, 5, 3, "cpu"],
            "MovieLens1M needs --data-root: a folder holding ml-1m/ratings.dat from"
            " https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        ),
        (
            ["run", "MovieLens100K", 5, 5, 3, "cpu", "--data-root", "/nowhere"],
            "no u.data, ml-100k/u.data or ml-100k.zip under --data-root /nowhere; download"
            " https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        ),
        (
            ["run", "Jester", 5, 5, 3, "cpu", "--data-root", "/nowhere"],
            "no jester_ratings.dat under --data-root /nowhere",
        ),
        (
            ["run", "MovieLens100K", 5, 5, 3, "cpu", "--protocol", "reference"],
            "protocol='reference' reproduces the reference code's synthetic data",
        ),
        (["run", "Sinusoid", 5, 5, 3, "cpu", "--protocol", "paper"], "argument --protocol: invalid choice: 'paper'"),
        (["run", "Sinusoid", 5, 5, 3, "cuda:7"], "device='cuda:7' but this"),
        (["run", "Sinusoid", 5, 5, 3, "mps"], "device='mps'"),
        (
            ["run", "Sinusoid", 5, 5, 3, "cpu", "--eval-interval", -5],
            "argument --eval-interval: must be an integer >= 0",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, args, pattern):
    code, out, err = cli(capsys, *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert pattern in lines[0]


def test_rerun_without_resume_is_refused(tmp_path, capsys):
    args = ["run", "Sinusoid", 5, 5, 2, "cpu", "--meta-steps", 2, "--out", tmp_path, *SMALL]
    assert cli(capsys, *args)[0] == 0
    code, _, err = cli(capsys, *args)
    assert code == 2 and "already holds a run" in err and "--resume" in err


@pytest.mark.integration  # starts other processes
def test_divergence_is_one_line_without_traceback_and_keeps_the_checkpoint(tmp_path):
    env = dict(os.environ, AMAML_LAB_QUIET="1")
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "amaml_lab",
            "run",
            "Sinusoid",
            "5",
            "5",
            "2",
            "cpu",
            "--step-size",
            "60",
            "--meta-lr",
            "50",
            "--meta-steps",
            "40",
            "--checkpoint-every",
            "1",
            "--hidden",
            "4",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert "diverged" in lines[0] and "smaller --step-size" in lines[0] and "checkpoint" in lines[0]
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert state["meta_steps"] >= 1 and all(torch.isfinite(v).all() for v in state["theta"].values())
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "diverged"


def test_paired_runs_refuses_whenever_either_side_lacks_the_others_task_ids():
    """An old run without task ids is never paired by count with a newer one, whichever side it is on."""
    from amaml_lab.studies.stats import paired_runs

    new = {"inner": [0.5, 0.4, 0.3], "task_id": ["a", "b", "c"]}
    old = {"inner": [0.6, 0.5, 0.2]}
    for base, other in ((new, old), (old, new)):
        with pytest.raises(ValueError, match="task ids or neither"):
            paired_runs(base, other, "inner")
    assert paired_runs(old, dict(old), "inner")["difference"] == 0.0  # neither: counts only
    with pytest.raises(ValueError, match="differ on 1 of 3"):
        paired_runs(new, {**new, "task_id": ["a", "x", "c"]}, "inner")
    assert paired_runs(new, {**new, "inner": [0.4, 0.3, 0.2]}, "inner")["difference"] == pytest.approx(-0.1)


LOCK_RUN = [
    "run",
    "Sinusoid",
    "5",
    "5",
    "3",
    "cpu",
    "--meta-steps",
    "4000",
    "--method",
    "maml",
    "--solver",
    "euler",
    "--step-size",
    "0.05",
    "--meta-batch",
    "2",
    "--hidden",
    "4",
    "--eval-tasks",
    "3",
    "--eval-steps",
    "5",
    "--checkpoint-every",
    "20",
    "--quiet",
]


def _wait_for(predicate, what: str, seconds: float = 120.0):
    import time

    deadline = time.time() + seconds
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _holder(folder) -> int | None:
    from amaml_lab.io import LOCK_NAME

    try:
        text = (folder / LOCK_NAME).read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text else None


def _lock_is_free(folder) -> bool:
    import fcntl

    with open(folder / ".writer.lock") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(fh, fcntl.LOCK_UN)
        return True


def _steps_done(folder) -> int:
    path = folder / "checkpoint.pt"
    return torch.load(path, weights_only=False)["meta_steps"] if path.exists() else 0


@pytest.mark.integration  # starts other processes
def test_a_second_writer_to_a_run_folder_exits_2_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "amaml_lab", *LOCK_RUN, "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(lambda: _holder(out) == first.pid, "the first run's lock")
        for again in ([*LOCK_RUN, "--out", out, "--resume"], [*LOCK_RUN, "--out", out]):
            code, _, err = cli(capsys, *again)
            assert code == 2 and len(err.strip().splitlines()) == 1
            assert str(out) in err and f"process {first.pid}" in err
        code, _, err = cli(capsys, "reevaluate", out)  # not finished, but refused for its writer first
        assert code == 2 and f"process {first.pid}" in err
        assert first.poll() is None  # the first writer goes on, undisturbed
    finally:
        first.kill()
        first.wait()


@pytest.mark.integration  # starts other processes
def test_an_orphaned_writer_keeps_its_lock_and_a_dead_ones_lock_is_taken(tmp_path, capsys):
    """A parent killed by SIGKILL leaves its run going (an orphan): a second writer is refused with the orphan's
    pid.  Once the orphan is dead too, its lock file still names it, and --resume takes the folder and ends where
    an uninterrupted run ends."""
    import os
    import signal

    out, whole = tmp_path / "run", tmp_path / "whole"
    short = [a if a != "4000" else "60" for a in LOCK_RUN]
    parent = subprocess.Popen(
        ["bash", "-c", f'"{sys.executable}" -m amaml_lab "$@" --out "{out}" & echo $!; wait', "_", *LOCK_RUN],
        stdout=subprocess.PIPE,
        text=True,
    )
    child = int(parent.stdout.readline())
    try:
        _wait_for(lambda: _holder(out) == child, "the child's lock")
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        os.kill(child, 0)  # the orphan is alive
        code, _, err = cli(capsys, *LOCK_RUN, "--out", out, "--resume")
        assert code == 2 and f"process {child}" in err
        _wait_for(lambda: _steps_done(out) >= 20, "a checkpoint")
    finally:
        os.kill(child, signal.SIGKILL)
    _wait_for(
        lambda: not os.path.exists(f"/proc/{child}") or open(f"/proc/{child}/stat").read().split()[2] == "Z",
        "the orphan's end",
    )
    # SIGKILL ends the whole thread group, but the leader shows as a zombie while its other threads are still
    # closing the files they share: the lock is free only once the last one has gone
    _wait_for(lambda: _lock_is_free(out), "the dead writer's lock released")
    assert _holder(out) == child  # the dead writer's pid is still written there
    code, _, err = cli(capsys, *short, "--out", out, "--resume")
    assert code == 0, err
    assert _holder(out) is None or _holder(out) != child
    assert cli(capsys, *short, "--out", whole)[0] == 0
    a, b = (torch.load(d / "checkpoint.pt", weights_only=False)["theta"] for d in (out, whole))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.integration  # starts other processes
def test_resume_after_the_whole_process_group_is_killed_equals_the_uninterrupted_run(tmp_path, capsys):
    import os
    import signal

    out, whole = tmp_path / "run", tmp_path / "whole"
    short = [a if a != "4000" else "100" for a in LOCK_RUN]
    first = subprocess.Popen(
        [sys.executable, "-m", "amaml_lab", *LOCK_RUN, "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for(lambda: _steps_done(out) >= 40, "two checkpoints")
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert 40 <= _steps_done(out) < 4000
    code, _, err = cli(capsys, *short, "--out", out, "--resume")
    assert code == 0, err
    assert cli(capsys, *short, "--out", whole)[0] == 0
    a, b = (torch.load(d / "checkpoint.pt", weights_only=False)["theta"] for d in (out, whole))
    assert all(torch.equal(a[k], b[k]) for k in a)
    losses = [[r["query_loss"] for r in csv.DictReader(open(d / "metrics.csv"))] for d in (out, whole)]
    assert losses[0] == losses[1]
