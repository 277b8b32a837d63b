"""The protocol scripts under results/: every command they would run is one the command line accepts, with a valid
configuration (so a change of the CLI cannot leave a GPU session's script broken), and bad arguments get one line."""
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from amaml_lab import cli, experiments

ROOT = Path(__file__).resolve().parents[1]


def commands(tmp_path, *flags, **env):
    out = tmp_path / "out"
    done = subprocess.run(["bash", str(ROOT / "results" / "run_gpu.sh"), *flags, "--dry-run"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, OUT=str(out), AMAML_LAB="amaml-lab", **env))
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


def test_mlp_device_moves_the_mlp_settings_only(tmp_path):
    runs = commands(tmp_path, "--small", DEVICE="cuda:1", MLP_DEVICE="cpu", ESTIMATE="0")
    devices = {argv[2]: set() for argv in runs}
    for argv in runs:
        devices[argv[2]].add(argv[argv.index("run") + 5])  # DOMAIN SHOTS QUERY STEPS DEVICE
    assert devices["Omniglot"] == {"cuda:1"}
    assert all(devices[d] == {"cpu"} for d in devices if d != "Omniglot")


@pytest.mark.parametrize("script,argv", [("run_gpu.sh", ["--fast"]), ("gpu_session.sh", []),
                                         ("gpu_session.sh", ["soon", "back"])])
def test_bad_arguments_get_one_line_and_status_2(script, argv, tmp_path):
    done = subprocess.run(["bash", str(ROOT / "results" / script), *argv], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "usage:" in done.stderr
