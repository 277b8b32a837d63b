"""The long runs committed under ``results/``: what notebooks 05-07 open on, with where they came from.

Each setting names a folder of run folders (each one ``amaml-lab run``'s
output: ``summary.json``, ``metrics.csv``, ``eval.csv``, ``evals.csv``) and the
script in ``results/`` that made it.  :func:`runs` loads them,
:func:`provenance` says which command, machine and meta-steps made them, and
:func:`estimate` turns their measured seconds per meta-step into how long a
run of the full setting takes on that machine.  The folder is found in the
source tree (a clone or an editable install); elsewhere :func:`runs` raises
``FileNotFoundError`` saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..checks import check_choice

RESULTS = Path(__file__).resolve().parents[2] / "results"


@dataclass(frozen=True)
class Setting:
    folder: str  # under results/
    script: str  # the command that made it
    what: str


SETTINGS = {
    "CosMixture-50-50": Setting(
        "cpu-long/CosMixture-50-50", "results/run_cpu_long.sh", "CosMixture 50/50, the paper's synthetic setting"
    ),
    "Alpine2D-50-50": Setting(
        "cpu-long/Alpine2D-50-50", "results/run_cpu_long.sh", "Alpine2D 50/50, the paper's synthetic setting"
    ),
    "MovieLens100K-10-15": Setting(
        "cpu/MovieLens100K-10-15", "results/run_cpu.sh", "MovieLens 100K, 10 support / 15 query ratings per user"
    ),
    "MovieLens100K-20-30": Setting(
        "cpu/MovieLens100K-20-30", "results/run_cpu.sh", "MovieLens 100K, 20 support / 30 query ratings per user"
    ),
    "Omniglot-5way-1shot": Setting(
        "omniglot-cpu/5way-1shot", "results/run_omniglot_cpu.sh", "Omniglot 5-way 1-shot, the small subsets"
    ),
    "Omniglot-5way-5shot": Setting(
        "omniglot-cpu/5way-5shot", "results/run_omniglot_cpu.sh", "Omniglot 5-way 5-shot, the small subsets"
    ),
}


def _setting(name: str) -> Setting:
    check_choice("setting", name, SETTINGS)
    return SETTINGS[name]


def runs(name: str, root=None) -> dict:
    """{run name: :func:`amaml_lab.studies.rundir.load_run`} for every finished run of a committed setting."""
    from .rundir import load_run

    folder = Path(root or RESULTS) / _setting(name).folder
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no committed results at {folder}: they ship with the source tree (a clone of the"
            " repository), not with an installed package"
        )
    out = {}
    for run in sorted(p for p in folder.iterdir() if (p / "summary.json").exists()):
        out[run.name] = load_run(run)
    if not out:
        raise FileNotFoundError(f"no run folders with a summary.json under {folder}")
    return out


def provenance(name: str, loaded: dict) -> str:
    """One line: which command made these runs, on what, how many meta-steps, with which versions."""
    s = _setting(name)
    steps = sorted({r["summary"]["meta_steps"] for r in loaded.values()})
    devices = sorted({r["summary"]["config"]["device"] for r in loaded.values()})
    versions = next(iter(loaded.values()))["summary"].get("versions", {})
    torch_version = versions.get("torch", "?")
    machine = "this kit's 2-core CPU, one thread a run" if devices == ["cpu"] else ", ".join(devices)
    return (
        f"{s.what}: committed runs made by {s.script} on {machine} (torch {torch_version}), "
        f"{' and '.join(f'{n:,}' for n in steps)} meta-steps"
    )


def estimate(name: str, loaded: dict, meta_steps: int, methods=None, scale: float = 1.0, why: str = "") -> str:
    """How long ``meta_steps`` meta-steps of each method take, from the committed runs' measured s / meta-step.

    ``scale`` multiplies the measured times when the run to estimate is bigger than the committed one
    (``why`` says how: "meta-batch 32 instead of 4" ...).
    """
    rows = []
    total = 0.0
    for label, r in loaded.items():
        method = r["summary"]["config"]["method"]
        if methods is not None and method not in methods:
            continue
        per = r["summary"].get("seconds_per_meta_step")
        if per:
            rows.append(f"{label} {per:.2f} s")
            total += per * meta_steps * scale
    scaled = f", times {scale:g} for {why}" if scale != 1.0 else ""
    return (
        f"about {total / 3600:.1f} h of meta-training for {meta_steps:,} meta-steps of each run, plus evaluations"
        f" (measured s / meta-step on the committed runs' machine: {', '.join(rows)}{scaled})"
    )


__all__ = ["SETTINGS", "runs", "provenance", "estimate", "RESULTS"]
