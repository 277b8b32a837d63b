"""Why does a first-order direction train better through a long loop? (issue 33, part 3)
python results/diagnose_directions.py [ROOT] [--quick]

For each theta of the horizon experiment's reg-0 runs, seed 0 (the committed 1,000-meta-step runs maml-10,
maml-1000, fomaml-1000 and reptile-1000 of results/horizon, and every snapshot, meta-step 2,000 to 5,000, of their
continuations under ROOT/long/), on both settings, writes ROOT/diagnosis/SETTING/RUN-lrRATE-seed0-stepSTEP.json:
  - "directions": at N = 10, 100 and 1,000 Euler steps of 0.01, over 20 seeded meta-batches: the exact
    meta-gradient's, FOMAML's and Reptile's mean norm, mean pairwise cosine and coherence, and the cosines between
    them (amaml_lab.studies.diagnosis.direction_stats);
  - "adam_step": Adam's effective step at that theta, from the run's optimiser state (mean |m_hat|/(sqrt(v_hat)+eps));
  - "scale": at the run's own N, each direction's norm on each of the 20 batches, the largest over the median, and
    for the run's own direction how Adam's second moment compares with it (sqrt(v_hat) over the gradients' root
    mean square; amaml_lab.studies.diagnosis.gradient_scale);
  - "spectrum": the singular values of du(N)/dtheta (exact, float64) at N = 1 ... 1,000 on one meta-train task;
  - "slices": the own-loop query loss (N = 10 and 1,000) over 4 meta-batches along the exact and the Reptile
    direction (each the mean over the 20 batches, normalised), alpha = -0.05 ... 0.1 in steps of 0.0025.
A file already written is kept (the command resumes) and given what it lacks ("scale" came later); each is
written atomically.  --quick: 4 batches, a coarse
slice and N = 10, 100 only (a smoke run, into ROOT/diagnosis-quick).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from amaml_lab.io import write_json_atomic
from amaml_lab.studies import diagnosis
from amaml_lab.studies.directions import COMMITTED_RATE
from amaml_lab.studies.rundir import config_of, load_run

SETTINGS = ("CosMixture-50-50", "Sinusoid-10-10")
RUNS = ("maml-1000", "reptile-1000", "fomaml-1000", "maml-10")
FULL = {
    "steps": (10, 100, 1000),
    "batches": 20,
    "spectrum": (1, 3, 10, 30, 100, 300, 1000),
    "alphas": [round(-0.05 + 0.0025 * i, 4) for i in range(61)],
    "slice_steps": (10, 1000),
}
QUICK = {
    "steps": (10, 100),
    "batches": 4,
    "spectrum": (1, 10, 100),
    "alphas": [-0.05, 0.0, 0.05, 0.1],
    "slice_steps": (10,),
}


def thetas(root: Path):
    """(setting, label, run folder, snapshot path) for every theta to diagnose, the cheapest first."""
    for setting in SETTINGS:
        for run in reversed(RUNS):
            first = root / setting / "reg0" / run / "seed0"
            if (first / "checkpoint.pt").exists():
                yield setting, f"{run}-lr{COMMITTED_RATE}-seed0-step1000", first, first / "checkpoint.pt"
            for snapshot in sorted((root / "long" / setting / run).glob("lr*/seed0/snapshots/meta-step-*.pt")):
                step = int(snapshot.stem.rsplit("-", 1)[1])
                if step > 1000:
                    rate = snapshot.parents[2].name
                    yield setting, f"{run}-{rate}-seed0-step{step}", snapshot.parents[1], snapshot


def load(folder: Path, snapshot: Path):
    """(the run's config, theta in float64, the snapshot's state)."""
    cfg = config_of(load_run(folder)["summary"]).resolved().check()
    state = torch.load(snapshot, weights_only=False, map_location="cpu")
    return cfg, {k: v.to(torch.float64) for k, v in state["theta"].items()}, state


def scale(cfg, theta: dict, state: dict, plan: dict, found: dict | None = None) -> dict:
    """Each direction's :func:`~amaml_lab.studies.diagnosis.gradient_scale` at the run's own N (Adam's memory
    compared with the run's own direction only)."""
    found = found or diagnosis.directions_over_batches(cfg, theta, cfg.inner_steps, plan["batches"])
    own = state["optimizer"] if cfg.optimizer == "adam" else None
    return {
        "steps": cfg.inner_steps,
        **{
            name: diagnosis.gradient_scale(vs, own if method == cfg.method else None)
            for name, vs in found.items()
            for method in [diagnosis.DIRECTIONS[name]]
        },
    }


def diagnose(folder: Path, snapshot: Path, plan: dict) -> dict:
    cfg, theta, state = load(folder, snapshot)
    out = {
        "run": str(folder),
        "meta_step": state.get("meta_step", state.get("meta_steps")),
        "adam_step": diagnosis.adam_step(state["optimizer"]) if cfg.optimizer == "adam" else None,
        "directions": {},
        "slices": {},
        "alphas": plan["alphas"],
    }
    means = {}
    for n in plan["steps"]:
        found = diagnosis.directions_over_batches(cfg, theta, n, plan["batches"])
        out["directions"][n] = diagnosis.direction_stats(found)
        means[n] = {name: torch.stack(vs).mean(0) for name, vs in found.items()}
        if n == cfg.inner_steps:
            out["scale"] = scale(cfg, theta, state, plan, found)
    if "scale" not in out:
        out["scale"] = scale(cfg, theta, state, plan)
    spectrum = diagnosis.jacobian_spectrum(cfg, theta, plan["spectrum"])
    out["spectrum"] = {n: [float(f"{v:.6g}") for v in values[0]] for n, values in spectrum.items()}
    for n in plan["slice_steps"]:
        along = means.get(n) or means[max(means)]
        slice_cfg = cfg.__class__(**{**cfg.__dict__, "inner_steps": n})
        out["slices"][n] = {
            name: diagnosis.loss_slice(slice_cfg, theta, along[name], plan["alphas"]) for name in ("exact", "reptile")
        }
    return out


def main(*argv) -> int:
    args = [a for a in argv if not a.startswith("--")]
    quick = "--quick" in argv
    root = Path(args[0]) if args else Path(__file__).resolve().parent / "horizon"
    plan = QUICK if quick else FULL
    out_root = root / ("diagnosis-quick" if quick else "diagnosis")
    for setting, label, folder, snapshot in thetas(root):
        path = out_root / setting / f"{label}.json"
        if path.exists():
            found = json.loads(path.read_text())
            if "scale" not in found:
                cfg, theta, state = load(folder, snapshot)
                write_json_atomic(path, {**found, "scale": scale(cfg, theta, state, plan)})
                print(f"added the scale to {path}", flush=True)
            continue
        write_json_atomic(path, diagnose(folder, snapshot, plan))
        print(f"wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
