"""The kit chooses its threads: one by default, AMAML_LAB_THREADS to change it, a clear error for bad values."""

import os
import subprocess
import sys

import pytest

from amaml_lab.threads import chosen_threads


def threads_after_import(**env) -> str:
    clean = {
        k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "AMAML_LAB_THREADS", "MKL_NUM_THREADS")
    }
    done = subprocess.run(
        [sys.executable, "-c", "import amaml_lab, torch; print(torch.get_num_threads())"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, **env},
    )
    return done.stdout.strip() if done.returncode == 0 else done.stderr.strip().splitlines()[-1]


@pytest.mark.integration  # starts other processes
def test_importing_the_kit_sets_one_thread_unless_told():
    """Without OMP_NUM_THREADS PyTorch would take every core (2 here); the kit takes one, or what it is told."""
    assert threads_after_import() == "1"
    assert threads_after_import(AMAML_LAB_THREADS="2") == "2"
    clean = {
        k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "AMAML_LAB_THREADS", "MKL_NUM_THREADS")
    }
    torch_own = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean,
    ).stdout.strip()
    assert threads_after_import(AMAML_LAB_THREADS="0") == torch_own  # 0: PyTorch's own choice, untouched
    assert "AMAML_LAB_THREADS='many' is not allowed" in threads_after_import(AMAML_LAB_THREADS="many")


def test_chosen_threads_values():
    assert chosen_threads("4") == 4 and chosen_threads("0") == 0
    for bad in ("-1", "1.5", ""):
        with pytest.raises(ValueError, match="allowed values: an integer >= 1"):
            chosen_threads(bad)
