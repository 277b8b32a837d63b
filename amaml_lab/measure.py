"""Measurement primitives: time and peak memory of one meta-gradient (or one meta-step, or one peer's row) in
this process, and the worker protocol that runs each measurement in a fresh Python process.

Peak memory is the working memory of the call: on CUDA ``torch.cuda.max_memory_allocated`` above what was
allocated before it; on the CPU the peak of the bytes the C heap has handed out (glibc's ``mallinfo2``: tensors
and Python objects, not allocator slack) above the level before the call, sampled every millisecond.  Times are
wall-clock seconds, the fastest of ``repeat`` runs made without the memory sampler.  Workers:
``python -m amaml_lab.measure --worker JSON`` (one row) or ``--worker-stream`` (rows read from stdin).
"""
from __future__ import annotations

import ctypes
import gc
import json
import subprocess
import sys
import threading
import time

from .tasks.examples import build_episode, build_images, build_task

CONFIGS = {
    "maml": dict(method="maml"),
    "adjoint": dict(method="adjoint"),
    "adjoint-sqrt": dict(method="adjoint", checkpoints="sqrt"),
    "adjoint-c64": dict(method="adjoint", checkpoints=64),
    "adjoint-grid": dict(method="adjoint", scheme="grid"),
    "adjoint-grid-c64": dict(method="adjoint", scheme="grid", checkpoints=64),
    "adjoint-discrete": dict(method="adjoint", scheme="discrete"),
    "adjoint-discrete-sqrt": dict(method="adjoint", scheme="discrete", checkpoints="sqrt"),
    # the compiled path (amaml_lab.compiled): the warm-up and the memory call compile; the timed calls reuse it
    "maml-compiled": dict(method="maml", compile=True),
    "adjoint-compiled": dict(method="adjoint", compile=True),
    "backsolve": dict(method="backsolve"),
    "maml-sqrt": dict(method="maml", checkpoints="sqrt"),
    "fomaml": dict(method="fomaml"),
    "reptile": dict(method="reptile"),
    "imaml": dict(method="imaml", lam=2.0, cg_steps=5),
    "truncated-10": dict(method="truncated", truncate=10),
    "forward": dict(method="forward"),
    # on a 5-way 5-shot episode of 64-dimensional embeddings (75 query points), the head alone adapting
    "head-maml": dict(method="maml", episode=True),
    "comln": dict(method="comln", episode=True),
    # Conv-4 (64 filters) on a 5-way 1-shot episode of 28 x 28 glyphs with 15 queries per class, float32
    "conv4-maml": dict(method="maml", images=True),
    "conv4-adjoint": dict(method="adjoint", images=True),
    "conv4-adjoint-sqrt": dict(method="adjoint", checkpoints="sqrt", images=True),
    "conv4-fomaml": dict(method="fomaml", images=True),
    "conv4-imaml": dict(method="imaml", lam=2.0, cg_steps=5, images=True),
}


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _heap_reader():
    """Bytes the C heap has handed out and not taken back (glibc's mallinfo2), or None off glibc."""
    try:
        libc = ctypes.CDLL(None)
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _Mallinfo2

    def live() -> int:
        info = fn()
        return info.uordblks + info.hblkhd

    return live


class _PeakSampler(threading.Thread):
    """Samples live heap bytes every millisecond until stopped."""

    def __init__(self, read):
        super().__init__(daemon=True)
        self.read = read
        self.peak = read()
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.is_set():
            t0 = time.perf_counter()
            self.peak = max(self.peak, self.read())
            # reading takes the allocator's lock: keep it under ~5% of the time
            time.sleep(max(0.001, 20 * (time.perf_counter() - t0)))

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return max(self.peak, self.read())


def select_device(device: str) -> None:
    """Make ``cuda:N`` the current device (memory statistics and synchronisation are the current device's);
    plain ``cuda`` is the current one already (torch.cuda.set_device refuses a device without an index)."""
    import torch

    if device.startswith("cuda") and torch.device(device).index is not None:
        torch.cuda.set_device(torch.device(device))


def measure(cfg: dict) -> dict:
    """One measurement in this process: warm up, then time and peak memory of one meta-gradient."""
    import torch

    from . import meta_gradient

    on_cuda = cfg["device"].startswith("cuda")
    select_device(cfg["device"])
    options = dict(CONFIGS[cfg["name"]])
    method = options.pop("method")
    if options.pop("episode", False):
        support_loss, query_loss, theta, options["adapt"] = build_episode(cfg["dtype"], cfg["device"], cfg["seed"])
    elif options.pop("images", False):
        support_loss, query_loss, theta = build_images(cfg["device"], cfg["seed"])
    else:
        support_loss, query_loss, theta = build_task(cfg["shots"], cfg["dtype"], cfg["device"], cfg["hidden"],
                                                     cfg["seed"])

    def run(steps):
        out = meta_gradient(support_loss, query_loss, theta, method=method, steps=steps,
                            step_size=cfg["step_size"], solver=cfg["solver"], **options)
        if on_cuda:
            torch.cuda.synchronize()
        return out

    # warm-up: two steps; with cfg["warmup"] == "full" the measured call itself, so that even the first point a
    # process measures carries none of its first calls' costs
    run(cfg["steps"] if cfg.get("warmup") == "full" else max(2, options.get("truncate", 0)))
    _, peak, times = _peak_and_times(lambda: run(cfg["steps"]), cfg, on_cuda)
    return {"time_s": min(times), "peak_mb": peak / 2**20}


def _peak_and_times(call, cfg: dict, on_cuda: bool = False):
    """(the result of a first call, its peak working memory in bytes, the times of ``cfg["repeat"]`` more).

    Memory first, with the sampler (or CUDA's peak statistics); then the timed
    calls without it, stopping early once they pass ``cfg["time_budget"]`` seconds.
    """
    import torch

    gc.collect()
    if on_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        result = call()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        read = _heap_reader()
        if read is None:
            raise SystemExit("peak memory on the CPU needs glibc's mallinfo2; run on Linux or with --device cuda")
        base = read()
        sampler = _PeakSampler(read)
        switch = sys.getswitchinterval()
        sys.setswitchinterval(1e-4)  # the sampler gets the GIL every 0.1 ms, not 5: a short call's peak is seen
        sampler.start()
        try:
            result = call()
        finally:
            peak = sampler.stop() - base
            sys.setswitchinterval(switch)
    times = []
    for _ in range(cfg["repeat"]):
        gc.collect()
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
        if sum(times) > cfg["time_budget"]:
            break
    return result, peak, times


def measure_peer(cfg: dict) -> dict:
    """One row of ``--peers`` in this process: time, peak memory and relative error of one meta-gradient."""
    import warnings

    from . import peers
    from .functional import relative_error

    task = peers.peer_task(cfg["shots"], cfg["hidden"], cfg["seed"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # back-solving warns about its drift: the error column says it
        peers.gradient_fn(cfg["name"], task, 2, cfg["step_size"])()  # warm-up
        grad, peak, times = _peak_and_times(peers.gradient_fn(cfg["name"], task, cfg["steps"], cfg["step_size"]), cfg)
        error = relative_error(grad, peers.exact(cfg["name"], task, cfg["steps"], cfg["step_size"]))
    row = {"time_s": min(times), "peak_mb": peak / 2**20, "rel_error": error}
    if cfg.get("flow_reference") and peers.ROWS[cfg["name"]][1] == "rk4":
        import torch

        row["flow_error"] = relative_error(grad, torch.load(cfg["flow_reference"]))
    return row


META_STEP_CONFIGS = {"adjoint-100": ("adjoint", 100), "maml-10": ("maml", 10), "maml-100": ("maml", 100),
                     "fomaml-100": ("fomaml", 100), "reptile-100": ("reptile", 100), "imaml-100": ("imaml", 100)}


def measure_meta_step(cfg: dict) -> dict:
    """Median seconds of one meta-step as ``amaml-lab run`` takes it (draw a meta-batch, meta-gradient, SGD step).

    ``cfg["losses"]``: "stacked" is what training uses (the MLP's losses on the
    whole meta-batch, :func:`~amaml_lab.models.stacked_forward`); "vmapped" is
    the former path (each task's loss through ``functional_call``, vmapped).
    """
    import torch

    from .builders import build_model, losses_for, on_device
    from .config import RunConfig
    from .tasks.domains import load_domain
    from .train import batch_gradient

    select_device(cfg["device"])
    method, steps = META_STEP_CONFIGS[cfg["name"]]
    run_cfg = RunConfig(domain=cfg["domain"], shots=cfg["shots"], query=cfg["shots"], inner_steps=steps,
                        method=method, device=cfg["device"], compile=cfg.get("compile", False)).resolved().check()
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
        grad, _, _ = batch_gradient(run_cfg, model, theta, on_device(support, run_cfg), on_device(query, run_cfg),
                                    losses, stacked=cfg["losses"] == "stacked")
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


def run_worker(cfg: dict) -> dict:
    cmd = [sys.executable, "-m", "amaml_lab.measure", "--worker", json.dumps(cfg)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["exit status %d" % proc.returncode])[-1]
        return {"error": last}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def stream(cfgs: list[dict]):
    """Measure ``cfgs`` one after the other in one separate Python process; yield each row as it arrives.

    A row with ``"error"`` stands for a measurement that failed (the rest go on).
    """
    cmd = [sys.executable, "-m", "amaml_lab.measure", "--worker-stream"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdin.write(json.dumps(cfgs))
    proc.stdin.close()
    got, stderr = 0, ""
    try:
        for line in proc.stdout:
            if line.startswith("{"):
                got += 1
                yield json.loads(line)
        proc.wait()
        if got < len(cfgs):
            stderr = proc.stderr.read()
    finally:  # closed here, not left to the garbage collector (which warns: ResourceWarning, unclosed file)
        proc.stdout.close()
        proc.stderr.close()
    if got < len(cfgs):
        last = (stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        for cfg in cfgs[got:]:
            yield {**cfg, "error": last}


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
    print("usage: python -m amaml_lab.measure --worker JSON | --worker-stream", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
