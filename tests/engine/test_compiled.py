"""compile=True (amaml_lab.compiled): the same meta-gradients as the eager path to 1e-12 in float64, for every
fixed-grid solver, scheme, reg, checkpointing and the batch; maml's against its closed form on a quadratic; one
graph for every task and step (no recompiling); a clear fallback where compiling fails.

Each graph compiles on its first call (seconds here), so the problems share one shape."""

import warnings

import pytest
import torch

from amaml_lab import compiled, meta_gradient, meta_gradient_batch
from amaml_lab.functional import flat_grad
from amaml_lab.training.config import RunConfig

DT = torch.float64
N = 6


def _environment_compiles() -> str | None:
    """None where torch.compile works at all here (a C++ compiler and Python's headers for inductor); else why."""
    try:
        torch.compile(lambda x: x * 2 + 1, fullgraph=True)(torch.ones(3, dtype=DT))
    except Exception as err:  # the environment, not the kit: the kit's graphs are then untestable here
        return f"{type(err).__name__}: {' '.join(str(err).split())[:120]}"
    return None


CANNOT = _environment_compiles()
needs_compile = pytest.mark.skipif(CANNOT is not None, reason=f"torch.compile does not work here: {CANNOT}")


def _task(seed: int):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(N, N, generator=g, dtype=DT)
    a = a @ a.T / N + 0.5 * torch.eye(N, dtype=DT)
    c, d = torch.randn(N, generator=g, dtype=DT), torch.randn(N, generator=g, dtype=DT)

    def support(u):
        return 0.5 * (u - c) @ a @ (u - c) + 0.1 * torch.tanh(u).pow(2).sum()

    def query(u):
        return 0.5 * ((u - d) ** 2).sum() + 0.1 * torch.sin(u).sum()

    return support, query, torch.randn(N, generator=g, dtype=DT)


def _both(method, seed=0, **kw):
    support, query, theta = _task(seed)
    kw = {"steps": 12, "step_size": 0.05, "solver": "rk4", **kw}
    eager = meta_gradient(support, query, theta, method=method, **kw)
    comp = meta_gradient(support, query, theta, method=method, compile=True, **kw)
    return eager, comp


def _close(eager, comp, tol=1e-12):
    g, ref = flat_grad(comp.grad), flat_grad(eager.grad)
    assert float((g - ref).norm() / ref.norm()) < tol
    assert float((comp.adapted - eager.adapted).norm() / eager.adapted.norm()) < tol
    assert comp.query_loss == pytest.approx(eager.query_loss, rel=1e-12)


@needs_compile
@pytest.mark.parametrize("solver", ["euler", "midpoint", "rk4"])
def test_compiled_maml_is_maml(solver):
    eager, comp = _both("maml", solver=solver)
    _close(eager, comp)
    assert comp.stats["compiled"] is True
    # back-propagation through the steps' graphs: no step recomputed (the discrete adjoint's sweep would count
    # each step's gradients twice and its pullbacks as HVPs)
    assert (comp.stats["grad_evals"], comp.stats["hvp_evals"]) == (eager.stats["grad_evals"], eager.stats["hvp_evals"])


@needs_compile
def test_the_cpu_graphs_call_atens_tanh():
    """Inductor's own float64 tanh is about three times ATen's on a CPU (benchmarks/cpu-profile-meta-step.md): once a
    CPU graph has compiled, the graphs call ATen's, and a graph with tanh gives the eager values to rounding."""
    x = torch.linspace(-4, 4, 101, dtype=DT)
    got = compiled.run(_tanh_sum, x)
    assert compiled.tanh_kernel() == "aten"
    assert torch.allclose(got, torch.tanh(x).sum() * 2, rtol=1e-15, atol=0)


def _tanh_sum(x):
    return torch.tanh(x).sum() * 2


@pytest.mark.parametrize("scheme", ["continuous", "discrete", "grid"])
def test_compiled_adjoint_is_the_adjoint(scheme):
    eager, comp = _both("adjoint", scheme=scheme)
    _close(eager, comp)


@pytest.mark.parametrize("solver", ["euler", "midpoint", "rk4"])
def test_compiled_continuous_adjoint_in_chunks(solver):
    """Backward steps go CHUNK to a graph, each state's linearization serving the stages on it (rk4: a step's
    first and last; euler and midpoint: its first); 7 steps leave a shorter chunk: the eager numbers all the same."""
    from amaml_lab.metagrad import sweeps

    assert sweeps.CHUNK > 1 and 7 % sweeps.CHUNK
    eager, comp = _both("adjoint", solver=solver, steps=7)
    _close(eager, comp)


@pytest.mark.parametrize("method,options", [("maml", {}), ("adjoint", {}), ("adjoint", {"scheme": "discrete"})])
def test_compiled_with_reg(method, options):
    _close(*_both(method, reg=0.7, **options))


@pytest.mark.parametrize(
    "method,options",
    [
        ("maml", {"checkpoints": 3}),
        ("adjoint", {"checkpoints": 4}),
        ("adjoint", {"scheme": "discrete", "checkpoints": "sqrt"}),
    ],
)
def test_compiled_with_checkpoints(method, options):
    eager, comp = _both(method, **options)
    _close(eager, comp)
    assert comp.stats["stored_states"] < 13  # fewer than the 13 states of 12 steps


def test_compiled_maml_matches_the_closed_form_of_euler_on_a_quadratic():
    """u_n - c = (I - hA)^n (theta - c), so dL_Q/dtheta = ((I - hA)^n)^T (u_n - d) for L_Q = |u - d|^2 / 2."""
    g = torch.Generator().manual_seed(3)
    a = torch.randn(N, N, generator=g, dtype=DT)
    a = a @ a.T / N
    c, d, theta = (torch.randn(N, generator=g, dtype=DT) for _ in range(3))
    h, n = 0.05, 12
    m = torch.linalg.matrix_power(torch.eye(N, dtype=DT) - h * a, n)
    u_n = c + m @ (theta - c)
    r = meta_gradient(
        lambda u: 0.5 * (u - c) @ a @ (u - c),
        lambda u: 0.5 * ((u - d) ** 2).sum(),
        theta,
        method="maml",
        steps=n,
        step_size=h,
        solver="euler",
        compile=True,
    )
    assert torch.allclose(r.grad, m.T @ (u_n - d), rtol=1e-12, atol=1e-14)


@needs_compile
def test_compiled_batch_is_the_eager_batch():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(3, 4, generator=g, dtype=DT)
    xs, ys = torch.randn(5, 8, 3, generator=g, dtype=DT), torch.randn(5, 8, 4, generator=g, dtype=DT)

    def loss(params, data):
        return 0.5 * ((torch.tanh(data[0] @ params) - data[1]) ** 2).mean()

    kw = {"method": "maml", "steps": 10, "step_size": 0.1, "solver": "rk4"}
    eager = meta_gradient_batch(loss, loss, w, (xs, ys), (xs.flip(1), ys.flip(1)), **kw)
    comp = meta_gradient_batch(loss, loss, w, (xs, ys), (xs.flip(1), ys.flip(1)), compile=True, **kw)
    assert comp.stats["vectorized"] and comp.stats["compiled"] is True
    assert torch.allclose(comp.grads, eager.grads, rtol=1e-12, atol=1e-15)


@needs_compile
def test_a_new_task_reuses_the_graphs():
    """New data (a new closure of the same loss code) and every step of the grid run one graph each: a time
    passed as a Python float, or the loss compiled into the graph, would compile again."""
    from torch._dynamo.utils import counters

    _both("adjoint", seed=0, scheme="discrete")
    before = counters["stats"]["unique_graphs"]
    _both("adjoint", seed=5, scheme="discrete")
    assert counters["stats"]["unique_graphs"] == before


def _graphs_called(monkeypatch) -> list:
    called, real = [], compiled.run

    def spy(fn, *args):
        called.append(fn.__name__)
        return real(fn, *args)

    monkeypatch.setattr(compiled, "run", spy)
    return called


@needs_compile
@pytest.mark.parametrize("checkpoints", [None, 6])
def test_the_discrete_adjoint_takes_its_steps_in_two_graphs(monkeypatch, checkpoints):
    """Every state kept: the forward solve is one scan graph and the backward sweep another (a call a step, 2 x 12
    here, cost a profile's third of the meta-step: benchmarks/cpu-scan-before-after.md), the eager numbers and
    counts.  Checkpointed: its pieces have many lengths, and a scan's graph has its length, so a graph a step (a
    compile a length would cost more than the calls)."""
    called = _graphs_called(monkeypatch)
    eager, comp = _both("adjoint", scheme="discrete", checkpoints=checkpoints)
    _close(eager, comp)
    assert (comp.stats["grad_evals"], comp.stats["hvp_evals"]) == (eager.stats["grad_evals"], eager.stats["hvp_evals"])
    graphs = {name: called.count(name) for name in set(called) - {"gradient"}}
    if checkpoints is None:
        assert graphs == {"forward_steps": 1, "pullback_steps": 1}
    else:
        assert "forward_steps" not in graphs and "pullback_steps" not in graphs and graphs["pullback"] == 12


@needs_compile
def test_the_many_step_graphs_go_into_inductors_cache():
    """A graph with a scan is cached on disk like any other (torch leaves it out unless told), so a later process
    and ``amaml-lab warm`` load the many-step graphs instead of compiling them again."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()  # the graphs compile again in this process: each goes through inductor's cache
    before = dict(counters["inductor"])
    _both("adjoint", seed=4, scheme="discrete", step_size=0.04)
    after = counters["inductor"]
    assert after["fxgraph_cache_bypass"] == before.get("fxgraph_cache_bypass", 0)
    looked_up = sum(after[k] - before.get(k, 0) for k in ("fxgraph_cache_hit", "fxgraph_cache_miss"))
    assert looked_up >= 2  # at least the forward and the backward scan


@needs_compile
@pytest.mark.parametrize("method,options", [("fomaml", {}), ("reptile", {"reg": 0.4}), ("imaml", {})])
def test_a_first_order_or_implicit_loop_is_one_graph(monkeypatch, method, options):
    """The loops that keep only their end (the first-order methods', iMAML's) take it in one scan that stores no
    other state: the eager numbers, and no graph a step."""
    called = _graphs_called(monkeypatch)
    eager, comp = _both(method, **options)
    _close(eager, comp)
    assert called.count("forward_steps") == 1 and "forward_step" not in called


def test_compile_failure_falls_back_with_one_warning(monkeypatch):
    def broken(fn, **kwargs):
        def run(*args):
            raise RuntimeError("no C compiler\nhere")

        return run

    monkeypatch.setattr(compiled, "_COMPILED", {})
    monkeypatch.setattr(compiled, "_BROKEN", {})
    monkeypatch.setattr(torch, "compile", broken)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        eager, comp = _both("maml")
        _both("adjoint")
        discrete = _both("adjoint", scheme="discrete")  # the scans' steps as a Python loop
    _close(*discrete, tol=1e-15)
    fallbacks = [w for w in seen if issubclass(w.category, compiled.CompileFallbackWarning)]
    assert len(fallbacks) == 1 and "no C compiler here" in str(fallbacks[0].message)
    _close(eager, comp, tol=1e-15)
    assert comp.stats["compiled"] == "RuntimeError: no C compiler here"


def test_compile_must_be_a_bool():
    support, query, theta = _task(0)
    with pytest.raises(ValueError, match="compile must be True or False; got 'yes'"):
        meta_gradient(support, query, theta, method="maml", steps=2, step_size=0.1, compile="yes")


def test_a_run_resumes_with_compile_switched():
    cfg = RunConfig(domain="Sinusoid", shots=10, query=10, inner_steps=10, compile=True)
    saved = RunConfig(domain="Sinusoid", shots=10, query=10, inner_steps=10).identity()
    assert cfg.differences(saved) == []


@pytest.mark.parametrize("scheme", ["continuous", "discrete"])
def test_compiled_rows_are_the_eager_rows(monkeypatch, scheme):
    """The horizon explorer's sweep (a row per horizon, rows joining on the way down) on the compiled graphs."""
    from amaml_lab.metagrad.core import build_problem, query_value_and_grad
    from amaml_lab.metagrad.sweeps import adjoint_rows

    support, query, theta = _task(2)
    out = []
    called = _graphs_called(monkeypatch)
    for comp in (False, True):
        p = build_problem(
            support,
            query,
            theta,
            steps=12,
            step_size=0.05,
            solver="rk4",
            reg=0.0,
            rtol=1e-7,
            atol=1e-9,
            hvp="autograd",
            compile=comp,
        )
        states = p.solve(p.flow(), p.theta, range(13))
        ends = [12, 7, 3]
        cot = torch.stack([query_value_and_grad(p, states[k])[1] for k in ends])
        out.append(adjoint_rows(p, states, ends, cot, scheme))
    assert torch.allclose(out[1], out[0], rtol=1e-12, atol=1e-15)
    if scheme == "discrete":  # compiled: a graph from each join down to the next, 12 -> 7 -> 3 -> 0
        assert called.count("pullback_steps") == 3 and "pullback" not in called


def _masked_task(seed=0):
    """_task's losses on a dict theta {"frozen": 2 entries, "adapted": 4}: the inner loop adapts only "adapted"."""
    support, query, theta = _task(seed)

    def joined(p):
        return torch.cat([p["frozen"], p["adapted"]])

    return (lambda p: support(joined(p))), (lambda p: query(joined(p))), {"frozen": theta[:2], "adapted": theta[2:]}


@needs_compile
@pytest.mark.parametrize(
    "method, options",
    [
        ("maml", {}),
        ("maml", {"checkpoints": 4}),
        ("adjoint", {"scheme": "continuous"}),
        ("adjoint", {"scheme": "discrete"}),
        ("adjoint", {"scheme": "grid", "checkpoints": 4}),
    ],
)
def test_compiled_equals_eager_under_a_mask(method, options):
    """adapt= (a parameter mask) through the compiled steps, pullbacks and backward chunks: the same meta-gradient,
    adapted state and query loss as eager, and the frozen entries stay at theta."""
    support, query, theta = _masked_task()
    kw = dict(method=method, steps=12, step_size=0.05, solver="rk4", reg=0.3, adapt="adapted", **options)
    eager = meta_gradient(support, query, theta, **kw)
    comp = meta_gradient(support, query, theta, compile=True, **kw)
    for got, ref in ((comp.grad, eager.grad), (comp.adapted, eager.adapted)):
        g, r = flat_grad(got), flat_grad(ref)
        assert float((g - r).norm() / r.norm()) < 1e-12
    assert comp.query_loss == pytest.approx(eager.query_loss, rel=1e-12)
    assert torch.equal(comp.adapted["frozen"], theta["frozen"])
    assert not torch.allclose(comp.adapted["adapted"], theta["adapted"])
