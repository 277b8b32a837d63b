"""Time and peak memory of one meta-gradient against the number of inner steps.

    python -m amaml_lab.bench [--steps 10,100,1000,10000] [--methods maml,adjoint,adjoint-sqrt] ...

Every (method, steps) pair runs in a fresh Python process, after a two-step
warm-up, so that one measurement cannot inherit another's memory.  Peak memory
is the working memory of the call: on CUDA ``torch.cuda.max_memory_allocated``
above what was allocated before it; on the CPU the peak of the bytes the C heap
has handed out (glibc's ``mallinfo2``: tensors and Python objects, not
allocator slack) above the level before the call, sampled every millisecond.
Times are wall-clock seconds, the fastest of ``--repeat`` runs made without
the memory sampler (timings on a shared 2-core machine vary by tens of
percent from run to run; the fastest is the steadiest).  Nothing here
is asserted in a test: it prints a table.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

CONFIGS = {
    "maml": dict(method="maml"),
    "adjoint": dict(method="adjoint"),
    "adjoint-sqrt": dict(method="adjoint", checkpoints="sqrt"),
    "adjoint-c64": dict(method="adjoint", checkpoints=64),
    "adjoint-grid": dict(method="adjoint", scheme="grid"),
    "adjoint-grid-c64": dict(method="adjoint", scheme="grid", checkpoints=64),
    "adjoint-discrete": dict(method="adjoint", scheme="discrete"),
    "adjoint-discrete-sqrt": dict(method="adjoint", scheme="discrete", checkpoints="sqrt"),
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


def build_episode(dtype: str, device: str, seed: int, ways: int = 5, shots: int = 5, queries: int = 15, dim: int = 64):
    """A COMLN episode: Gaussian class clusters as embeddings, a zero-initialised linear head."""
    import torch

    from .metagrad.comln import comln_task

    dt = getattr(torch, dtype)
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(ways, dim, generator=g, dtype=dt)
    ys = torch.arange(ways).repeat_interleave(shots)
    yq = torch.arange(ways).repeat_interleave(queries)
    fs = centers[ys] + torch.randn(len(ys), dim, generator=g, dtype=dt)
    fq = centers[yq] + torch.randn(len(yq), dim, generator=g, dtype=dt)
    support_loss, query_loss, theta, adapt = comln_task(fs.to(device), ys.to(device), fq.to(device), yq.to(device),
                                                        torch.zeros(ways, dim, dtype=dt, device=device))
    return support_loss, query_loss, theta, adapt


def build_images(device: str, seed: int, ways: int = 5, shots: int = 1, queries: int = 15):
    """A Conv-4 few-shot task on generated glyphs (timing and memory do not depend on the drawings)."""
    import torch

    from .functional import module_params
    from .models import conv4
    from .tasks.omniglot import demo_characters, episodes, with_rotations

    classes = with_rotations(demo_characters(ways, drawings=shots + queries, seed=seed))
    (xs, ys), (xq, yq) = episodes(classes, 1, ways, shots, queries, torch.Generator().manual_seed(seed))
    model = conv4(ways, seed=seed).to(device)
    xs, ys, xq, yq = xs[0].to(device), ys[0].to(device), xq[0].to(device), yq[0].to(device)

    def support_loss(params):
        return torch.nn.functional.cross_entropy(torch.func.functional_call(model, params, (xs,)), ys)

    def query_loss(params):
        return torch.nn.functional.cross_entropy(torch.func.functional_call(model, params, (xq,)), yq)

    return support_loss, query_loss, module_params(model)


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


def build_task(shots: int, dtype: str, device: str, hidden: int, seed: int):
    """The benchmark's task: a CosMixture2D regression task and a tanh MLP 2-hidden-2-1."""
    import torch

    from .functional import module_params, task_losses
    from .models import mlp
    from .tasks.synthetic import cos_mixture_task

    dt = getattr(torch, dtype)
    model = mlp(2, (hidden, hidden), 1, dtype=dt, seed=seed).to(device)
    support, query = cos_mixture_task(shots, shots, dim=2, seed=seed, dtype=dt)
    support = tuple(v.to(device) for v in support)
    query = tuple(v.to(device) for v in query)
    support_loss, query_loss = task_losses(model, support, query)
    return support_loss, query_loss, module_params(model)


def _select(device: str) -> None:
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
    _select(cfg["device"])
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

    run(max(2, options.get("truncate", 0)))  # warm-up
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
        sampler.start()
        result = call()
        peak = sampler.stop() - base
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

    task = peers.peer_task(cfg["shots"], cfg["hidden"], cfg["seed"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # back-solving warns about its drift: the error column says it
        peers.gradient_fn(cfg["name"], task, 2, cfg["step_size"])()  # warm-up
        grad, peak, times = _peak_and_times(peers.gradient_fn(cfg["name"], task, cfg["steps"], cfg["step_size"]), cfg)
        error = peers.relative_error(grad, peers.exact(cfg["name"], task, cfg["steps"], cfg["step_size"]))
    row = {"time_s": min(times), "peak_mb": peak / 2**20, "rel_error": error}
    if cfg.get("flow_reference") and peers.ROWS[cfg["name"]][1] == "rk4":
        import torch

        row["flow_error"] = peers.relative_error(grad, torch.load(cfg["flow_reference"]))
    return row


def run_peers(args) -> list[dict]:
    import torch

    from . import peers

    rows = []
    for steps in args.steps:
        # the flow's meta-gradient, once per horizon, for the rk4 rows' "vs the flow" column
        task = peers.peer_task(args.shots, args.hidden, args.seed)
        flow = os.path.join(tempfile.mkdtemp(prefix="amaml-peers-"), f"flow-{steps}.pt")
        torch.save(peers.flow_reference(task, steps, args.step_size), flow)
        lam0, lam_T = peers.curvature(task, steps, args.step_size)
        print(f"  steps={steps}: λmax of the support Hessian {lam0:.1f} at θ, {lam_T:.1f} at u(T):"
              f" h·λmax {args.step_size * lam_T:.2f} at T", file=sys.stderr, flush=True)
        for name in peers.ROWS:
            cfg = dict(kind="peer", name=name, steps=steps, shots=args.shots, hidden=args.hidden,
                       step_size=args.step_size, repeat=args.repeat, time_budget=args.time_budget, seed=args.seed,
                       flow_reference=flow, lambda_max=[lam0, lam_T])
            if not peers.available(name):
                rows.append({**cfg, "error": f"skipped: {peers.ROWS[name][0]} is not installed"
                                             " (pip install -e \".[peers]\")"})
            else:
                rows.append({**cfg, **run_worker(cfg)})
            r = rows[-1]
            r.pop("flow_reference")
            print(f"  {name:>40} steps={steps:>5}: " + (
                f"{r['time_s']:.3f} s, {r['peak_mb']:.1f} MB, error {r['rel_error']:.1e}" if "time_s" in r
                else r["error"]), file=sys.stderr, flush=True)
        shutil.rmtree(os.path.dirname(flow), ignore_errors=True)
    if args.out:
        from .io import write_json_atomic

        write_json_atomic(args.out, rows)
    return rows


def peers_table(rows: list[dict]) -> str:
    from .peers import ROWS

    exact = {"euler": "maml (euler)", "rk4": "maml (rk4)", "imaml": "dense solve"}
    lines = ["| steps | row | time (s) | peak memory (MB) | relative error | exact reference | error vs the flow |",
             "|---:|---|---:|---:|---:|---|---:|"]
    for r in rows:
        if "time_s" in r:
            flow = f"{r['flow_error']:.1e}" if "flow_error" in r else ""
            lines.append(f"| {r['steps']} | {r['name']} | {r['time_s']:.3f} | {r['peak_mb']:.1f} | "
                         f"{r['rel_error']:.1e} | {exact[ROWS[r['name']][1]]} | {flow} |")
        else:
            lines.append(f"| {r['steps']} | {r['name']} | | | | {r['error']} | |")
    curvature = {r["steps"]: r["lambda_max"] for r in rows if "lambda_max" in r}
    if curvature:
        lines.append("")
        lines.append("λmax of the support Hessian at θ and at u(T): " + "; ".join(
            f"{steps} steps: {lam0:.1f} and {lam_T:.1f}" for steps, (lam0, lam_T) in curvature.items()))
    return "\n".join(lines)


# a whole meta-step of the Adjoint MAML paper's setting: (method, inner steps)
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

    _select(cfg["device"])
    method, steps = META_STEP_CONFIGS[cfg["name"]]
    run_cfg = RunConfig(domain=cfg["domain"], shots=cfg["shots"], query=cfg["shots"], inner_steps=steps,
                        method=method, device=cfg["device"]).resolved().check()
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

    for _ in range(2):
        meta_step()
    times = []
    for _ in range(cfg["repeat"]):
        t0 = time.perf_counter()
        meta_step()
        times.append(time.perf_counter() - t0)
    return {"time_s": sorted(times)[len(times) // 2]}


def meta_step_table(rows: list[dict]) -> str:
    lines = ["| meta-step | losses | s / meta-step (median) | stacked / vmapped |", "|---|---|---:|---:|"]
    before = {r["name"]: r for r in rows if r["losses"] == "vmapped" and "time_s" in r}
    for r in rows:
        if "time_s" not in r:
            lines.append(f"| {r['name']} | {r['losses']} | {r.get('error')} | |")
            continue
        ref = before.get(r["name"])
        ratio = f"{r['time_s'] / ref['time_s']:.2f}" if ref and r["losses"] == "stacked" else ""
        lines.append(f"| {r['name']} | {r['losses']} | {r['time_s']:.3f} | {ratio} |")
    return "\n".join(lines)


def run_worker(cfg: dict) -> dict:
    cmd = [sys.executable, "-m", "amaml_lab.bench", "--worker", json.dumps(cfg)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["exit status %d" % proc.returncode])[-1]
        return {"error": last}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def stream(cfgs: list[dict]):
    """Measure ``cfgs`` one after the other in one separate Python process; yield each row as it arrives.

    A row with ``"error"`` stands for a measurement that failed (the rest go on).
    """
    cmd = [sys.executable, "-m", "amaml_lab.bench", "--worker-stream"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdin.write(json.dumps(cfgs))
    proc.stdin.close()
    got = 0
    for line in proc.stdout:
        if line.startswith("{"):
            got += 1
            yield json.loads(line)
    proc.wait()
    if got < len(cfgs):
        last = (proc.stderr.read().strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        for cfg in cfgs[got:]:
            yield {**cfg, "error": last}


def _serve_stream() -> None:
    for cfg in json.loads(sys.stdin.read()):
        try:
            row = {**cfg, **measure(cfg)}
        except Exception as err:  # one failed point must not lose the others
            row = {**cfg, "error": f"{type(err).__name__}: {err}"}
        print(json.dumps(row), flush=True)


# ---------------------------------------------------------------- the widget apps' latencies
def _spread(control, count: int) -> list:
    """``count`` values across a control's range, alternating ends and middle so that every move changes it."""
    if hasattr(control, "options") and not hasattr(control, "rows"):  # selection sliders, toggles, dropdowns
        values = [v if not isinstance(v, tuple) else v[1] for v in control.options]
    elif hasattr(control, "rows"):  # a multiple selection: drop one option after another, then all back
        keys = [v[1] if isinstance(v, tuple) else v for v in control.options]
        values = [tuple(k for k in keys if k != drop) for drop in keys] + [tuple(keys)]
    elif getattr(control, "base", None):  # log sliders: their value is base ** exponent
        lo, hi = control.min, control.max
        values = [control.base ** (lo + (hi - lo) * i / (count - 1)) for i in range(count)]
    else:
        lo, hi = control.min, control.max
        values = [lo + (hi - lo) * i / (count - 1) for i in range(count)]
        if isinstance(control.value, int):
            values = sorted({int(round(v)) for v in values})
    n = len(values)
    zigzag = [values[i // 2] if i % 2 == 0 else values[n - 1 - i // 2] for i in range(n)]  # first, last, second...
    return [zigzag[i % n] for i in range(max(count, n))]


def widget_latencies(apps=None, moves: int = 10) -> list[dict]:
    """Build each widget app as notebooks do with FAST, then time ``moves`` moves of each control.

    Returns rows {app, build_s, control, moves, median_s, worst_s}; the
    CostExplorer's rows are timed once its background measurements are in
    (``ready_s``), the others right after their build.
    """
    import statistics

    from . import widgets

    def horizon():
        return widgets.HorizonExplorer()

    def cost():
        return widgets.CostExplorer(steps_options=(10, 30, 100), shots=20, hidden=8)

    def baselines():
        support_loss, query_loss, theta = build_task(20, "float64", "cpu", 8, 0)
        return widgets.BaselineExplorer(support_loss, query_loss, theta, steps_list=(5, 20, 50))

    builders = {"HorizonExplorer": horizon, "FlowExplorer": widgets.FlowExplorer,
                "CostExplorer": cost, "ReconstructionExplorer": widgets.ReconstructionExplorer,
                "BaselineExplorer": baselines}
    rows = []
    for name in apps or builders:
        started = time.perf_counter()
        app = builders[name]()
        build = time.perf_counter() - started
        ready = None
        if hasattr(app, "wait"):
            app.wait()
            ready = time.perf_counter() - started
        for key, control in app.controls.items():
            original = control.value
            times = []
            for value in _spread(control, 3 * moves):
                if len(times) == moves:
                    break
                if value == control.value:
                    continue
                t0 = time.perf_counter()
                control.value = value
                times.append(time.perf_counter() - t0)
            control.value = original
            rows.append({"app": name, "build_s": build, "ready_s": ready, "control": key, "moves": len(times),
                         "median_s": statistics.median(times), "worst_s": max(times)})
        print(f"  {name}: built in {build:.1f} s", file=sys.stderr, flush=True)
    return rows


def widget_table(rows: list[dict]) -> str:
    head = "| app | build (s) | control | moves | redraw median (s) | redraw worst (s) |"
    lines = [head, "|---|---:|---|---:|---:|---:|"]
    for r in rows:
        build = f"{r['build_s']:.1f}" + (f" (measured in {r['ready_s']:.1f})" if r.get("ready_s") else "")
        lines.append(f"| {r['app']} | {build} | {r['control']} | {r['moves']} | {r['median_s']:.3f} | "
                     f"{r['worst_s']:.3f} |")
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    head = "| steps | method | time (s) | peak memory (MB) | time / maml | memory / maml |"
    lines = [head, "|---:|---|---:|---:|---:|---:|"]
    maml = {r["steps"]: r for r in rows if r["name"] == "maml" and "time_s" in r}
    heads = {r["steps"]: r for r in rows if r["name"] == "head-maml" and "time_s" in r}
    convs = {r["steps"]: r for r in rows if r["name"] == "conv4-maml" and "time_s" in r}
    for r in rows:
        if "time_s" not in r:
            lines.append(f"| {r['steps']} | {r['name']} | {r.get('error', 'skipped')} | | | |")
            continue
        spec = CONFIGS[r["name"]]
        ref = (heads if spec.get("episode") else convs if spec.get("images") else maml).get(r["steps"])
        tr = f"{r['time_s'] / ref['time_s']:.2f}" if ref else "-"
        mr = f"{r['peak_mb'] / ref['peak_mb']:.2g}" if ref and ref["peak_mb"] > 0 else "-"
        lines.append(f"| {r['steps']} | {r['name']} | {r['time_s']:.3f} | {r['peak_mb']:.1f} | {tr} | {mr} |")
    return "\n".join(lines)


def _positive_ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"steps must be integers >= 1, got {text!r}")
    return values


def _device(text: str) -> str:
    from .config import check_device

    try:
        return check_device(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _names(text: str) -> list[str]:
    names = [v for v in text.split(",") if v]
    bad = [n for n in names if n not in CONFIGS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown method {bad[0] if bad else text!r}; allowed: {', '.join(CONFIGS)}")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=_positive_ints, default=[10, 100, 1000, 10000],
                        help="comma-separated inner step counts (default 10,100,1000,10000)")
    parser.add_argument("--methods", type=_names, default=["maml", "adjoint", "adjoint-sqrt", "adjoint-c64"],
                        help=f"comma-separated, from: {', '.join(CONFIGS)}")
    parser.add_argument("--shots", type=int, default=100, help="support and query points (default 100)")
    parser.add_argument("--hidden", type=int, default=32, help="hidden width of the 2-layer tanh MLP (default 32)")
    parser.add_argument("--step-size", type=float, default=0.01, help="inner step size (default 0.01)")
    parser.add_argument("--solver", choices=["euler", "midpoint", "rk4"], default="rk4")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    parser.add_argument("--device", type=_device, default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="timed runs per measurement, the fastest counts (default 3)")
    parser.add_argument("--time-budget", type=float, default=60.0,
                        help="stop repeating once a measurement's timed runs pass this many seconds (default 60)")
    parser.add_argument("--maml-max-steps", type=int, default=None,
                        help="skip maml above this many steps (its memory grows linearly)")
    parser.add_argument("--memory-budget", type=float, default=None, metavar="MB",
                        help="refuse an unrolled row (maml, conv4-maml, head-maml) whose peak memory, extrapolated"
                             " from its two largest measured step counts, exceeds this many MB")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the rows as JSON to this file")
    parser.add_argument("--meta-step", action="store_true",
                        help="time a whole meta-step of the paper's setting instead (meta-batch 5, --shots support and"
                             " query points, float64), with the MLP's losses stacked and, as before, vmapped")
    parser.add_argument("--peers", action="store_true",
                        help="instead: the kit beside higher, TorchOpt and torchdiffeq (odeint, odeint_adjoint) on"
                             " the same task, each row's time, peak memory and error to the exact gradient"
                             " (peers are the optional [peers] extra; missing ones are skipped)")
    parser.add_argument("--widgets", action="store_true",
                        help="instead: build each notebook widget app with FAST settings and time 10 moves of each"
                             " control across its range (build time, redraw median and worst)")
    parser.add_argument("--domain", default="CosMixture2D", help="--meta-step: the synthetic domain (default CosMixture2D)")


def run_meta_step(args) -> list[dict]:
    rows = []
    for name in META_STEP_CONFIGS:
        for losses in ("vmapped", "stacked"):
            cfg = dict(kind="meta-step", name=name, losses=losses, domain=args.domain, shots=args.shots,
                       device=args.device, repeat=max(args.repeat, 5), seed=args.seed)
            row = {**cfg, **run_worker(cfg)}
            rows.append(row)
            print(f"  {name:>12} {losses:>8}: " + (f"{row['time_s']:.3f} s" if "time_s" in row else row["error"]),
                  file=sys.stderr, flush=True)
    if args.out:
        from .io import write_json_atomic

        write_json_atomic(args.out, rows)
    return rows


UNROLLED = ("maml", "conv4-maml", "head-maml")  # every state kept: memory linear in the steps


def predicted_peak(rows: list[dict], name: str, steps: int) -> float | None:
    """``name``'s peak memory (MB) at ``steps``, extrapolated along the line through its two measured rows with
    the most steps; None with fewer than two (nothing is refused before its growth is measured)."""
    done = sorted((r["steps"], r["peak_mb"]) for r in rows if r["name"] == name and "peak_mb" in r)
    if len(done) < 2:
        return None
    (n0, m0), (n1, m1) = done[-2:]
    return m1 + (m1 - m0) / (n1 - n0) * (steps - n1)


def run(args) -> list[dict]:
    rows = []
    for steps in args.steps:
        for name in args.methods:
            cfg = dict(name=name, steps=steps, shots=args.shots, hidden=args.hidden, step_size=args.step_size,
                       solver=args.solver, dtype=args.dtype, device=args.device, repeat=args.repeat,
                       time_budget=args.time_budget, seed=args.seed)
            if name == "maml" and args.maml_max_steps is not None and steps > args.maml_max_steps:
                rows.append({**cfg, "error": f"skipped (over --maml-max-steps {args.maml_max_steps})"})
                continue
            predicted = predicted_peak(rows, name, steps) if name in UNROLLED else None
            if args.memory_budget is not None and predicted is not None and predicted > args.memory_budget:
                rows.append({**cfg, "predicted_mb": predicted, "error": (
                    f"refused: {predicted:,.0f} MB predicted > the {args.memory_budget:,.4g} MB budget")})
                print(f"  {name:>22} steps={steps:>6}: {rows[-1]['error']}", file=sys.stderr, flush=True)
                continue
            row = {**cfg, **run_worker(cfg)}
            rows.append(row)
            print(f"  {name:>22} steps={steps:>6}: " + (
                f"{row['time_s']:.3f} s, {row['peak_mb']:.1f} MB" if "time_s" in row else row["error"]),
                file=sys.stderr, flush=True)
    if args.out:
        from .io import write_json_atomic

        write_json_atomic(args.out, rows)
    return rows


def report(args) -> str:
    """Run the measurements and return the header line and the Markdown table."""
    import torch

    if args.peers:
        head = (f"# torch {torch.__version__}, cpu, float64, an Alpine2D task (standardised), MLP"
                f" 2-{args.hidden}-{args.hidden}-1 tanh, {args.shots} support / {args.shots} query points, step size {args.step_size}, {torch.get_num_threads()} threads,"
                f" each row in a fresh process (fastest of {args.repeat})")
        return head + "\n" + peers_table(run_peers(args))
    if args.widgets:
        head = (f"# torch {torch.__version__}, cpu, {torch.get_num_threads()} threads: widget apps as the notebooks"
                f" build them with FAST = True; each control moved across its range")
        rows = widget_latencies()
        if args.out:
            from .io import write_json_atomic

            write_json_atomic(args.out, rows)
        return head + "\n" + widget_table(rows)
    if args.meta_step:
        head = (f"# torch {torch.__version__}, {args.device}, float64, {args.domain} {args.shots}/{args.shots},"
                f" meta-batch 5, MLP 2 x 32 tanh, rk4 steps of 0.01, reg 1, {torch.get_num_threads()} threads")
        return head + "\n" + meta_step_table(run_meta_step(args))
    if all(CONFIGS[n].get("images") for n in args.methods):
        task = "Conv-4 (64 filters, float32), a 5-way 1-shot episode of 28 x 28 glyphs, 15 queries a class"
    else:
        task = (f"{args.dtype}, MLP 2-{args.hidden}-{args.hidden}-1 tanh, {args.shots} support / {args.shots} query"
                " points" + (" (Conv-4 rows: a 5-way 1-shot episode, float32)" if any(
                    CONFIGS[n].get("images") for n in args.methods) else ""))
    budget = f", memory budget {args.memory_budget:,.4g} MB" if args.memory_budget is not None else ""
    head = (f"# torch {torch.__version__}, {args.device}, solver {args.solver}, {task}, "
            f"step size {args.step_size}, {torch.get_num_threads()} threads{budget}")
    return head + "\n" + table(run(args))


def main(argv=None) -> int:
    from .cli import OneLineParser

    parser = OneLineParser(prog="python -m amaml_lab.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-stream", action="store_true", help=argparse.SUPPRESS)
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.worker_stream:
        _serve_stream()
        return 0
    if args.worker:
        cfg = json.loads(args.worker)
        kinds = {"meta-step": measure_meta_step, "peer": measure_peer}
        print(json.dumps(kinds.get(cfg.get("kind"), measure)(cfg)))
        return 0
    print(report(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
