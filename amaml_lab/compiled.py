"""The compiled path (``meta_gradient(..., compile=True)``): a flat loss's gradient, its Hessian-vector products and
whole fixed-grid solver steps, each one ``torch.compile`` graph (inductor: C++ on a CPU, Triton on a GPU).

The functions here are pure torch.func code written once: a step is :func:`amaml_lab.flow.step_function` on a
:class:`~amaml_lab.flow.GradientFlow`, so a compiled step is the eager step's arithmetic, fused.  What compiles:

* many forward steps in one graph (:func:`forward_steps`) and their pullbacks in another (:func:`pullback_steps`):
  a ``scan`` over the step's graph, which inductor compiles once and loops over, so one call, not one a step.
  The number of steps is part of the graph's shapes, so only a solve over the whole grid takes it (one length a
  run): the discrete adjoint's forward solve and sweep without checkpoints, and every graph-free forward solve
  that keeps every state or only the last (the continuous adjoint's, the first-order methods', iMAML's); the
  pieces of a checkpointed solve, of many lengths, take a graph a step;
* a forward step of the flow, u_{k+1} from u_k: the solver's stages and their sum in one graph, where the eager
  path makes a gradient call a stage and the arithmetic between them op by op.  ``method="maml"`` back-propagates
  through these graphs: autograd runs each step's compiled backward, which keeps the stages' activations (no
  step is recomputed);
* its pullback, a -> (J^T a, the step's share of dL/dtheta through reg) for the one-step map's Jacobian J, one
  graph (reverse over reverse through the stages): the discrete adjoint's step;
* the continuous adjoint's backward steps, a few to a graph (:func:`amaml_lab.metagrad.fields.continuous_steps`);
* a gradient, an HVP (reverse over reverse), the HVPs of many vectors at one state and of one vector each at
  many states (``vmap``): what the grid adjoint, iMAML and the rest call.

Each graph compiles on its first call, once per process, shape and solver: the loss is an argument, so a new
task's loss (a new closure of the same code over new data) reuses the graph.  Compiling takes seconds to minutes
(inductor keeps what it built in an on-disk cache, so the next process compiles faster), so a short call is
faster eager and ``compile`` is off unless asked for.  Where compilation is not available (no C compiler, an
operation dynamo cannot trace), a graph that fails twice runs eagerly from then on; the first such failure warns
once (:class:`CompileFallbackWarning`, one line).
"""

from __future__ import annotations

import warnings

import torch
from torch._higher_order_ops import scan  # torch's loop primitive (no public name in torch 2.13)

from .flow import STAGES, GradientFlow, step_function
from .functional import Derivatives


class CompileFallbackWarning(RuntimeWarning):
    """compile=True could not compile (the reason in one line): the same functions run eagerly."""


class _Gradient:
    """The one thing :class:`GradientFlow` asks of its derivatives inside a compiled step: a gradient with graph."""

    def __init__(self, loss):
        self.grad_graph = torch.func.grad(loss)


def pure_flow(loss, theta, reg: float, mask) -> GradientFlow:
    """The flow's field -grad loss(u) - reg (u - theta) as a pure function (torch.func's gradient)."""
    return GradientFlow(_Gradient(loss), theta, reg, graph=True, mask=mask)


def forward_step(loss, solver: str, y, t0, t1, theta, reg: float, mask):
    """u_{k+1}: one ``solver`` step of du/dt = -grad loss(u) - reg (u - theta) (masked) from t0 to t1."""
    return step_function(solver)(pure_flow(loss, theta, reg, mask), t0, t1, y)


def pullback(loss, solver: str, u, a, t0, t1, theta, reg: float, mask):
    """(J^T a, (d u_{k+1} / d theta)^T a) of the step from u; ``a`` one vector or rows (then row by row)."""
    _, back = torch.func.vjp(lambda x, th: forward_step(loss, solver, x, t0, t1, th, reg, mask), u, theta)
    return torch.func.vmap(back)(a) if a.dim() == 2 else back(a)


def _scan(body, init, xs, reverse: bool = False):
    """torch's ``scan`` inside a graph being compiled; eagerly (a graph that failed to compile), the same loop in
    Python.  ``body(carry, x) -> (carry, out)`` with ``out`` a tensor; returns (carry, the outs stacked)."""
    if torch.compiler.is_compiling():
        return scan(body, init, xs, reverse=reverse)
    rows = list(zip(*(x.unbind(0) for x in xs))) if isinstance(xs, tuple) else xs.unbind(0)
    carry, outs = init, [None] * len(rows)
    for k in reversed(range(len(rows))) if reverse else range(len(rows)):
        carry, outs[k] = body(carry, rows[k])
    return carry, torch.stack(outs)


def _pairs(times):
    """The steps' (t_k, t_{k+1}) as the rows of a (K, 2) tensor: what a scan hands each step."""
    return torch.stack([times[:-1], times[1:]], 1)


def forward_steps(loss, solver: str, y, times, theta, reg: float, mask, every: bool = True):
    """u_0 = y, u_1 .. u_K: ``solver`` steps over the K + 1 ``times``, as the rows of a (K + 1, P) tensor; with
    ``every=False`` only u_0 and u_K (2, P), the others never stored."""

    def step(x, t):
        x = forward_step(loss, solver, x, t[0], t[1], theta, reg, mask)
        return x, x.clone() if every else x.new_zeros(())  # a scan's output may not alias its carry

    last, states = _scan(step, y, _pairs(times))
    return torch.cat([y[None], states]) if every else torch.stack([y, last])


def pullback_steps(loss, solver: str, states, a, times, theta, reg: float, mask):
    """(a_0, the sum of the steps' shares of dL/dtheta through reg): :func:`pullback` of the K steps over the
    K + 1 ``times`` from a = a_K down, at the states u_0 .. u_{K-1} (the rows of ``states``)."""

    def back(carry, xs):
        a, q = carry
        u, t = xs
        a, share = pullback(loss, solver, u, a, t[0], t[1], theta, reg, mask)
        return (a, q + share), a.new_zeros(())

    (a, q), _ = _scan(back, (a, torch.zeros_like(a)), (states, _pairs(times)), reverse=True)
    return a, q


def gradient(loss, u):
    return torch.func.grad(loss)(u)


def hvp(loss, u, v):
    """(grad loss(u), H(u) v): reverse over reverse (H is symmetric, so v^T H is H v).  Forward over reverse
    (``jvp`` of ``grad``) is the eager ``func`` back end's; inductor fails on it inside some losses."""
    g, back = torch.func.vjp(torch.func.grad(loss), u)
    return g, back(v)[0]


def hvp_rows(loss, u, V):
    """(grad loss(u), H(u) v for every row v of V): one gradient, its pullback vmapped over the rows."""
    g, back = torch.func.vjp(torch.func.grad(loss), u)
    return g, torch.func.vmap(back)(V)[0]


def hvp_each(loss, U, V):
    """(grad at u_i, H(u_i) v_i) for the rows of U and V."""
    return torch.func.vmap(lambda u, v: hvp(loss, u, v))(U, V)


_COMPILED: dict = {}
_BROKEN: dict = {}  # the functions whose compilation failed in this process, with the reason
VARIANTS = 64  # graphs kept per function: one per shape, solver, reg and mask met in a process
# inductor's options by device: on a CPU its C++ wrapper (a graph's kernels called from C++, not Python: about a
# tenth off a small graph's call); elsewhere its defaults (CUDA graphs are not used: no GPU has checked them)
OPTIONS = {"cpu": {"cpp_wrapper": True}}


ATEN_TANH = True  # False (set before the first compile) keeps inductor's own tanh: benchmarks/tanh_before_after.py
_ATEN_TANH: list = []  # [True] once the compiled graphs call ATen's tanh (see _tanh_by_aten), [False] if that failed


def _tanh_by_aten() -> None:
    """On a CPU, inductor's own float64 tanh (Sleef's vectorised routine, fused into its loops) takes about three
    times ATen's (MKL's vector math): a third of a forward step's time and an eighth of a pullback's in the paper's
    setting (``benchmarks/cpu-profile-meta-step.md``).  From the first compile on, the process's graphs call ATen's
    tanh as an extern kernel instead: the eager path's kernel, so the same values.  Once per process; where
    inductor's internals differ from torch 2.13's, its own tanh stays.  Inductor's on-disk cache does not key on
    this choice: graphs it compiled before keep theirs until it is cleared."""
    if _ATEN_TANH:
        return
    try:
        from torch._inductor import lowering

        tanh = torch.ops.aten.tanh.default
        own = lowering.lowerings.pop(tanh)
        try:
            lowering.make_fallback(tanh, warn=False)
        except Exception:
            lowering.lowerings[tanh] = own
            raise
        _ATEN_TANH.append(True)
    except Exception:  # another torch: nothing changes
        _ATEN_TANH.append(False)
        return
    import logging

    # with the C++ wrapper inductor calls an extern kernel without a C shim through its proxy executor, and logs
    # so for every graph: expected here, not news to a user
    logging.getLogger("torch._inductor.ir").addFilter(lambda record: "aten.tanh.default" not in record.getMessage())


def _cache_scans() -> None:
    """Inductor's on-disk caches leave out a graph with a ``scan`` (torch 2.13 marks the operator uncacheable), so
    every process would compile the many-step graphs afresh (10 to 25 s here) and ``amaml-lab warm`` could not pay
    it ahead.  The caches' key holds the scan's body (its code and constants: a body that differs misses), so the kit
    marks the operator cacheable, keyed by torch's version (inductor's ``unsafe_marked_cacheable_functions``)."""
    import torch._inductor.config as inductor

    inductor.unsafe_marked_cacheable_functions.setdefault("torch.ops.higher_order.scan", torch.__version__)


def tanh_kernel() -> str:
    """Which tanh this process's compiled CPU graphs call: ``"aten"`` (ATen's, see :func:`_tanh_by_aten`) or
    ``"inductor"`` (its own: no CPU graph compiled yet, or another torch)."""
    return "aten" if _ATEN_TANH == [True] else "inductor"


def _allow_variants() -> None:
    """Let dynamo keep :data:`VARIANTS` graphs of a function (its default, 8, would send a process that meets
    more problems, a test suite, back to eager without a word)."""
    import torch._dynamo.config as config

    config.recompile_limit = max(config.recompile_limit, VARIANTS)


def run(fn, *args):
    """``fn(*args)`` through its compiled graph (``fn`` a pure torch.func function, compiled on its first call);
    eagerly once compiling it has failed twice (a first failure may be another process writing the same kernel
    into inductor's shared cache at that moment).  The first such failure in a process warns, once."""
    if fn not in _BROKEN:
        device = next((a.device.type for a in args if torch.is_tensor(a)), "cpu")
        compiled = _COMPILED.get((fn, device))
        if compiled is None:
            _allow_variants()
            _cache_scans()
            if device == "cpu" and ATEN_TANH:
                _tanh_by_aten()
            compiled = _COMPILED[fn, device] = torch.compile(
                fn, fullgraph=True, dynamic=False, options=OPTIONS.get(device)
            )
        for attempt in (1, 2):
            try:
                return compiled(*args)
            except Exception as err:  # dynamo and inductor raise many types; the eager call re-raises the user's own
                if attempt == 2:
                    _BROKEN[fn] = f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"
                    if len(_BROKEN) == 1:
                        warnings.warn(
                            f"compile=True: torch.compile failed ({_BROKEN[fn]}); running {fn.__name__}"
                            " eagerly instead",
                            CompileFallbackWarning,
                            stacklevel=3,
                        )
    return fn(*args)


def compile_failed() -> str | None:
    """Why compiling a graph failed in this process (None while every one works): ``stats["compiled"]``."""
    return next(iter(_BROKEN.values()), None)


def cache_folder() -> str:
    """Where inductor keeps what it compiled (``TORCHINDUCTOR_CACHE_DIR``, by default under the temporary folder)."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    return cache_dir()


def cache_counts() -> tuple[int, int]:
    """(graphs loaded from inductor's cache, graphs compiled) by this process so far."""
    from torch._dynamo.utils import counters

    found = counters["inductor"]
    return int(found["fxgraph_cache_hit"]), int(found["fxgraph_cache_miss"])


def _apart(y, theta):
    """``y``, or a copy where it is ``theta`` itself (a solve's first step): aliased inputs would make dynamo
    compile a second graph."""
    return y.clone() if y.data_ptr() == theta.data_ptr() else y


class CompiledDerivatives(Derivatives):
    """:class:`~amaml_lab.functional.Derivatives` (the ``func`` back end) whose products and steps are compiled;
    the same counts.  ``step`` and ``pullback`` are the whole-step graphs the fixed-grid solve and the discrete
    adjoint use."""

    def __init__(self, loss):
        super().__init__(loss, "func")

    def grad(self, u):
        self.grad_evals += 1
        return run(gradient, self.loss, u.detach())

    def hvp(self, u, v):
        self.grad_evals += 1
        self.hvp_evals += 1
        return run(hvp, self.loss, u.detach(), v.detach())

    def hvp_rows(self, u, V):
        self.grad_evals += 1
        self.hvp_evals += V.shape[0]
        return run(hvp_rows, self.loss, u.detach(), V.detach())

    def hvp_each(self, U, V):
        self.grad_evals += U.shape[0]
        self.hvp_evals += U.shape[0]
        return run(hvp_each, self.loss, U.detach(), V.detach())

    def linearize(self, u):
        self.grad_evals += 1
        return CompiledLinearization(self, u)

    def run(self, fn, *args):
        """``fn(loss, *args)`` compiled: a higher layer's pure step (the continuous adjoint's) on this loss."""
        return run(fn, self.loss, *args)

    def count(self, grads: int, hvps: int) -> None:
        self.grad_evals += grads
        self.hvp_evals += hvps

    def step(self, solver: str, y, t0, t1, theta, reg: float, mask):
        """One step's graph; differentiable where ``y`` (or ``theta``) requires grad: then autograd runs the
        graph's compiled backward, which keeps the stages' activations instead of recomputing them."""
        self.grad_evals += STAGES[solver]
        if torch.is_grad_enabled() and (y.requires_grad or theta.requires_grad):
            self.hvp_evals += STAGES[solver]  # as the eager grad_graph counts: each stage's backward an HVP
        return run(forward_step, self.loss, solver, _apart(y, theta), t0, t1, theta, reg, mask)

    def steps(self, solver: str, y, times, theta, reg: float, mask, every: bool = True):
        """The states over ``times`` (:func:`forward_steps`; ``every=False``: the first and the last), one graph;
        not differentiable (the forward solve of an adjoint, of a first-order method, of iMAML)."""
        self.grad_evals += STAGES[solver] * (times.shape[0] - 1)
        return run(forward_steps, self.loss, solver, _apart(y.detach(), theta), times, theta, reg, mask, every)

    def pullbacks(self, solver: str, states, a, times, theta, reg: float, mask):
        """The transposes of the steps over ``times`` (:func:`pullback_steps`), one graph."""
        n = (times.shape[0] - 1) * STAGES[solver] * (a.shape[0] if a.dim() == 2 else 1)
        self.count(n, n)
        return run(pullback_steps, self.loss, solver, states.detach(), a.detach(), times, theta, reg, mask)

    def pullback(self, solver: str, u, a, t0, t1, theta, reg: float, mask):
        self.grad_evals += STAGES[solver] * (a.shape[0] if a.dim() == 2 else 1)
        self.hvp_evals += STAGES[solver] * (a.shape[0] if a.dim() == 2 else 1)
        return run(pullback, self.loss, solver, u.detach(), a.detach(), t0, t1, theta, reg, mask)


class CompiledLinearization:
    """A state's gradient, and H v for any v there, by the compiled graphs (the interface of
    :class:`~amaml_lab.functional.Linearization`)."""

    def __init__(self, d: CompiledDerivatives, u):
        self.d, self.u = d, u.detach()
        self.grad = run(gradient, d.loss, self.u)

    def hvp(self, v):
        self.d.hvp_evals += 1
        return run(hvp, self.d.loss, self.u, v.detach())[1]

    def hvp_rows(self, V):
        self.d.hvp_evals += V.shape[0]
        return run(hvp_rows, self.d.loss, self.u, V.detach())[1]


__all__ = [
    "ATEN_TANH",
    "CompileFallbackWarning",
    "CompiledDerivatives",
    "CompiledLinearization",
    "compile_failed",
    "forward_step",
    "forward_steps",
    "gradient",
    "hvp",
    "hvp_each",
    "hvp_rows",
    "pullback",
    "pullback_steps",
    "pure_flow",
    "run",
    "tanh_kernel",
]
