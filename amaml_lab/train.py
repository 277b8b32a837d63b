"""Meta-training, evaluation and the files of a run (what ``amaml-lab run`` does).

:func:`meta_train` takes outer steps on the meta-batch's mean meta-gradient
(from :func:`~amaml_lab.metagrad.meta_gradient_batch`, any method) and writes
an atomic checkpoint every ``checkpoint_every`` meta-steps: theta, the outer
optimiser's state, the episode generator's state and the step count, so a
resumed run ends bit for bit where an uninterrupted one does and a kill loses
at most the steps since the last checkpoint.  :func:`evaluate` is the
reference's protocol: fine-tune a copy of theta on each meta-test task's
support set with Adam and log the RMSE on standardised targets (nRMSE) every
few iterations; :func:`evaluate_inner_loop` measures what the meta-gradient
optimises instead, the error after the run's own inner loop.  :func:`run` does
both and writes ``summary.json``, ``metrics.csv`` (the meta-training curve),
``eval.csv`` (the fine-tuning curve) and, with ``eval_interval``,
``evals.csv`` (every measure every ``eval_interval`` meta-steps, as the
reference evaluates every 100), each atomically.

The inner problem is the reference's: the flow of 1/2 MSE(support) + reg/2
|u - theta|^2 (reg = 1 by default) for ``inner_steps`` steps of ``step_size``;
the outer objective is the query MSE.  ``imaml`` uses its own proximal weight
``lam`` (2 by default) in place of ``reg``.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
import time
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path

import torch

from .flow import FIXED_SOLVERS, GradientFlow, solve, time_grid
from .functional import Derivatives, ParamSpec, flat_loss
from .io import save_torch_atomic, write_json_atomic, write_text_atomic
from .metagrad import METHODS, comln_task, meta_gradient, meta_gradient_batch
from .models import conv4, mlp, stacked_forward
from .progress import progress
from .tasks.domains import CLASSIFICATION, DOMAINS, check_domain, default_hidden, load_domain
from .tasks.synthetic import FAMILIES

OPTIMIZERS = ("sgd", "adam")
DTYPES = {"float64": torch.float64, "float32": torch.float32}
TRAIN_METHODS = tuple(METHODS)  # comln adapts a classifier's head: Omniglot only
HEAD = ("head.weight", "head.bias")
# what a field left at None becomes: the Adjoint MAML reference for regression; MAML / iMAML for Omniglot
DEFAULTS = {
    "regression": dict(step_size=0.01, reg=1.0, meta_lr=0.01, optimizer="sgd", meta_batch=5, dtype="float64",
                       eval_tasks=100, eval_steps=5000),
    "classification": dict(step_size=0.1, reg=0.0, meta_lr=1e-3, optimizer="adam", meta_batch=32, dtype="float32",
                           eval_tasks=600, eval_steps=0),
}
# fields that may change between a run and its --resume: they do not touch the meta-training arithmetic
RESUMABLE_CHANGES = ("meta_steps", "device", "eval_tasks", "eval_steps", "eval_every", "eval_lr",
                     "eval_weight_decay", "checkpoint_every", "eval_interval", "deterministic", "test_horizons")
# "kit": fresh episodes every meta-step, scaling fitted on meta-train tasks only (no meta-test leak);
# "reference": the Adjoint MAML code's pool of episodes drawn once per task and its scaling over all tasks
PROTOCOLS = ("kit", "reference")


def use_deterministic() -> None:
    """Deterministic kernels: a CUDA run (Omniglot's convolutions above all) then repeats, and resumes, bit for bit.

    On the CPU every kernel the kit uses is deterministic already.  On CUDA,
    cuDNN's convolution backward picks nondeterministic algorithms and
    convolutions and matrix products may use TF32; this turns both off
    (``torch.use_deterministic_algorithms``), at some cost in speed.
    """
    import os

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's deterministic workspace
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


class Diverged(FloatingPointError):
    """A meta-step produced a NaN or Inf loss or gradient; the last good checkpoint is kept."""


def check_device(device: str, dtype: str | None = None) -> str:
    """``device`` if this machine has it (and it computes ``dtype``), else a ValueError saying what it has."""
    if not isinstance(device, str) or not re.fullmatch(r"cpu|cuda(:\d+)?|mps", device):
        raise ValueError(f"device={device!r} is not known; allowed values: cpu, cuda, cuda:N, mps")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but this torch sees no CUDA GPU; use cpu")
    if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ValueError(f"device={device!r} but this machine has {count} CUDA GPU(s): use cuda:0 to cuda:{count - 1}")
    if device == "mps" and dtype == "float64":
        raise ValueError("device='mps' cannot compute in float64; pass --dtype float32 or use cpu")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device='mps' but this torch sees no Apple GPU; use cpu")
    return device


@dataclass
class RunConfig:
    """One meta-training run (the reference's settings by default)."""

    domain: str
    shots: int
    query: int
    inner_steps: int
    device: str = "cpu"
    method: str = "adjoint"
    meta_steps: int = 5000
    seed: int = 0
    step_size: float | None = None  # None: the domain's default (DEFAULTS)
    solver: str = "rk4"
    reg: float | None = None
    meta_batch: int | None = None
    meta_lr: float | None = None
    optimizer: str | None = None
    hidden: int | None = None  # None: 32 for synthetic domains, 40 for ratings, 64 filters for Omniglot
    dtype: str | None = None
    ways: int = 5  # Omniglot: classes per episode
    subset: str = "auto"  # Omniglot: "auto", "full", "small" or "demo" (generated glyphs)
    learn_horizon: bool = False  # comln: meta-learn T = inner_steps * step_size (through log T), as COMLN does
    tasks: int = 100
    pool: int = 1000
    bug_compatible: bool = False
    options: dict = field(default_factory=dict)  # the method's own (truncate, lam, cg_steps, checkpoints, ...)
    checkpoint_every: int = 100
    eval_tasks: int | None = None
    eval_steps: int | None = None
    eval_every: int = 10
    eval_lr: float = 1e-3
    eval_weight_decay: float = 1e-6
    eval_interval: int = 0  # meta-steps between evaluations during training (the reference: 100); 0: at the end only
    protocol: str = "kit"
    deterministic: bool = False  # CUDA: deterministic kernels and no TF32 (see use_deterministic)
    # regression: also the error after N inner steps (the run's step size, solver and reg) for each N here,
    # columns adapt<N> of tasks.csv: the cross-evaluation of a theta trained at one horizon and tested at others
    test_horizons: tuple = ()

    @property
    def classification(self) -> bool:
        return self.domain in CLASSIFICATION

    def resolved(self) -> "RunConfig":
        """A copy with every field left at None set to the domain's default."""
        check_domain(self.domain)
        defaults = DEFAULTS["classification" if self.classification else "regression"]
        filled = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        if self.hidden is None:
            filled["hidden"] = default_hidden(self.domain)
        return replace(self, **filled)

    def check(self):
        check_domain(self.domain)
        if self.method not in TRAIN_METHODS:
            raise ValueError(f"method={self.method!r} is not known; allowed values: {', '.join(TRAIN_METHODS)}")
        if self.method == "comln" and not self.classification:
            raise ValueError(f"method='comln' adapts a classifier's linear head; domain={self.domain!r} is a"
                             f" regression domain. Use it with {', '.join(CLASSIFICATION)}")
        if not isinstance(self.deterministic, bool):
            raise ValueError(f"deterministic must be True or False; got {self.deterministic!r}")
        if not isinstance(self.learn_horizon, bool):
            raise ValueError(f"learn_horizon must be True or False; got {self.learn_horizon!r}")
        if self.learn_horizon and self.method != "comln":
            raise ValueError("learn_horizon=True meta-learns COMLN's horizon; use it with method='comln'")
        unresolved = [k for k in (*DEFAULTS["regression"], "hidden") if getattr(self, k) is None]
        if unresolved:
            raise ValueError(f"{', '.join(unresolved)} left at None: call RunConfig.resolved() first")
        for name in ("shots", "query", "inner_steps", "meta_steps", "meta_batch", "tasks", "pool",
                     "checkpoint_every", "eval_tasks", "eval_every", "ways"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
        if not isinstance(self.test_horizons, (tuple, list)) or any(
                isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in self.test_horizons):
            raise ValueError(f"test_horizons must be a tuple of integers >= 0; got {self.test_horizons!r}")
        for name in ("eval_steps", "eval_interval"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0; got {value!r}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol={self.protocol!r} is not known; allowed values: {', '.join(PROTOCOLS)}")
        if self.protocol == "reference" and self.domain not in FAMILIES:
            raise ValueError(f"protocol='reference' reproduces the reference code's synthetic data; domain="
                             f"{self.domain!r} has only protocol='kit'. Use it with {', '.join(FAMILIES)}")
        for name in ("step_size", "meta_lr", "eval_lr"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number; got {value!r}")
        for name in ("reg", "eval_weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a number >= 0; got {value!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={self.optimizer!r} is not known; allowed values: {', '.join(OPTIMIZERS)}")
        if self.solver not in FIXED_SOLVERS:
            raise ValueError(f"solver={self.solver!r} is not known; allowed values: {', '.join(FIXED_SOLVERS)}"
                             " (a meta-batch shares one fixed grid)")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype={self.dtype!r} is not known; allowed values: {', '.join(DTYPES)}")
        if isinstance(self.hidden, bool) or not isinstance(self.hidden, int) or self.hidden < 1:
            raise ValueError(f"hidden must be an integer >= 1; got {self.hidden!r}")
        if self.classification and self.ways < 2:
            raise ValueError(f"ways must be an integer >= 2; got {self.ways!r}")
        allowed = METHODS[self.method].options
        for name in self.options:
            if name not in allowed:
                raise ValueError(f"option {name}={self.options[name]!r} is not known to method={self.method!r};"
                                 f" its options: {', '.join(allowed) or 'none'}")
        check_device(self.device, self.dtype)
        return self

    def identity(self) -> dict:
        """What a checkpoint must agree on to be resumed."""
        return {k: v for k, v in asdict(self).items() if k not in RESUMABLE_CHANGES}

    def differences(self, saved: dict, everything: bool = False) -> list[str]:
        """The identity fields in which a checkpoint's saved identity differs from this one; with
        ``everything``, every field, against a summary.json's config (compared as JSON reads them).

        A field the checkpoint does not name (it was added to the kit after the
        run started) counts as its default value, so older runs still resume.
        """
        defaults = {f.name: f.default for f in fields(self) if f.default is not MISSING}
        mine = self.identity()
        if everything:
            mine = json.loads(json.dumps(asdict(self)))
            defaults = json.loads(json.dumps(defaults))
        return sorted(k for k in mine if saved.get(k, defaults.get(k, MISSING)) != mine[k])


def _mse(model, scale: float = 1.0):
    forward = stacked_forward(model, transposed=True)  # points along the last dimension: the cheapest graph
    if forward is None:
        def loss(params, data):
            x, y = data
            return scale * ((torch.func.functional_call(model, params, (x,)) - y) ** 2).mean((-2, -1))

        return loss

    def stacked_loss(params, data):  # one task: a scalar; a stack of tasks: one loss per task
        x, y = data
        return scale * ((forward(params, x.mT) - y.mT) ** 2).mean((-2, -1))

    return stacked_loss


def _cross_entropy(model):
    def loss(params, data):
        x, y = data
        return torch.nn.functional.cross_entropy(torch.func.functional_call(model, params, (x,)), y)

    return loss


def build_model(cfg: RunConfig, in_features: int | None = None):
    """Conv-4 for Omniglot, else the tanh MLP with two hidden layers of ``cfg.hidden``."""
    cfg = cfg.resolved()
    if cfg.classification:
        return conv4(cfg.ways, hidden=cfg.hidden, dtype=DTYPES[cfg.dtype], seed=cfg.seed)
    return mlp(in_features, (cfg.hidden, cfg.hidden), 1, dtype=DTYPES[cfg.dtype], seed=cfg.seed)


def losses_for(cfg: RunConfig, model):
    """(support_loss, query_loss) of (params, data): cross-entropy for Omniglot, 1/2 MSE and MSE for regression.

    The regression losses also take a stack of tasks (parameters and data with
    a leading task dimension) and return one loss per task: see
    :func:`~amaml_lab.models.stacked_forward`.
    """
    if cfg.classification:
        return _cross_entropy(model), _cross_entropy(model)
    return _mse(model, 0.5), _mse(model)


def _to(data, cfg):
    """Inputs to the run's dtype and device; integer labels keep their type."""
    return tuple(t.to(cfg.device) if not t.is_floating_point() else t.to(cfg.device, DTYPES[cfg.dtype]) for t in data)


def comln_batch_gradient(model, theta: dict, support, query, cfg: RunConfig, step_size: float | None = None):
    """COMLN's meta-gradient of a meta-batch (mean over episodes) and the mean query loss: per episode, the head's flow on the embeddings, by the adjoint.

    The embedding (``features.*``) is evaluated once per episode; the head
    adapts by gradient flow; :func:`~amaml_lab.metagrad.meta_gradient` with
    method "comln" gives the meta-gradient for the head's start and for the
    embeddings' outputs, which back-propagation carries into the embedding.
    Returns (meta-gradient, mean query loss, mean dL/dT); the last is None
    unless ``cfg.learn_horizon``.  ``step_size`` overrides ``cfg.step_size``
    (the learned horizon divided by the steps).
    """
    features = {k[len("features."):]: v for k, v in theta.items() if k.startswith("features.")}
    grads = {k: torch.zeros_like(v) for k, v in theta.items()}
    losses, horizon_grad = [], 0.0
    size = support[0].shape[0]
    for b in range(size):
        params = {k: v.detach().requires_grad_(True) for k, v in features.items()}
        fs = torch.func.functional_call(model.features, params, (support[0][b],))
        fq = torch.func.functional_call(model.features, params, (query[0][b],))
        sl, ql, th, adapt = comln_task(fs.detach(), support[1][b], fq.detach(), query[1][b],
                                       theta["head.weight"].detach(), theta["head.bias"].detach())
        r = meta_gradient(sl, ql, th, method="comln", steps=cfg.inner_steps, step_size=step_size or cfg.step_size,
                          solver=cfg.solver, reg=cfg.reg, adapt=adapt, learn_horizon=cfg.learn_horizon, **cfg.options)
        if cfg.learn_horizon:
            horizon_grad += r.horizon_grad / size
        back = torch.autograd.grad([fs, fq], list(params.values()), [r.grad["support_features"], r.grad["query_features"]])
        for (k, _), g in zip(params.items(), back):
            grads["features." + k] += g / size
        grads["head.weight"] += r.grad["weight"] / size
        grads["head.bias"] += r.grad["bias"] / size
        losses.append(r.query_loss)
    return grads, sum(losses) / len(losses), horizon_grad if cfg.learn_horizon else None


def meta_train(cfg: RunConfig, out, resume: bool = False, data_root=None, domain=None,
               show_progress: bool | None = None, on_checkpoint=None, on_eval=None) -> dict:
    """Run (or continue) meta-training to ``cfg.meta_steps``; returns {"theta", "meta_steps", "losses", "domain", "model", "evals"}.

    ``on_checkpoint(step, losses, seconds, evals)`` is called after each checkpoint is
    written.  ``on_eval(step, theta, model, domain, horizon=T)`` is called at step 0 and
    every ``cfg.eval_interval`` meta-steps (when it is > 0); what it returns
    is kept in order in ``evals`` and in the checkpoint, so a resumed run keeps
    the evaluations made before the kill.  Raises :class:`Diverged` on a
    non-finite loss or gradient.
    """
    from . import distributed

    cfg = cfg.resolved().check()
    if cfg.deterministic:
        use_deterministic()
    size, rank = distributed.world()
    if size > cfg.meta_batch:
        raise ValueError(f"{size} processes share a meta-batch of {cfg.meta_batch} tasks; use at most"
                         f" {cfg.meta_batch} processes (--nproc) or a larger --meta-batch")
    if rank != 0:  # rank 0 alone evaluates and writes
        on_checkpoint = on_eval = None
        show_progress = False
    out = Path(out)
    ckpt_path = out / "checkpoint.pt"
    domain = domain or load_domain(cfg.domain, cfg.shots, cfg.query, data_root=data_root, tasks=cfg.tasks,
                                   pool=cfg.pool, bug_compatible=cfg.bug_compatible, ways=cfg.ways,
                                   subset=cfg.subset, protocol=cfg.protocol)
    model = build_model(cfg, getattr(domain, "in_features", None)).to(cfg.device)
    theta = {k: v.detach().clone().requires_grad_(True) for k, v in model.named_parameters()}
    # COMLN's horizon T, meta-learned through log T when cfg.learn_horizon (else fixed at steps * step_size)
    log_horizon = torch.tensor(math.log(cfg.inner_steps * cfg.step_size), dtype=torch.float64, requires_grad=True)
    opt_cls = torch.optim.SGD if cfg.optimizer == "sgd" else torch.optim.Adam
    optimizer = opt_cls([*theta.values(), *([log_horizon] if cfg.learn_horizon else [])], lr=cfg.meta_lr)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    step, losses, seconds = 0, [], []
    if resume and ckpt_path.exists():
        # on the CPU: the generator's state must stay a CPU tensor; parameters and optimiser state move to
        # theta's device as they are copied and loaded (Adam's step counters stay on the CPU)
        state = torch.load(ckpt_path, weights_only=False, map_location="cpu")
        diff = cfg.differences(state["config"])
        if diff:
            raise ValueError(f"{ckpt_path} was made with another configuration (differs in {', '.join(diff)});"
                             " use a fresh --out or the same settings")
        with torch.no_grad():
            for k, v in state["theta"].items():
                theta[k].copy_(v)
            log_horizon.copy_(state["log_horizon"])
        optimizer.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        step, losses, seconds = state["meta_steps"], state["losses"], state["seconds"]
        evals = state.get("evals", [])
    else:
        evals = []

    def maybe_evaluate():
        due = cfg.eval_interval and step % cfg.eval_interval == 0
        if on_eval is not None and due and not any(e["meta_step"] == step for e in evals):
            evals.append(on_eval(step, {k: v.detach() for k, v in theta.items()}, model, domain,
                                 horizon=float(log_horizon.detach().exp())))

    maybe_evaluate()
    support_loss, query_loss = losses_for(cfg, model)
    stacked = stacked_forward(model) is not None  # the MLP's losses take the whole meta-batch at once
    reg = 0.0 if cfg.method == "imaml" else cfg.reg
    bar = progress(cfg.meta_steps, f"{cfg.method} {cfg.domain}", initial=step, enabled=show_progress)
    try:
        while step < cfg.meta_steps:
            started = time.perf_counter()
            # the reference protocol's fixed episode sequence is indexed by the step, so a resumed run continues it
            episode = {"episode": step * cfg.meta_batch} if cfg.protocol == "reference" else {}
            support, query = domain.train_batch(gen, cfg.meta_batch, cfg.shots, cfg.query, **episode)
            if size > 1:  # every rank drew the same batch; each keeps its slice of the tasks
                support = distributed.shard(support, rank, size, cfg.meta_batch)
                query = distributed.shard(query, rank, size, cfg.meta_batch)
            if cfg.method == "comln":
                horizon = float(log_horizon.detach().exp())
                grad, query_value, horizon_grad = comln_batch_gradient(
                    model, theta, _to(support, cfg), _to(query, cfg), cfg, step_size=horizon / cfg.inner_steps)
                if cfg.learn_horizon:  # d L / d log T = T dL/dT
                    log_horizon.grad = torch.tensor(horizon * horizon_grad, dtype=torch.float64)
            else:
                r = meta_gradient_batch(support_loss, query_loss, {k: v.detach() for k, v in theta.items()},
                                        _to(support, cfg), _to(query, cfg), method=cfg.method, steps=cfg.inner_steps,
                                        step_size=cfg.step_size, solver=cfg.solver, reg=reg,
                                        stacked_losses=stacked, **cfg.options)
                grad, query_value = r.grad, r.query_loss
            if size > 1:  # the mean over the whole meta-batch on every rank: one all-reduce
                lo, hi = distributed.bounds(rank, size, cfg.meta_batch)
                keys = list(grad)
                extra = [log_horizon.grad] if log_horizon.grad is not None else []
                reduced = distributed.mean_over_ranks(
                    [grad[k] for k in keys] + [torch.tensor(query_value, dtype=torch.float64)] + extra,
                    hi - lo, cfg.meta_batch)
                grad = dict(zip(keys, reduced[:len(keys)]))
                query_value = float(reduced[len(keys)])
                if extra:
                    log_horizon.grad = reduced[-1]
            # one host-device synchronisation for every parameter's gradient
            finite = math.isfinite(query_value) and bool(torch.stack([torch.isfinite(g).all() for g in grad.values()]).all())
            if not finite:
                raise Diverged(f"meta-step {step + 1} diverged (NaN or Inf loss or gradient); try a smaller"
                               f" --step-size than {cfg.step_size} or a smaller --meta-lr than {cfg.meta_lr}."
                               f" The last good checkpoint ({out / 'checkpoint.pt'}) is kept")
            for k, v in theta.items():
                v.grad = grad[k].clone()
            optimizer.step()
            log_horizon.grad = None
            step += 1
            losses.append(query_value)
            seconds.append(time.perf_counter() - started)
            bar.update(1)
            bar.set_postfix(query_loss=f"{query_value:.4f}", refresh=False)
            maybe_evaluate()
            if (step % cfg.checkpoint_every == 0 or step == cfg.meta_steps) and rank == 0:
                save_torch_atomic({"config": cfg.identity(), "theta": {k: v.detach().clone() for k, v in theta.items()},
                                   "log_horizon": log_horizon.detach().clone(),
                                   "optimizer": optimizer.state_dict(), "generator": gen.get_state(),
                                   "meta_steps": step, "losses": losses, "seconds": seconds, "evals": evals},
                                  ckpt_path)
                if on_checkpoint is not None:
                    on_checkpoint(step, losses, seconds, evals)
    finally:
        bar.close()
    return {"theta": {k: v.detach() for k, v in theta.items()}, "meta_steps": step, "losses": losses,
            "seconds": seconds, "domain": domain, "model": model, "config": cfg, "evals": evals,
            "horizon": float(log_horizon.detach().exp())}


def evaluate(model, theta: dict, evalset, steps: int = 5000, every: int = 10, lr: float = 1e-3,
             weight_decay: float = 1e-6, show_progress: bool | None = None) -> dict:
    """Fine-tune theta on every meta-test task's support set with Adam; nRMSE on its target set every ``every`` steps.

    All tasks run at once (parameters stacked along a task dimension, the
    losses vmapped and summed): Adam and its weight decay act element-wise and
    the tasks share no parameter, so this equals fine-tuning each task alone
    (a test checks it).  Returns ``{"iterations", "nrmse" (tasks x logs)}``.
    """
    tasks = evalset.tasks
    ref = next(iter(theta.values()))
    params = {k: v.detach().expand(tasks, *v.shape).clone().requires_grad_(True) for k, v in theta.items()}

    def cast(data):
        return tuple(t.to(ref.device, ref.dtype) for t in data)

    (sx, sy), (tx, ty) = cast(evalset.support), cast(evalset.target)
    predict = torch.func.vmap(lambda p, x: torch.func.functional_call(model, p, (x,)))
    optimizer = torch.optim.Adam(params.values(), lr=lr, weight_decay=weight_decay)
    iterations, curves = [], []
    bar = progress(steps, "fine-tuning", enabled=show_progress, part=True)
    try:
        for it in range(steps + 1):
            if it % every == 0 or it == steps:
                with torch.no_grad():
                    curves.append(((predict(params, tx) - ty) ** 2).mean((1, 2)).sqrt().double().cpu())
                iterations.append(it)
            if it == steps:
                break
            optimizer.zero_grad()
            ((predict(params, sx) - sy) ** 2).mean((1, 2)).sum().backward()
            optimizer.step()
            bar.update(1)
    finally:
        bar.close()
    return {"iterations": iterations, "nrmse": torch.stack(curves, 1)}


def adapt_batch(support_loss, theta: dict, support, steps: int, step_size: float, solver: str = "rk4",
                reg: float = 0.0, keys=None) -> dict:
    """The inner loop of every task of a batch at once: the flow of the summed, vmapped support loss.

    ``support`` holds tensors with a leading task dimension; returns the adapted
    parameters stacked along it.  ``keys`` limits adaptation to those entries
    (COMLN's head).  No graph is kept: this is for evaluation.
    """
    return adapt_batch_at(support_loss, theta, support, [steps], step_size, solver, reg, keys)[0]


def adapt_batch_at(support_loss, theta: dict, support, horizons, step_size: float, solver: str = "rk4",
                   reg: float = 0.0, keys=None) -> list[dict]:
    """:func:`adapt_batch` after each number of steps in ``horizons`` (any order; 0 is theta), from one solve."""
    size = support[0].shape[0]
    stacked = {k: v.detach().expand(size, *v.shape).clone() for k, v in theta.items()}
    spec = ParamSpec.of(stacked)
    start = spec.flatten(stacked)
    batched = torch.func.vmap(support_loss)
    d = Derivatives(flat_loss(lambda p: batched(p, support).sum(), spec, "support_loss"))
    mask = None
    if keys is not None:
        mask = spec.flatten({k: torch.full_like(v, float(k in keys)) for k, v in stacked.items()})
    horizons = list(horizons)
    if not horizons or any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in horizons):
        raise ValueError(f"horizons must be step counts >= 0; got {horizons!r}")
    save = [0, *sorted(set(horizons) - {0})]
    grid = time_grid(max(save[-1], 1), step_size, start.dtype, start.device)
    with torch.no_grad():
        states = solve(GradientFlow(d, start, reg, mask=mask), start, grid, save, solver)
    return [spec.unflatten(states[save.index(n)]) for n in horizons]


def _inner_reg(cfg: RunConfig) -> float:
    """The proximal weight of the run's inner problem: imaml's own ``lam`` (2 unless given), else ``cfg.reg``."""
    if cfg.method == "imaml":
        return float(cfg.options.get("lam", METHODS["imaml"].options["lam"]))
    return cfg.reg


def _inner_loop_outputs(model, theta: dict, evalset, cfg: RunConfig, chunk: int, show_progress, what: str):
    """(model outputs on each chunk's target inputs after the run's own inner loop on its support set, targets)."""
    support_loss, _ = losses_for(cfg, model)
    predict = torch.func.vmap(lambda p, x: torch.func.functional_call(model, p, (x,)))
    keys = HEAD if cfg.method == "comln" else None
    bar = progress(evalset.tasks, what, enabled=show_progress, part=True)
    try:
        for a in range(0, evalset.tasks, chunk):
            support = _to(tuple(t[a:a + chunk] for t in evalset.support), cfg)
            x, y = _to(tuple(t[a:a + chunk] for t in evalset.target), cfg)
            adapted = adapt_batch(support_loss, theta, support, cfg.inner_steps, cfg.step_size, cfg.solver,
                                  _inner_reg(cfg), keys)
            with torch.no_grad():
                yield predict(adapted, x), y
            bar.update(len(y))
    finally:
        bar.close()


def evaluate_episodes(model, theta: dict, evalset, cfg: RunConfig, chunk: int = 50,
                      show_progress: bool | None = None) -> torch.Tensor:
    """Accuracy on each meta-test episode's query set after the run's own inner loop on its support set."""
    outputs = _inner_loop_outputs(model, theta, evalset, cfg, chunk, show_progress, "meta-test episodes")
    return torch.cat([(out.argmax(-1) == y).double().mean(1).cpu() for out, y in outputs])


def evaluate_inner_loop(model, theta: dict, evalset, cfg: RunConfig, chunk: int = 50,
                        show_progress: bool | None = None) -> torch.Tensor:
    """nRMSE of each meta-test task on its target points after the run's own inner loop on its support set.

    This is what the run's meta-gradient optimises (the flow of ``inner_steps``
    steps from theta, with the run's proximal weight), unlike :func:`evaluate`'s
    long Adam fine-tuning.
    """
    outputs = _inner_loop_outputs(model, theta, evalset, cfg, chunk, show_progress, "inner loops")
    return torch.cat([((out - y) ** 2).mean((1, 2)).sqrt().double().cpu() for out, y in outputs])


def _spread(values: torch.Tensor) -> dict:
    """Mean, standard error and standard deviation (the reference reports the last) over tasks."""
    mean, se = mean_se(values)
    return {"mean": mean, "se": se, "std": float(values.std()) if values.numel() > 1 else float("nan")}


# Adam fine-tuning iterations reported beside the reference's long run (where the run fine-tunes longer)
FEW_ITERATIONS = (10, 100, 1000)


def regression_evaluation(model, theta: dict, evalset, cfg: RunConfig, show_progress: bool | None = None) -> dict:
    """Every number a regression run reports about theta, each per meta-test task, and the fine-tuning curve.

    ``theta``: nRMSE at theta itself; ``inner``: after the run's own inner loop;
    ``ft10``, ``ft100``, ``ft1000``: after 10, 100 and 1,000 Adam iterations (where logged and fewer than
    ``cfg.eval_steps``);
    ``finetuned``: after ``cfg.eval_steps`` (the reference's protocol);
    ``adapt<N>``: after N steps of the run's inner loop, for each N > 0 in
    ``cfg.test_horizons`` (N = 0 is ``theta``).
    """
    curve = evaluate(model, theta, evalset, steps=cfg.eval_steps, every=cfg.eval_every, lr=cfg.eval_lr,
                     weight_decay=cfg.eval_weight_decay, show_progress=show_progress)
    its = curve["iterations"]
    per_task = {"theta": curve["nrmse"][:, 0], "inner": evaluate_inner_loop(model, theta, evalset, cfg,
                                                                             show_progress=show_progress)}
    for n in FEW_ITERATIONS:
        if n in its and n < its[-1]:
            per_task[f"ft{n}"] = curve["nrmse"][:, its.index(n)]
    per_task["finetuned"] = curve["nrmse"][:, -1]
    for n in sorted(set(cfg.test_horizons) - {0}):
        per_task[f"adapt{n}"] = evaluate_inner_loop(model, theta, evalset, replace(cfg, inner_steps=n),
                                                    show_progress=show_progress)
    return {"per_task": per_task, "curve": curve}


def evaluation_row(step: int, per_task: dict) -> dict:
    """One row of evals.csv: the meta-step and, per measure, mean, s.e. and std over the meta-test tasks."""
    row = {"meta_step": step}
    for name, values in per_task.items():
        for stat, v in _spread(values).items():
            row[f"{name}_{stat}"] = v
    return row


def mean_se(values: torch.Tensor) -> tuple[float, float]:
    """Mean and standard error (sample standard deviation / sqrt(n)) of a 1-D tensor."""
    n = values.numel()
    se = float(values.std() / math.sqrt(n)) if n > 1 else float("nan")
    return float(values.mean()), se


def final_metrics(evaluation: dict, losses: list, per_task: dict | None = None) -> dict:
    """The numbers a run reports: nRMSE after fine-tuning (mean, s.e. over tasks), at theta itself, and the best.

    With ``per_task`` (from :func:`regression_evaluation`) also the standard
    deviations over tasks and the nRMSE after the run's own inner loop
    (``nrmse_inner``) and after a few fine-tuning iterations (``nrmse_ft10``, ...).
    """
    curve = evaluation["nrmse"]
    means = curve.mean(0)
    best = int(torch.argmin(means))
    last, last_se = mean_se(curve[:, -1])
    start, start_se = mean_se(curve[:, 0])
    tail = losses[-100:]
    return {"nrmse": last, "nrmse_se": last_se, "nrmse_at_theta": start, "nrmse_at_theta_se": start_se,
            "nrmse_best": float(means[best]), "nrmse_best_se": mean_se(curve[:, best])[1],
            "best_iteration": evaluation["iterations"][best], "eval_tasks": curve.shape[0],
            "eval_steps": evaluation["iterations"][-1],
            "meta_query_loss": sum(tail) / len(tail) if tail else float("nan"),
            **(_per_task_metrics(per_task) if per_task else {})}


def _per_task_metrics(per_task: dict) -> dict:
    out = {"nrmse_std": _spread(per_task["finetuned"])["std"], "nrmse_at_theta_std": _spread(per_task["theta"])["std"]}
    for name, values in per_task.items():
        if name not in ("theta", "finetuned"):
            spread = _spread(values)
            out.update({f"nrmse_{name}": spread["mean"], f"nrmse_{name}_se": spread["se"],
                        f"nrmse_{name}_std": spread["std"]})
    return out


def classification_metrics(accuracies: torch.Tensor, losses: list) -> dict:
    """Mean accuracy over the meta-test episodes with its 95% confidence interval (1.96 standard errors)."""
    mean, se = mean_se(accuracies)
    tail = losses[-100:]
    return {"accuracy": mean, "accuracy_ci95": 1.96 * se, "eval_tasks": accuracies.numel(),
            "meta_query_loss": sum(tail) / len(tail) if tail else float("nan")}


def _csv(header, rows) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _summary(cfg, step, status, final=None, seconds=None, extra=None) -> dict:
    from . import __version__

    per_step = sum(seconds) / len(seconds) if seconds else None
    return {"config": asdict(cfg), "meta_steps": step, "status": status, "final": final,
            "seconds_per_meta_step": per_step, "versions": {"amaml_lab": __version__, "torch": torch.__version__},
            **(extra or {})}


def run(cfg: RunConfig, out, resume: bool = False, data_root=None, show_progress: bool | None = None) -> dict:
    """Meta-train to ``cfg.meta_steps`` (continuing ``out`` when ``resume``), evaluate, write the run's files.

    ``out`` gets ``checkpoint.pt``, ``summary.json`` (config, ``meta_steps``,
    ``status``, ``final``), ``metrics.csv`` (meta-step, query loss, seconds),
    ``eval.csv`` (fine-tuning iteration, nRMSE mean and s.e.; for Omniglot each
    episode's accuracy) and, for regression, ``tasks.csv`` (each meta-test
    task's nRMSE at θ, after the run's own inner loop, after 10, 100 and all
    fine-tuning iterations), each written atomically.  Returns the summary.
    """
    from . import distributed

    cfg = cfg.resolved().check()
    out = Path(out)
    if not resume and (out / "checkpoint.pt").exists():
        raise ValueError(f"{out} already holds a run (checkpoint.pt); pass --resume to continue it or choose"
                         " another --out")
    size, rank = distributed.world()
    distributed.barrier()  # every rank has looked before rank 0 writes
    last = {"step": 0}

    def write_progress(step, losses, seconds, evals=()):
        last["step"] = step
        write_text_atomic(out / "metrics.csv", _csv(["meta_step", "query_loss", "seconds"],
                                                    [(i + 1, f"{loss!r}", f"{s:.6f}")
                                                     for i, (loss, s) in enumerate(zip(losses, seconds))]))
        write_json_atomic(out / "summary.json", _summary(cfg, step, "training", seconds=seconds))

    cache = {}

    def on_eval(step, theta, model, domain, horizon):
        if "evalset" not in cache:
            cache["evalset"] = domain.eval_set(cfg.eval_tasks, cfg.shots, cfg.query)
        if cfg.classification:  # the inner loop to the horizon reached so far (COMLN may learn it)
            accuracies = evaluate_episodes(model, theta, cache["evalset"],
                                           replace(cfg, step_size=horizon / cfg.inner_steps), show_progress=False)
            return evaluation_row(step, {"accuracy": accuracies})
        result = regression_evaluation(model, theta, cache["evalset"], cfg, show_progress=False)
        cache["last"] = (step, result)  # the final evaluation reuses the one at the last meta-step
        return evaluation_row(step, result["per_task"])

    def write_evals(rows):
        if rows:
            header = list(rows[0])
            write_text_atomic(out / "evals.csv", _csv(header, [[r[h] if isinstance(r[h], int) else f"{r[h]!r}"
                                                                for h in header] for r in rows]))

    def checkpointed(step, losses, seconds, evals):
        write_progress(step, losses, seconds)
        write_evals(evals)

    try:
        trained = meta_train(cfg, out, resume=resume, data_root=data_root, show_progress=show_progress,
                             on_checkpoint=checkpointed, on_eval=on_eval)
    except Diverged as err:
        if rank == 0:
            write_json_atomic(out / "summary.json", _summary(cfg, last["step"], "diverged", extra={"error": str(err)}))
        raise
    if rank != 0:  # rank 0 evaluates and writes the run's files
        return {"rank": rank, "world_size": size, "meta_steps": trained["meta_steps"]}
    evalset = trained["domain"].eval_set(cfg.eval_tasks, cfg.shots, cfg.query)
    if cfg.classification:
        learned = replace(cfg, step_size=trained["horizon"] / cfg.inner_steps)  # the (possibly learned) horizon
        accuracies = evaluate_episodes(trained["model"], trained["theta"], evalset, learned,
                                       show_progress=show_progress)
        final = classification_metrics(accuracies, trained["losses"])
        final["subset"] = trained["domain"].subset
        if cfg.method == "comln":
            final["horizon"] = trained["horizon"]
        write_text_atomic(out / "eval.csv", _csv(["episode", "accuracy"],
                                                 [(i, f"{a!r}") for i, a in enumerate(accuracies.tolist())]))
    else:
        step, result = cache.get("last", (None, None))
        if step != trained["meta_steps"]:
            result = regression_evaluation(trained["model"], trained["theta"], evalset, cfg,
                                           show_progress=show_progress)
        evaluation = result["curve"]
        final = final_metrics(evaluation, trained["losses"], result["per_task"])
        curve = evaluation["nrmse"]
        rows = []
        for j, it in enumerate(evaluation["iterations"]):
            mean, se = mean_se(curve[:, j])
            rows.append((it, f"{mean!r}", f"{se!r}"))
        write_text_atomic(out / "eval.csv", _csv(["iteration", "nrmse_mean", "nrmse_se"], rows))
        # every meta-test task's numbers: runs on the same tasks compare task by task (experiments.paired)
        names, ids = list(result["per_task"]), evalset.ids()
        write_text_atomic(out / "tasks.csv", _csv(["task", "task_id", *names], [
            (i, ids[i], *(f"{float(result['per_task'][n][i])!r}" for n in names)) for i in range(curve.shape[0])]))
    write_evals(trained["evals"])
    summary = _summary(cfg, trained["meta_steps"], "done", final=final, seconds=trained["seconds"],
                       extra={"world_size": size})
    write_json_atomic(out / "summary.json", summary)
    return summary


__all__ = ["RunConfig", "meta_train", "evaluate", "evaluate_episodes", "adapt_batch", "adapt_batch_at", "run", "final_metrics",
           "classification_metrics", "comln_batch_gradient", "mean_se", "Diverged", "DOMAINS", "TRAIN_METHODS", "check_device",
           "evaluate_inner_loop", "regression_evaluation", "use_deterministic", "PROTOCOLS"]


def episode_check(cfg: RunConfig, methods=("maml", "adjoint", "adjoint (discrete)", "fomaml", "reptile", "imaml"),
                  data_root=None, seed: int = 0) -> list[dict]:
    """Each method's meta-gradient on one meta-train episode of ``cfg``'s domain, against the exact one.

    The model is the run's at initialisation (``cfg.seed``), the inner loop the
    run's (steps, step size, solver, reg; float64 for the comparison), the
    episode the first task of a batch drawn with ``seed``.  Rows of
    :func:`amaml_lab.metagrad.compare_methods`: ``rel_error`` and ``cosine`` to
    back-propagation through the same steps.  What the notebooks assert, so
    that a wrong meta-gradient fails them whatever the training noise.
    """
    from .metagrad import compare_methods
    from .metagrad.compare import DEFAULT_METHODS

    cfg = cfg.resolved().check()
    domain = load_domain(cfg.domain, cfg.shots, cfg.query, data_root=data_root, tasks=cfg.tasks, pool=cfg.pool,
                         ways=cfg.ways, subset=cfg.subset)
    model = build_model(cfg, getattr(domain, "in_features", None)).to(torch.float64)
    support, query = domain.train_batch(torch.Generator().manual_seed(seed), 1, cfg.shots, cfg.query)

    def one(batch):
        return tuple(t[0].to(torch.float64) if t.is_floating_point() else t[0] for t in batch)

    support, query = one(support), one(query)
    s_loss, q_loss = losses_for(cfg, model)
    theta = {k: v.detach().clone() for k, v in model.named_parameters()}
    wanted = [m for m in DEFAULT_METHODS if m[0] in methods]  # by label (see DEFAULT_METHODS)
    return compare_methods(lambda p: s_loss(p, support), lambda p: q_loss(p, query), theta, [cfg.inner_steps],
                           step_size=cfg.step_size, methods=wanted, solver=cfg.solver,
                           reg=0.0 if cfg.classification else cfg.reg)
