"""The GPU path: float64 exactness on CUDA, a short training run that resumes there, and the CUDA defects' checks.

Every test marked ``cuda`` skips without a GPU; ``pytest -m cuda`` runs them where there is one.  Where a
mistake can be caught on the CPU too, the CPU test sits beside its CUDA twin.
"""

import json
import math
import sys
import warnings
from pathlib import Path

import pytest
import torch
from helpers import Quadratic, rel

from amaml_lab import meta_gradient
from amaml_lab.checks import check_device
from amaml_lab.metagrad import meta_gradient_batch
from amaml_lab.models import conv4, mlp
from amaml_lab.tasks.domains import load_domain
from amaml_lab.training.builders import build_model, losses_for, on_device
from amaml_lab.training.config import RunConfig
from amaml_lab.training.runs import run
from amaml_lab.training.train import meta_train

cuda = pytest.mark.cuda
ROOT = Path(__file__).resolve().parents[2]


def small(**kw):
    base = dict(
        domain="CosMixture",
        shots=5,
        query=5,
        inner_steps=4,
        method="adjoint",
        meta_steps=6,
        tasks=4,
        pool=20,
        hidden=4,
        checkpoint_every=2,
        meta_batch=2,
        step_size=0.05,
        eval_tasks=3,
        eval_steps=20,
    )
    base.update(kw)
    return RunConfig(**base)


# ---------------------------------------------------------------- exactness on the GPU, float64
@cuda
@pytest.mark.parametrize("reg", [0.0, 1.0])
def test_cuda_adjoint_matches_the_closed_form(reg):
    q = Quadratic(n=6, seed=1)
    exact, _ = q.exact_flow(T=1.0, reg=reg)
    on = {k: getattr(q, k).cuda() for k in ("A", "B", "c", "d", "theta")}

    def support(u):
        r = u - on["c"]
        return 0.5 * r @ on["A"] @ r

    def query(u):
        r = u - on["d"]
        return 0.5 * r @ on["B"] @ r

    r = meta_gradient(support, query, on["theta"], method="adjoint", steps=400, step_size=1 / 400, reg=reg)
    assert r.grad.is_cuda and float(torch.linalg.vector_norm(r.grad.cpu() - exact) / exact.norm()) < 1e-9


@cuda
@pytest.mark.parametrize("options", [{}, {"checkpoints": 5}])
def test_cuda_discrete_adjoint_equals_maml_on_an_mlp(options):
    model = mlp(2, (8, 8), 1, seed=0).cuda()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 20, 2, generator=g, dtype=torch.float64).cuda()
    y = torch.sin(3 * x[..., :1])
    cfg = small().resolved()
    sl, ql = losses_for(cfg, model)
    theta = {k: v.detach() for k, v in model.named_parameters()}
    kw = dict(steps=30, step_size=0.05, reg=1.0, stacked_losses=True)
    a = meta_gradient_batch(sl, ql, theta, (x, y), (x, y), method="adjoint", scheme="discrete", **options, **kw)
    m = meta_gradient_batch(sl, ql, theta, (x, y), (x, y), method="maml", **kw)
    assert rel(a.grads, m.grads) < 1e-10
    cpu = meta_gradient_batch(
        sl, ql, {k: v.cpu() for k, v in theta.items()}, (x.cpu(), y.cpu()), (x.cpu(), y.cpu()), method="maml", **kw
    )
    assert rel({k: v.cpu() for k, v in m.grads.items()}, cpu.grads) < 1e-10


@cuda
@pytest.mark.parametrize("method,options", [("maml", {}), ("adjoint", {}), ("adjoint", {"checkpoints": 5})])
def test_cuda_compiled_equals_eager_on_an_mlp(method, options):
    """compile=True on the GPU (inductor's Triton kernels): the eager meta-gradients to 1e-10 in float64."""
    model = mlp(2, (8, 8), 1, seed=0).cuda()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 20, 2, generator=g, dtype=torch.float64).cuda()
    y = torch.sin(3 * x[..., :1])
    sl, ql = losses_for(small().resolved(), model)
    theta = {k: v.detach() for k, v in model.named_parameters()}
    kw = dict(method=method, steps=30, step_size=0.05, reg=1.0, stacked_losses=True, **options)
    eager = meta_gradient_batch(sl, ql, theta, (x, y), (x, y), **kw)
    comp = meta_gradient_batch(sl, ql, theta, (x, y), (x, y), compile=True, **kw)
    assert comp.stats["compiled"] is True, comp.stats["compiled"]
    assert rel(comp.grads, eager.grads) < 1e-10


# ---------------------------------------------------------------- training and resuming on the GPU
@cuda
def test_cuda_training_resumes_where_it_stopped(tmp_path):
    whole = meta_train(small(device="cuda"), tmp_path / "a")
    meta_train(small(device="cuda", meta_steps=4), tmp_path / "b")
    resumed = meta_train(small(device="cuda"), tmp_path / "b", resume=True)
    assert all(torch.equal(whole["theta"][k], resumed["theta"][k]) for k in whole["theta"])
    summary = run(small(device="cuda", meta_steps=8), tmp_path / "b", resume=True, show_progress=False)
    assert summary["status"] == "done" and math.isfinite(summary["final"]["nrmse"])


@cuda
def test_cuda_omniglot_resumes_bit_for_bit_when_deterministic(tmp_path):
    cfg = dict(
        domain="Omniglot",
        shots=1,
        query=2,
        inner_steps=2,
        method="maml",
        meta_steps=4,
        meta_batch=2,
        hidden=8,
        subset="demo",
        checkpoint_every=2,
        eval_tasks=4,
        device="cuda",
        deterministic=True,
    )
    whole = meta_train(RunConfig(**cfg), tmp_path / "a")
    meta_train(RunConfig(**{**cfg, "meta_steps": 2}), tmp_path / "b")
    resumed = meta_train(RunConfig(**cfg), tmp_path / "b", resume=True)
    assert all(torch.equal(whole["theta"][k], resumed["theta"][k]) for k in whole["theta"])


def test_checkpoints_hold_only_cpu_state_and_load_on_the_cpu(tmp_path, monkeypatch):
    """The CPU twin of the resume-onto-CUDA crash: checkpoints are read with map_location='cpu', so the episode
    generator's state stays a CPU tensor whatever the run's device."""
    meta_train(small(meta_steps=2), tmp_path)
    seen = []
    real = torch.load

    def spy(*args, **kwargs):
        seen.append(kwargs.get("map_location"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    meta_train(small(meta_steps=4), tmp_path, resume=True)
    assert seen and all(m == "cpu" for m in seen)


# ---------------------------------------------------------------- devices that do not exist
@pytest.mark.parametrize(
    "device,dtype,pattern",
    [
        ("cuda:99", "float64", "cuda:99"),
        ("mps", "float64", "mps"),
        ("tpu", "float64", "not known"),
    ],
)
def test_unavailable_devices_are_value_errors(device, dtype, pattern):
    with pytest.raises(ValueError, match=pattern):
        check_device(device, dtype)


@cuda
def test_cuda_index_past_the_last_gpu_names_the_ones_there():
    with pytest.raises(ValueError, match=r"this machine has \d+ CUDA GPU\(s\): use cuda:0"):
        check_device(f"cuda:{torch.cuda.device_count()}")


# ---------------------------------------------------------------- no hidden global state on the GPU
def test_conv4_seeding_leaves_every_global_generator_alone():
    cpu = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    a, b = conv4(5, hidden=8, seed=3), conv4(5, hidden=8, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert torch.equal(torch.get_rng_state(), cpu)
    if cuda_states is not None:
        assert all(torch.equal(x, y) for x, y in zip(torch.cuda.get_rng_state_all(), cuda_states))


@cuda
def test_cuda_conv4_seeding_leaves_the_cuda_generator_alone():
    torch.cuda.manual_seed(123)
    expected = torch.rand(3, device="cuda")
    torch.cuda.manual_seed(123)
    conv4(5, hidden=8, seed=0)
    assert torch.equal(torch.rand(3, device="cuda"), expected)


# ---------------------------------------------------------------- host-device synchronisations per meta-step
def _meta_step(device):
    cfg = (
        RunConfig(
            domain="CosMixture2D",
            shots=20,
            query=20,
            inner_steps=100,
            method="adjoint",
            tasks=5,
            pool=40,
            device=device,
        )
        .resolved()
        .check()
    )
    domain = load_domain(cfg.domain, 20, 20, tasks=5, pool=40)
    model = build_model(cfg, 2).to(device)
    theta = {k: v.detach() for k, v in model.named_parameters()}
    sl, ql = losses_for(cfg, model)
    support, query = domain.train_batch(torch.Generator().manual_seed(0), 5, 20, 20)
    return lambda: meta_gradient_batch(
        sl,
        ql,
        theta,
        on_device(support, cfg),
        on_device(query, cfg),
        method="adjoint",
        steps=100,
        step_size=0.01,
        reg=1.0,
        stacked_losses=True,
    )


def test_a_meta_step_reads_few_numbers_back_from_its_tensors(monkeypatch):
    """The CPU twin of the synchronisation count: every float(), bool(), .item() and .tolist() on a tensor is a
    host-device synchronisation on a GPU; one adjoint meta-step of 100 rk4 steps makes at most a handful."""
    step = _meta_step("cpu")
    step()
    calls = []
    for name in ("__float__", "__bool__", "item", "tolist", "__int__"):
        real = getattr(torch.Tensor, name)

        def counted(self, *a, _real=real, _name=name, **k):
            calls.append(_name)
            return _real(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    step()
    assert len(calls) <= 12, f"{len(calls)} reads: {sorted(set(calls))}"


@cuda
def test_cuda_meta_step_synchronises_a_handful_of_times():
    step = _meta_step("cuda")
    step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(caught) <= 12, [str(w.message)[:80] for w in caught[:5]]


# ---------------------------------------------------------------- the notebook tour and the widgets on the GPU
@cuda
def test_cuda_tour_notebook_runs_with_its_data_on_the_gpu(tmp_path):
    pm = pytest.importorskip("papermill", reason="the lab extras are not installed: pip install -e '.[lab,test]'")

    pm.execute_notebook(
        str(ROOT / "notebooks" / "00_tour.ipynb"),
        str(tmp_path / "out.ipynb"),
        parameters={"FAST": True, "DEVICE": "cuda"},
        kernel_name="python3",
        cwd=str(ROOT / "notebooks"),
        progress_bar=False,
    )


@cuda
def test_cuda_cost_explorer_measures_on_the_gpu():
    pytest.importorskip("ipywidgets", reason="the widgets are not installed: pip install -e '.[lab,test]'")
    from amaml_lab.widgets import CostExplorer

    app = CostExplorer(steps_options=(10,), methods=("maml",), device="cuda").wait(300)
    assert app.device == "cuda" and app.rows[0]["peak_mb"] > 0


# ---------------------------------------------------------------- the benchmarks on the GPU
@cuda
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_bench_measures_a_meta_step_and_a_meta_gradient(device, tmp_path):
    # plain "cuda" once failed here (torch.cuda.set_device wants an index) and run_gpu.sh's estimate read nan
    import subprocess

    for kind in (["--meta-step", "--shots", "10"], ["--steps", "10", "--methods", "maml,adjoint"]):
        out = tmp_path / f"{kind[0][2:]}.json"
        done = subprocess.run(
            [sys.executable, "-m", "amaml_lab.bench", *kind, "--device", device, "--repeat", "1", "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        rows = json.loads(out.read_text())
        assert rows and all("error" not in r and r["time_s"] > 0 for r in rows), [r.get("error") for r in rows]
