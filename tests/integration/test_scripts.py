"""The protocol scripts under results/: every command they would run is one the command line accepts, with a valid
configuration (so a change of the CLI cannot leave a GPU session's script broken), and bad arguments get one line."""

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from amaml_lab import cli
from amaml_lab import commands as experiments

ROOT = Path(__file__).resolve().parents[2]


def commands(tmp_path, *flags, **env):
    out = tmp_path / "out"
    done = subprocess.run(
        ["bash", str(ROOT / "results" / "run_gpu.sh"), *flags, "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, OUT=str(out), AMAML_LAB="amaml-lab", **env),
    )
    assert done.returncode == 0, done.stderr
    return [shlex.split(line) for line in (out / "commands.txt").read_text().splitlines()]


@pytest.mark.parametrize("flags", [["--small"], []], ids=["small", "full"])
def test_every_run_gpu_command_parses_to_a_valid_configuration(tmp_path, flags):
    runs = commands(tmp_path, *flags, DEVICE="cpu", MLP_DEVICE="cpu", DATA_ROOT=str(tmp_path / "data"), ESTIMATE="0")
    assert len(runs) == 5 * 6 + 2 * 5 + 2 * 6  # synthetic, MovieLens, Omniglot: every setting and method
    outs = set()
    for argv in runs:
        assert argv[0] == "amaml-lab" and argv[1] == "run"
        args = cli.build_parser().parse_args(argv[1:])
        cfg = experiments.config(args, args.method, args.inner_steps)
        assert cfg.device == "cpu" and args.resume and args.checkpoint_every == 50
        outs.add(args.out)
    assert len(outs) == len(runs)  # no two runs share a folder


@pytest.mark.parametrize("flags", [["--horizon", "--small"], ["--horizon"]], ids=["small", "full"])
def test_every_horizon_arm_command_parses_to_a_valid_configuration(tmp_path, flags):
    """--horizon: the five synthetic settings x 3 seeds x N = 10 ... 10,000 and Omniglot's three horizons; exact
    meta-gradients throughout (maml, or the discrete adjoint, which equals it, past maml's memory), reg 0, Euler."""
    runs = commands(tmp_path, *flags, DEVICE="cpu", MLP_DEVICE="cpu", DATA_ROOT=str(tmp_path / "data"), ESTIMATE="0")
    assert len(runs) == 5 * 3 * 4 + 3
    outs = set()
    for argv in runs:
        args = cli.build_parser().parse_args(argv[1:])
        cfg = experiments.config(args, args.method, args.inner_steps)
        assert cfg.reg == 0 and cfg.solver == "euler" and args.resume
        assert cfg.method == "maml" or cfg.options == {"scheme": "discrete", "checkpoints": "sqrt"}
        if cfg.domain != "Omniglot":
            assert cfg.step_size == 0.01 and cfg.optimizer == "adam" and cfg.meta_batch == 5
            assert cfg.inner_steps in cfg.test_horizons or "--small" in flags
        else:
            assert cfg.meta_batch == (2 if "--small" in flags else 32) and cfg.step_size == 0.1
        assert f"/maml-{cfg.inner_steps}/seed{cfg.seed}" in args.out  # the layout horizon_study reads
        outs.add(args.out)
    assert len(outs) == len(runs)


@pytest.mark.parametrize(
    "compiled_s,spent,flags,choice,expected",
    [
        (0.1, 30.0, [], "auto", True),  # 5,000 meta-steps: 530 s compiled against 1,000 s eager
        (0.1, 30.0, ["--small"], "auto", False),  # 20 meta-steps: 32 s against 4 s, the compile not paid back
        (0.3, 1.0, [], "auto", False),
        (0.3, 1.0, [], "1", True),
        (0.1, 1.0, [], "0", False),
    ],
)
def test_the_mlp_runs_take_the_compiled_path_where_the_estimate_measured_a_run_faster(
    tmp_path, compiled_s, spent, flags, choice, expected
):
    """The estimate's meta-steps (eager 0.2 s; compiled 0.1 or 0.3 s after a compile) choose --compile for the MLP
    runs (synthetic, MovieLens), never for Omniglot's Conv-4, where a run of the script's length is faster with it,
    its compile counted; MLP_COMPILE=1/0 overrides; the estimate line says which and why."""
    import json

    out = tmp_path / "out"
    out.mkdir()
    rows = [
        {
            "name": n,
            "losses": "stacked",
            "compile": c,
            "time_s": compiled_s if c else 0.2,
            **({"compile_s": spent + i} if c else {}),
        }
        for i, n in enumerate(("adjoint-100", "maml-10"))
        for c in (False, True)
    ]
    (out / "meta-step.json").write_text(json.dumps(rows))
    done = subprocess.run(
        ["bash", str(ROOT / "results" / "run_gpu.sh"), *flags, "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, OUT=str(out), AMAML_LAB="amaml-lab", DEVICE="cpu", ESTIMATE="0", MLP_COMPILE=choice),
    )
    assert done.returncode == 0, done.stderr
    meta, mean_spent = (20 if flags else 5000), spent + 0.5  # the compiles' mean
    assert (
        f"The MLP runs: {'compiled' if expected else 'eager'} (compiled {compiled_s:.3f} s a meta-step after"
        f" {mean_spent:.1f} s compiling, eager 0.200 s: a run of {meta} meta-steps"
        f" {mean_spent + meta * compiled_s:.0f} s against {meta * 0.2:.0f} s; MLP_COMPILE={choice})"
    ) in done.stdout
    assert f"about {compiled_s if expected else 0.2:.3f} s per meta-step" in done.stdout
    for argv in (shlex.split(line) for line in (out / "commands.txt").read_text().splitlines()):
        args = cli.build_parser().parse_args(argv[1:])
        assert args.compile == (expected and argv[2] != "Omniglot"), argv
        assert experiments.config(args, args.method, args.inner_steps).compile == args.compile


def test_a_bad_mlp_compile_gets_one_line(tmp_path):
    done = subprocess.run(
        ["bash", str(ROOT / "results" / "run_gpu.sh"), "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, OUT=str(tmp_path / "out"), DEVICE="cpu", ESTIMATE="0", MLP_COMPILE="yes"),
    )
    assert done.returncode != 0 and "MLP_COMPILE must be auto, 0 or 1; got 'yes'" in done.stderr


def test_mlp_device_moves_the_mlp_settings_only(tmp_path):
    runs = commands(tmp_path, "--small", DEVICE="cuda:1", MLP_DEVICE="cpu", ESTIMATE="0")
    devices = {argv[2]: set() for argv in runs}
    for argv in runs:
        devices[argv[2]].add(argv[argv.index("run") + 5])  # DOMAIN SHOTS QUERY STEPS DEVICE
    assert devices["Omniglot"] == {"cuda:1"}
    assert all(devices[d] == {"cpu"} for d in devices if d != "Omniglot")


def test_the_directions_script_lists_the_rate_selection_then_the_long_runs(tmp_path):
    """results/run_directions.sh list, on an empty ROOT: the 18 selection runs (3 methods x the 3 rates of the
    grid x 2 settings, seed 0; 1e-3 is the committed run, validated), the headline pair's 12 runs with the remedy's
    first seed after the pair's first, the remedy's other 2 seeds, then the other 24 runs to 5,000 meta-steps."""
    import os
    import sys

    env = dict(os.environ, ROOT=str(tmp_path), PYTHON=sys.executable)
    done = subprocess.run(
        ["bash", str(ROOT / "results" / "run_directions.sh"), "list"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and len(lines) == 18 + 36 + 3, done.stderr
    assert lines[:3] == ["CosMixture 50 50 maml 1e-3 0", "CosMixture 50 50 maml 3e-3 0", "CosMixture 50 50 maml 1e-2 0"]
    assert lines[18] == "long_one CosMixture 50 50 maml 1000 0" and lines[-1] == "long_one Sinusoid 10 10 maml 10 2"
    remedy = [f"remedy_one CosMixture 50 50 {seed}" for seed in range(3)]
    assert lines[22] == remedy[0] and lines[31:33] == remedy[1:]  # its first seed right after the pair's first
    pair = [line.split() for line in lines[18:22] + lines[23:31]]  # the headline pair, every seed, before the rest
    assert {tuple(words[4:6]) for words in pair} == {("maml", "1000"), ("reptile", "1000")}
    assert [words[-1] for words in pair] == ["0"] * 4 + ["1"] * 4 + ["2"] * 4 and len(set(lines[18:])) == 39


def _script_lines(script: str, arg: str) -> list[str]:
    import os
    import sys

    env = dict(os.environ, PYTHON=sys.executable)
    done = subprocess.run(
        ["bash", str(ROOT / "results" / script), arg], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_the_paper_length_plan_extends_the_committed_runs():
    """results/run_paper_length.sh plan: the headline pair in the five settings, seed by seed (30 runs), then the
    other four methods with seed 0 (20); each starts from the committed run it extends: CosMixture 50/50's seed 0
    is done (5,000), its seeds 1 and 2 and Alpine2D 50/50's seed 0 go on from 1,000, the other three settings start
    at 0."""
    lines = [line.split() for line in _script_lines("run_paper_length.sh", "plan")]
    assert len(lines) == 50 and [w[3:6] for w in lines[:2]] == [["adjoint", "100", "0"], ["maml", "10", "0"]]
    starts = {" ".join(w[:6]): int(w[6]) for w in lines}
    assert starts["CosMixture 50 50 adjoint 100 0"] == starts["CosMixture 50 50 maml 10 0"] == 5000
    for seed in ("1", "2"):
        assert starts[f"CosMixture 50 50 adjoint 100 {seed}"] == starts[f"CosMixture 50 50 maml 10 {seed}"] == 1000
    assert starts["Alpine2D 50 50 adjoint 100 0"] == starts["Alpine2D 50 50 maml 10 0"] == 1000
    assert starts["Alpine2D 50 50 adjoint 100 1"] == starts["CosMixture2D 100 100 maml 10 0"] == 0
    assert {w[3] for w in lines[30:]} == {"maml", "fomaml", "reptile", "imaml"}
    # the other methods' seed 0 on CosMixture and Alpine2D 50/50 (results/cpu-long, first-order runs named without
    # their -100): maml-100 on CosMixture at 5,000, the rest at 1,000
    assert starts["CosMixture 50 50 maml 100 0"] == 5000 and starts["Alpine2D 50 50 fomaml 100 0"] == 1000
    assert sum(v > 0 for v in starts.values()) == 16
    for w in lines:  # a committed run it extends is there
        if int(w[6]) == 1000 and w[0] == "CosMixture" and w[5] != "0":
            assert (
                ROOT
                / "results"
                / "cpu-long"
                / "CosMixture-50-50-seeds"
                / f"{w[3]}-{w[4]}"
                / f"seed{w[5]}"
                / "checkpoint.pt"
            ).exists()


def test_the_omniglot_runs_and_the_queue():
    """results/run_omniglot_long.sh list: maml-10 and the continuous adjoint with seeds 0-2, the discrete adjoint,
    fomaml and reptile with seed 0, the seeds 0 first; run_queue.sh lists issue 33's runs, then issue 34's."""
    lines = _script_lines("run_omniglot_long.sh", "list")
    assert [line.split()[1:3] for line in lines[:5]] == [
        ["maml-10", "0"],
        ["adjoint-10", "0"],
        ["adjoint-discrete-10", "0"],
        ["fomaml-10", "0"],
        ["reptile-10", "0"],
    ]
    assert len(lines) == 9 and sorted(line.split()[2] for line in lines).count("0") == 5
    queue = _script_lines("run_queue.sh", "list")
    assert queue[:1] == ["CosMixture 50 50 maml 1e-3 0"] and queue[-9:] == lines


@pytest.mark.parametrize(
    "script,argv",
    [
        ("run_gpu.sh", ["--fast"]),
        ("run_horizon.sh", ["all"]),
        ("run_directions.sh", ["some"]),
        ("run_cpu_long.sh", ["some"]),
        ("run_paper_length.sh", ["some"]),
        ("run_omniglot_long.sh", ["some"]),
        ("run_queue.sh", ["some"]),
        ("gpu_session.sh", []),
        ("gpu_session.sh", ["soon", "back"]),
    ],
)
def test_bad_arguments_get_one_line_and_status_2(script, argv, tmp_path):
    done = subprocess.run(
        ["bash", str(ROOT / "results" / script), *argv], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "usage:" in done.stderr
