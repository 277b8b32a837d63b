"""Child processes, started in one place: a Python process that imports this copy of the package, and a pool of
spawned workers.  Each caller keeps its own reason for another process:

- :mod:`amaml_lab.measure`: each measurement in a fresh process, so that none inherits another's memory;
- :mod:`amaml_lab.training.train`: ``--compile``'s graphs compiled beside the run, into inductor's on-disk cache;
- :mod:`amaml_lab.training.distributed`: the ranks of a distributed run, one thread each unless told otherwise;
- :mod:`amaml_lab.teach.horizons_data`: the explorer's parts in spawned workers (fork is unsafe with torch's
  threads).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[1]  # the folder holding this package: the child imports the same copy


def python_env(one_thread: bool = False) -> dict:
    """This process's environment with this package's folder first on PYTHONPATH; ``one_thread`` sets
    OMP_NUM_THREADS to 1 where the caller has not chosen a number."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(SOURCE_ROOT), os.environ.get("PYTHONPATH")) if p))
    if one_thread:
        env["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS", "1")
    return env


def start_python(args: list[str], one_thread: bool = False, **popen) -> subprocess.Popen:
    """``python ARGS`` (this interpreter) started and not waited for; ``popen``: subprocess.Popen's options."""
    return subprocess.Popen([sys.executable, *args], env=python_env(one_thread), **popen)


def run_python(args: list[str], one_thread: bool = False, **run) -> subprocess.CompletedProcess:
    """``python ARGS`` (this interpreter) run to its end; ``run``: subprocess.run's options."""
    return subprocess.run([sys.executable, *args], env=python_env(one_thread), **run)


def spawn_pool(workers: int):
    """A pool of ``workers`` spawned processes (a ProcessPoolExecutor)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    return ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
