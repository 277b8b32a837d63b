"""Meta-training: outer steps on the meta-batch's mean meta-gradient, checkpointed so that nothing is lost.

:func:`meta_train` takes outer steps on the mean meta-gradient of each meta-batch (from
:func:`~amaml_lab.metagrad.meta_gradient_batch`, any method, or COMLN's head-only gradient) and writes an atomic
checkpoint every ``checkpoint_every`` meta-steps: theta, the outer optimiser's state, the episode generator's
state and the step count, so a resumed run ends bit for bit where an uninterrupted one does and a kill loses at
most the steps since the last checkpoint (with ``compile``, to rounding: the meta-step from which the compiled
graphs take over depends on how fast they compile elsewhere; ``compile_wait`` keeps it bit for bit).
:func:`batch_gradient` is one meta-step's gradient, shared with the benchmark.
The inner problem is the flow of 1/2 MSE(support) + reg/2 |u - theta|^2 for ``inner_steps`` steps
of ``step_size``; the outer objective is the plain query MSE (the reference code also adds the proximal term to
its validation loss; the kit does not: the meta-objective is the query error, and the closed-form tests with
reg > 0 in tests/engine/test_exact_quadratic.py pin that).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import torch

from ..compiled import CompileFallbackWarning, cache_counts, compile_failed
from ..io import save_torch_atomic
from ..metagrad import comln_task, meta_gradient, meta_gradient_batch
from ..metagrad.dispatch import flow_reg
from ..models import stacked_forward
from ..procs import start_python
from ..progress import progress
from ..tasks.domains import load_domain
from .builders import build_model, losses_for, on_device
from .config import RunConfig, use_deterministic


class Diverged(FloatingPointError):
    """A meta-step produced a NaN or Inf loss or gradient; the last good checkpoint is kept."""


def comln_batch_gradient(model, theta: dict, support, query, cfg: RunConfig, step_size: float | None = None):
    """COMLN's meta-gradient of a meta-batch (mean over episodes) and the mean query loss: per episode, the head's
    flow on the embeddings, by the adjoint.

    The embedding (``features.*``) is evaluated once per episode; the head
    adapts by gradient flow; :func:`~amaml_lab.metagrad.meta_gradient` with
    method "comln" gives the meta-gradient for the head's start and for the
    embeddings' outputs, which back-propagation carries into the embedding.
    Returns (meta-gradient, mean query loss, mean dL/dT); the last is None
    unless ``cfg.learn_horizon``.  ``step_size`` overrides ``cfg.step_size``
    (the learned horizon divided by the steps).
    """
    features = {k[len("features.") :]: v for k, v in theta.items() if k.startswith("features.")}
    grads = {k: torch.zeros_like(v) for k, v in theta.items()}
    losses, horizon_grad = [], 0.0
    size = support[0].shape[0]
    for b in range(size):
        params = {k: v.detach().requires_grad_(True) for k, v in features.items()}
        fs = torch.func.functional_call(model.features, params, (support[0][b],))
        fq = torch.func.functional_call(model.features, params, (query[0][b],))
        sl, ql, th, adapt = comln_task(
            fs.detach(),
            support[1][b],
            fq.detach(),
            query[1][b],
            theta["head.weight"].detach(),
            theta["head.bias"].detach(),
        )
        r = meta_gradient(
            sl,
            ql,
            th,
            method="comln",
            steps=cfg.inner_steps,
            step_size=step_size or cfg.step_size,
            solver=cfg.solver,
            reg=cfg.reg,
            adapt=adapt,
            learn_horizon=cfg.learn_horizon,
            **cfg.options,
        )
        if cfg.learn_horizon:
            horizon_grad += r.horizon_grad / size
        back = torch.autograd.grad(
            [fs, fq], list(params.values()), [r.grad["support_features"], r.grad["query_features"]]
        )
        for (k, _), g in zip(params.items(), back):
            grads["features." + k] += g / size
        grads["head.weight"] += r.grad["weight"] / size
        grads["head.bias"] += r.grad["bias"] / size
        losses.append(r.query_loss)
    return grads, sum(losses) / len(losses), horizon_grad if cfg.learn_horizon else None


def batch_gradient(
    cfg: RunConfig,
    model,
    theta: dict,
    support,
    query,
    losses=None,
    stacked: bool | None = None,
    horizon: float | None = None,
    compile: bool | None = None,
) -> tuple[dict, float, float | None]:
    """One meta-step's gradient: (mean meta-gradient of the meta-batch, mean query loss, dL/dT or None).

    ``support`` and ``query`` are the meta-batch on the run's device.  ``losses`` (support, query) default to the
    run's (:func:`~amaml_lab.training.builders.losses_for`); ``stacked`` says whether they take the whole meta-batch at
    once (default: whether the model can).  ``horizon`` is COMLN's current T (learned or fixed); ``compile``
    overrides ``cfg.compile``.
    """
    if cfg.method == "comln":
        horizon = horizon if horizon is not None else cfg.inner_steps * cfg.step_size
        return comln_batch_gradient(model, theta, support, query, cfg, step_size=horizon / cfg.inner_steps)
    support_loss, query_loss = losses or losses_for(cfg, model)
    stacked = stacked_forward(model) is not None if stacked is None else stacked
    r = meta_gradient_batch(
        support_loss,
        query_loss,
        {k: v.detach() for k, v in theta.items()},
        support,
        query,
        method=cfg.method,
        steps=cfg.inner_steps,
        step_size=cfg.step_size,
        solver=cfg.solver,
        reg=flow_reg(cfg.method, cfg.reg),
        stacked_losses=stacked,
        compile=cfg.compile if compile is None else compile,
        **cfg.options,
    )
    return r.grad, r.query_loss, None


class _Compiling:
    """``cfg.compile`` in a run.  The graphs compile once in another process (:func:`compile_graphs` on a copy of
    the first meta-batch), which fills inductor's on-disk cache while this one takes meta-steps eagerly at full
    speed; once it has exited, this process compiles the same graphs from that cache (seconds) and runs compiled.
    With ``local`` (``cfg.compile_wait``, or several ranks) it compiles here before the first meta-step, so every
    step is compiled.  ``record``: the meta-step it began at, the other process's seconds (and its error, if it
    failed: then this process compiles them itself), the meta-step from which it ran compiled, and ``cache``: the
    graphs inductor loaded from its cache and those it compiled (the other process's, or this one's)."""

    def __init__(self, local: bool):
        self.local, self.proc, self.started, self.before = local, None, None, None
        self.record = {"step": None, "elsewhere_s": None, "error": None, "compiled_from": None, "cache": None}

    @classmethod
    def for_run(cls, state, size: int):
        """This process's compile, its record kept with the run's state (None without cfg.compile)."""
        if not state.cfg.compile or state.cfg.method == "comln":
            return None
        compiling = cls(local=state.cfg.compile_wait or size > 1)
        state.compiles.append(compiling.record)
        return compiling

    def now(self, step: int, cfg: RunConfig, model, theta: dict, support, query) -> bool:
        """Whether this meta-step runs compiled (when it is the first, it compiles, from the cache if it can)."""
        r = self.record
        if r["compiled_from"] is None and r["step"] is None and not self.local:
            r["step"], self.started = step, time.perf_counter()
            self.proc = _launch(cfg, model, theta, support, query)
            return False
        if r["compiled_from"] is None and self.proc is not None:
            if self.proc.poll() is None:
                return False
            r["elsewhere_s"], r["error"] = time.perf_counter() - self.started, self.proc.failure()
            r["cache"] = self.proc.cache()
            if r["error"] is not None:
                warnings.warn(
                    f"--compile: the compiling process failed ({r['error']}); compiling here",
                    CompileFallbackWarning,
                    stacklevel=2,
                )
        if r["compiled_from"] is None:
            r["step"] = step if r["step"] is None else r["step"]
            r["compiled_from"] = step
            if r["cache"] is None:  # compiled here: what inductor loads or compiles is counted over this step
                self.before = cache_counts()
        return True

    def after_step(self) -> None:
        """After each meta-step: once the first compiled one has run, where this process compiled its graphs itself
        (``--compile-wait``, or after a failed compiling process), ``record["cache"]``: {"loaded", "compiled"}, the
        graphs inductor loaded from its cache and those it compiled (both 0: the process held them already)."""
        if self.before is not None:
            hits, misses = cache_counts()
            self.record["cache"] = {"loaded": hits - self.before[0], "compiled": misses - self.before[1]}
            self.before = None


class _Process:
    """The compiling process; ``failure``, once it has exited: None, or the last line it wrote to stderr (read
    from this side's handle: the process removes its folder when it ends)."""

    def __init__(self, folder: Path):
        self.err, self.out = open(folder / "stderr.txt", "w+"), open(folder / "stdout.txt", "w+")
        code = "import sys; from amaml_lab.training.train import compile_graphs; compile_graphs(sys.argv[1])"
        self.popen = start_python(["-c", code, str(folder / "batch.pt")], stdout=self.out, stderr=self.err)

    def cache(self) -> dict | None:
        """Once it has exited: {"loaded", "compiled"}, the graphs it found in inductor's cache and those it had to
        compile (all loaded: the setting was warm), or None when it did not say."""
        self.out.seek(0)
        lines = self.out.read().strip().splitlines()
        self.out.close()
        try:
            return json.loads(lines[-1]) if lines else None
        except json.JSONDecodeError:
            return None

    def poll(self):
        return self.popen.poll()

    def failure(self) -> str | None:
        self.err.seek(0)
        lines = self.err.read().strip().splitlines()
        self.err.close()
        if self.popen.returncode == 0:
            return None
        return lines[-1][:200] if lines else f"exit status {self.popen.returncode}"


def _launch(cfg: RunConfig, model, theta: dict, support, query) -> _Process:
    """Start compiling this run's graphs in another process, on copies of theta and the meta-batch."""
    folder = Path(tempfile.mkdtemp(prefix="amaml-lab-compile-"))
    save_torch_atomic(
        {
            "cfg": cfg,
            "model": model,
            "theta": {k: v.detach().clone() for k, v in theta.items()},
            "support": support,
            "query": query,
        },
        folder / "batch.pt",
    )
    return _Process(folder)


def compile_graphs(path) -> None:
    """The compiling process of a ``--compile`` run: one compiled meta-gradient on the saved meta-batch (which
    leaves its graphs in inductor's on-disk cache for the run to load)."""
    try:
        blob = torch.load(path, weights_only=False)
        batch_gradient(blob["cfg"], blob["model"], blob["theta"], blob["support"], blob["query"], compile=True)
    finally:
        shutil.rmtree(Path(path).parent, ignore_errors=True)
    failed = compile_failed()
    if failed:  # compiled.run fell back to eager: the cache holds nothing for the run to load
        raise SystemExit(f"compiling failed: {failed}")
    hits, misses = cache_counts()
    print(json.dumps({"loaded": hits, "compiled": misses}), flush=True)  # what the run records as its "cache"


class _State:
    """What meta-training carries from step to step and saves in a checkpoint."""

    def __init__(self, cfg: RunConfig, model):
        self.cfg = cfg
        self.theta = {k: v.detach().clone().requires_grad_(True) for k, v in model.named_parameters()}
        # COMLN's horizon T, meta-learned through log T when cfg.learn_horizon (else fixed at steps * step_size)
        self.log_horizon = torch.tensor(
            math.log(cfg.inner_steps * cfg.step_size), dtype=torch.float64, requires_grad=True
        )
        opt_cls = torch.optim.SGD if cfg.optimizer == "sgd" else torch.optim.Adam
        self.optimizer = opt_cls(
            [*self.theta.values(), *([self.log_horizon] if cfg.learn_horizon else [])], lr=cfg.meta_lr
        )
        self.gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.step, self.losses, self.seconds, self.evals = 0, [], [], []
        self.starts = []  # the meta-step each process began at
        self.compiles = []  # with cfg.compile, each process's _Compiling.record

    @property
    def horizon(self) -> float:
        return float(self.log_horizon.detach().exp())

    def restore(self, path: Path) -> None:
        """Continue from a checkpoint made with the same configuration (else a ValueError naming the fields)."""
        # on the CPU: the generator's state must stay a CPU tensor; parameters and optimiser state move to
        # theta's device as they are copied and loaded (Adam's step counters stay on the CPU)
        state = torch.load(path, weights_only=False, map_location="cpu")
        diff = self.cfg.differences(state["config"])
        if diff:
            raise ValueError(
                f"{path} was made with another configuration (differs in {', '.join(diff)});"
                " use a fresh --out or the same settings"
            )
        with torch.no_grad():
            for k, v in state["theta"].items():
                self.theta[k].copy_(v)
            self.log_horizon.copy_(state["log_horizon"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.gen.set_state(state["generator"])
        self.step, self.losses, self.seconds = state["meta_steps"], state["losses"], state["seconds"]
        self.evals = state.get("evals", [])
        self.starts = state.get("starts", [])
        self.compiles = state.get("compiles", [])

    def save(self, path: Path) -> None:
        save_torch_atomic(
            {
                "config": self.cfg.identity(),
                "theta": {k: v.detach().clone() for k, v in self.theta.items()},
                "log_horizon": self.log_horizon.detach().clone(),
                "optimizer": self.optimizer.state_dict(),
                "generator": self.gen.get_state(),
                "meta_steps": self.step,
                "losses": self.losses,
                "seconds": self.seconds,
                "evals": self.evals,
                "starts": self.starts,
                "compiles": self.compiles,
            },
            path,
        )

    def keep(self, out: Path) -> None:
        """With ``cfg.keep_every``, theta and the optimiser's state at this meta-step, kept for good in
        ``out/snapshots/meta-step-<step>.pt`` (the checkpoint is overwritten; these are what a later diagnosis
        reads)."""
        every = self.cfg.keep_every
        path = out / "snapshots" / f"meta-step-{self.step}.pt"
        if every and self.step % every == 0 and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            save_torch_atomic(
                {
                    "meta_step": self.step,
                    "theta": {k: v.detach().clone() for k, v in self.theta.items()},
                    "optimizer": self.optimizer.state_dict(),
                },
                path,
            )

    def apply(self, grad: dict, horizon_grad: float | None) -> None:
        """One outer step on ``grad`` (and, when learned, on log T: d L / d log T = T dL/dT); with
        ``cfg.normalize_grad``, on ``grad`` divided by its norm over all of theta."""
        scale = 1.0
        if self.cfg.normalize_grad:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grad.values()]))
            scale = 1.0 / float(norm) if float(norm) > 0 else 1.0
        for k, v in self.theta.items():
            v.grad = grad[k] * scale
        if self.cfg.learn_horizon and horizon_grad is not None:
            self.log_horizon.grad = torch.as_tensor(horizon_grad, dtype=torch.float64) * self.horizon
        self.optimizer.step()
        self.log_horizon.grad = None


def _mean_over_ranks(grad: dict, query_value: float, horizon_grad, cfg: RunConfig, rank: int, size: int):
    """The whole meta-batch's mean on every rank, from each rank's share: one all-reduce."""
    from . import distributed

    lo, hi = distributed.bounds(rank, size, cfg.meta_batch)
    keys = list(grad)
    extra = [torch.as_tensor(horizon_grad, dtype=torch.float64)] if horizon_grad is not None else []
    reduced = distributed.mean_over_ranks(
        [grad[k] for k in keys] + [torch.tensor(query_value, dtype=torch.float64)] + extra, hi - lo, cfg.meta_batch
    )
    return dict(zip(keys, reduced[: len(keys)])), float(reduced[len(keys)]), (reduced[-1] if extra else None)


def _check_finite(grad: dict, query_value: float, cfg: RunConfig, step: int, out: Path) -> None:
    # one host-device synchronisation for every parameter's gradient
    finite = math.isfinite(query_value) and bool(torch.stack([torch.isfinite(g).all() for g in grad.values()]).all())
    if not finite:
        raise Diverged(
            f"meta-step {step + 1} diverged (NaN or Inf loss or gradient); try a smaller"
            f" --step-size than {cfg.step_size} or a smaller --meta-lr than {cfg.meta_lr}."
            f" The last good checkpoint ({out / 'checkpoint.pt'}) is kept"
        )


def _meta_step(state: _State, model, domain, losses, out: Path, rank: int, size: int, compiling=None) -> float:
    """Draw a meta-batch, take its meta-gradient (all-reduced over ranks), check it, step; the query loss.
    ``compiling`` (a :class:`_Compiling`, with cfg.compile) says whether this step runs compiled."""
    from . import distributed

    cfg, started = state.cfg, time.perf_counter()
    # the reference protocol's fixed episode sequence is indexed by the step, so a resumed run continues it
    episode = {"episode": state.step * cfg.meta_batch} if cfg.protocol == "reference" else {}
    support, query = domain.train_batch(state.gen, cfg.meta_batch, cfg.shots, cfg.query, **episode)
    if size > 1:  # every rank drew the same batch; each keeps its slice of the tasks
        support = distributed.shard(support, rank, size, cfg.meta_batch)
        query = distributed.shard(query, rank, size, cfg.meta_batch)
    support, query = on_device(support, cfg), on_device(query, cfg)
    compiled = compiling.now(state.step, cfg, model, state.theta, support, query) if compiling else None
    grad, query_value, horizon_grad = batch_gradient(
        cfg, model, state.theta, support, query, losses, horizon=state.horizon, compile=compiled
    )
    if compiling:
        compiling.after_step()
    if size > 1:
        grad, query_value, horizon_grad = _mean_over_ranks(grad, query_value, horizon_grad, cfg, rank, size)
    _check_finite(grad, query_value, cfg, state.step, out)
    state.apply(grad, horizon_grad)
    state.step += 1
    state.losses.append(query_value)
    state.seconds.append(time.perf_counter() - started)
    return query_value


def meta_train(
    cfg: RunConfig,
    out,
    resume: bool = False,
    data_root=None,
    domain=None,
    show_progress: bool | None = None,
    on_checkpoint=None,
    on_eval=None,
) -> dict:
    """Run (or continue) meta-training to ``cfg.meta_steps``; returns {"theta", "meta_steps", "losses", "seconds",
    "domain", "model", "config", "evals", "horizon", "starts", "compiles"} (``starts``: the meta-step each process
    began at; ``compiles``: with cfg.compile, each process's :class:`_Compiling` record).

    ``on_checkpoint(step, losses, seconds, evals)`` is called after each checkpoint is written.
    ``on_eval(step, theta, model, domain, horizon=T)`` is called at step 0 and every ``cfg.eval_interval`` meta-steps
    (when > 0); what it returns is kept in order in ``evals`` and in the checkpoint, so a resumed run keeps the
    evaluations made before the kill.  Raises :class:`Diverged` on a non-finite loss or gradient.
    """
    from . import distributed

    cfg = cfg.resolved().check()
    if cfg.deterministic:
        use_deterministic()
    size, rank = distributed.world()
    if size > cfg.meta_batch:
        raise ValueError(
            f"{size} processes share a meta-batch of {cfg.meta_batch} tasks; use at most"
            f" {cfg.meta_batch} processes (--nproc) or a larger --meta-batch"
        )
    if rank != 0:  # rank 0 alone evaluates and writes
        on_checkpoint = on_eval = None
        show_progress = False
    out = Path(out)
    domain = domain or load_domain(
        cfg.domain,
        cfg.shots,
        cfg.query,
        data_root=data_root,
        tasks=cfg.tasks,
        pool=cfg.pool,
        bug_compatible=cfg.bug_compatible,
        ways=cfg.ways,
        subset=cfg.subset,
        protocol=cfg.protocol,
        validation=cfg.validation_characters,
    )
    model = build_model(cfg, getattr(domain, "in_features", None)).to(cfg.device)
    state = _State(cfg, model)
    if resume and (out / "checkpoint.pt").exists():
        state.restore(out / "checkpoint.pt")
    state.starts.append(state.step)

    def maybe_evaluate():  # after each meta-step (and at the start): a snapshot, an evaluation when due
        if rank == 0:
            state.keep(out)
        due = cfg.eval_interval and state.step % cfg.eval_interval == 0
        if on_eval is not None and due and not any(e["meta_step"] == state.step for e in state.evals):
            state.evals.append(
                on_eval(
                    state.step, {k: v.detach() for k, v in state.theta.items()}, model, domain, horizon=state.horizon
                )
            )

    maybe_evaluate()
    losses = losses_for(cfg, model)
    compiling = _Compiling.for_run(state, size)
    bar = progress(cfg.meta_steps, f"{cfg.method} {cfg.domain}", initial=state.step, enabled=show_progress)
    try:
        while state.step < cfg.meta_steps:
            query_value = _meta_step(state, model, domain, losses, out, rank, size, compiling)
            bar.update(1)
            bar.set_postfix(query_loss=f"{query_value:.4f}", refresh=False)
            maybe_evaluate()
            if (state.step % cfg.checkpoint_every == 0 or state.step == cfg.meta_steps) and rank == 0:
                state.save(out / "checkpoint.pt")
                if on_checkpoint is not None:
                    on_checkpoint(state.step, state.losses, state.seconds, state.evals)
    finally:
        bar.close()
    return {
        "theta": {k: v.detach() for k, v in state.theta.items()},
        "meta_steps": state.step,
        "losses": state.losses,
        "seconds": state.seconds,
        "domain": domain,
        "model": model,
        "config": cfg,
        "evals": state.evals,
        "horizon": state.horizon,
        "starts": state.starts,
        "compiles": state.compiles,
    }


__all__ = ["Diverged", "batch_gradient", "comln_batch_gradient", "meta_train"]
