"""The measuring worker: ``python -m amaml_lab.bench.worker --worker JSON`` prints one row,
``--worker-stream`` measures the rows read from stdin one after the other (the parent's side:
:func:`amaml_lab.measure.run_worker` and :func:`amaml_lab.measure.stream`).  Each row is measured in this fresh
process after a warm-up, so that one measurement cannot inherit another's memory."""

from __future__ import annotations

import json
import sys
import time

from ..measure import peak_and_times, select_device
from ..tasks.examples import build_episode, build_images, build_task
from .catalogue import CONFIGS, META_STEP_CONFIGS


def measure(cfg: dict) -> dict:
    """One measurement in this process: warm up, then time and peak memory of one meta-gradient."""
    import torch

    from .. import meta_gradient

    on_cuda = cfg["device"].startswith("cuda")
    select_device(cfg["device"])
    options = dict(CONFIGS[cfg["name"]])
    method = options.pop("method")
    if options.pop("episode", False):
        support_loss, query_loss, theta, options["adapt"] = build_episode(cfg["dtype"], cfg["device"], cfg["seed"])
    elif options.pop("images", False):
        support_loss, query_loss, theta = build_images(cfg["device"], cfg["seed"])
    else:
        support_loss, query_loss, theta = build_task(
            cfg["shots"], cfg["dtype"], cfg["device"], cfg["hidden"], cfg["seed"]
        )

    def run(steps):
        out = meta_gradient(
            support_loss,
            query_loss,
            theta,
            method=method,
            steps=steps,
            step_size=cfg["step_size"],
            solver=cfg["solver"],
            **options,
        )
        if on_cuda:
            torch.cuda.synchronize()
        return out

    # warm-up: two steps; with cfg["warmup"] == "full" the measured call itself, so that even the first point a
    # process measures carries none of its first calls' costs
    run(cfg["steps"] if cfg.get("warmup") == "full" else max(2, options.get("truncate", 0)))
    _, peak, times = peak_and_times(lambda: run(cfg["steps"]), cfg, on_cuda)
    return {"time_s": min(times), "peak_mb": peak / 2**20}


def measure_peer(cfg: dict) -> dict:
    """One row of ``--peers`` in this process: time, peak memory and relative error of one meta-gradient."""
    import warnings

    from ..functional import relative_error
    from . import peers

    task = peers.peer_task(cfg["shots"], cfg["hidden"], cfg["seed"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # back-solving warns about its drift: the error column says it
        peers.gradient_fn(cfg["name"], task, 2, cfg["step_size"])()  # warm-up
        grad, peak, times = peak_and_times(peers.gradient_fn(cfg["name"], task, cfg["steps"], cfg["step_size"]), cfg)
        error = relative_error(grad, peers.exact(cfg["name"], task, cfg["steps"], cfg["step_size"]))
    row = {"time_s": min(times), "peak_mb": peak / 2**20, "rel_error": error}
    if cfg.get("flow_reference") and peers.ROWS[cfg["name"]][1] == "rk4":
        import torch

        row["flow_error"] = relative_error(grad, torch.load(cfg["flow_reference"]))
    return row


def measure_meta_step(cfg: dict) -> dict:
    """Median seconds of one meta-step as ``amaml-lab run`` takes it (draw a meta-batch, meta-gradient, SGD step).

    ``cfg["losses"]``: "stacked" is what training uses (the MLP's losses on the
    whole meta-batch, :func:`~amaml_lab.models.stacked_forward`); "vmapped" is
    the former path (each task's loss through ``functional_call``, vmapped).
    """
    import torch

    from ..tasks.domains import load_domain
    from ..training.builders import build_model, losses_for, on_device
    from ..training.config import RunConfig
    from ..training.train import batch_gradient

    select_device(cfg["device"])
    method, steps = META_STEP_CONFIGS[cfg["name"]]
    run_cfg = (
        RunConfig(
            domain=cfg["domain"],
            shots=cfg["shots"],
            query=cfg["shots"],
            inner_steps=steps,
            method=method,
            device=cfg["device"],
            compile=cfg.get("compile", False),
        )
        .resolved()
        .check()
    )
    domain = load_domain(run_cfg.domain, run_cfg.shots, run_cfg.query)
    model = build_model(run_cfg, domain.in_features).to(run_cfg.device)
    theta = {k: v.detach().clone().requires_grad_(True) for k, v in model.named_parameters()}
    if cfg["losses"] == "stacked":
        losses = losses_for(run_cfg, model)
    else:

        def support_loss(params, data):
            return 0.5 * torch.mean((torch.func.functional_call(model, params, (data[0],)) - data[1]) ** 2)

        def query_loss(params, data):
            return torch.mean((torch.func.functional_call(model, params, (data[0],)) - data[1]) ** 2)

        losses = (support_loss, query_loss)
    optimizer = torch.optim.SGD(theta.values(), lr=run_cfg.meta_lr)
    gen = torch.Generator().manual_seed(cfg["seed"])

    def meta_step():  # what meta-training does each step (train.batch_gradient), then the outer step
        support, query = domain.train_batch(gen, run_cfg.meta_batch, run_cfg.shots, run_cfg.query)
        grad, _, _ = batch_gradient(
            run_cfg,
            model,
            theta,
            on_device(support, run_cfg),
            on_device(query, run_cfg),
            losses,
            stacked=cfg["losses"] == "stacked",
        )
        for k, v in theta.items():
            v.grad = grad[k]
        optimizer.step()
        if run_cfg.device.startswith("cuda"):
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    meta_step()  # compiled: this one compiles
    first = time.perf_counter() - t0
    meta_step()
    times = []
    for _ in range(cfg["repeat"]):
        t0 = time.perf_counter()
        meta_step()
        times.append(time.perf_counter() - t0)
    median = sorted(times)[len(times) // 2]
    return {"time_s": median, "first_s": first, "compile_s": max(first - median, 0.0)}


def _serve_stream() -> None:
    for cfg in json.loads(sys.stdin.read()):
        try:
            row = {**cfg, **measure(cfg)}
        except Exception as err:  # one failed point must not lose the others
            row = {**cfg, "error": f"{type(err).__name__}: {err}"}
        print(json.dumps(row), flush=True)


def measure_side_by_side(cfg: dict) -> dict:
    from .side_by_side import measure_side_by_side as measure

    return measure(cfg)


def main(argv=None) -> int:
    """The worker's entry: ``--worker JSON`` prints one row, ``--worker-stream`` serves rows from stdin."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker-stream"]:
        _serve_stream()
        return 0
    if len(argv) == 2 and argv[0] == "--worker":
        cfg = json.loads(argv[1])
        kinds = {"meta-step": measure_meta_step, "peer": measure_peer, "side-by-side": measure_side_by_side}
        print(json.dumps(kinds.get(cfg.get("kind"), measure)(cfg)))
        return 0
    print("usage: python -m amaml_lab.bench.worker --worker JSON | --worker-stream", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
