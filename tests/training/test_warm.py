"""amaml-lab warm: the usual settings compiled once into inductor's cache, so that a later process only loads them."""

import os
import subprocess
import sys

import pytest

from amaml_lab.training import warm

SMALLEST = "Sinusoid 10 10 maml euler reg 0"


def test_the_settings_are_the_papers_pair_and_the_horizon_loop_and_each_is_a_valid_run(capsys):
    from helpers import run_cli

    labels = [label for label, _ in warm.SETTINGS]
    assert len(labels) == len(set(labels)) == 12
    for label in labels:
        cfg = warm.config_of(label)
        assert cfg.compile
        if label.endswith(("adjoint", " maml")):  # the paper's: the reference protocol's 100 rk4 steps with reg 1
            assert (cfg.solver, cfg.reg, cfg.protocol, cfg.meta_batch) == ("rk4", 1.0, "reference", 5), label
            assert cfg.inner_steps == 100  # the adjoint's scans are as long as the run's inner loop
        else:
            assert cfg.inner_steps == warm.STEPS
    assert warm.config_of(SMALLEST).solver == "euler" and warm.config_of(SMALLEST).reg == 0.0
    code, out, _ = run_cli(capsys, "warm", "--list")
    assert code == 0 and out.splitlines()[:-1] == labels and out.splitlines()[-1].startswith("inductor's cache: ")
    with pytest.raises(ValueError, match="setting 'x' is not known"):
        warm.config_of("x")


@pytest.mark.integration  # starts processes, each compiling
def test_warm_compiles_a_setting_once_and_a_later_process_only_loads_it(tmp_path):
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "cache"), OMP_NUM_THREADS="1")

    def warm_once():
        done = subprocess.run(
            [sys.executable, "-m", "amaml_lab", "warm", SMALLEST],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    first, second = warm_once(), warm_once()
    assert first[0].startswith(f"{SMALLEST}: ") and first[0].endswith("graphs compiled"), first
    assert second[0].endswith("graphs loaded (warm already)"), second
    assert str(tmp_path / "cache") in second[-1]
