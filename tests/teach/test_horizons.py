"""The horizon explorer's data: every method at every horizon, each row equal to meta_gradient run at that horizon."""

import math
import warnings

import pytest
import torch

from amaml_lab.metagrad import BacksolveWarning, meta_gradient
from amaml_lab.teach import horizons as hz
from amaml_lab.teach import horizons_data as horizon_data

STEPS = (1, 3, 8, 20)
H = 0.02


@pytest.fixture(scope="module")
def task():
    return hz.horizon_task(shots=6, queries=8, hidden=(8,), seed=1)


def flat(tree):
    return torch.cat([v.reshape(-1) for v in tree.values()])


# each line of the explorer against the package's method(s) it stands for, run at one horizon alone
ALONE = {
    "maml": [("maml", {}), ("adjoint", {"scheme": "discrete"})],
    "adjoint": [("adjoint", {}), ("adjoint", {"checkpoints": 3}), ("adjoint", {"checkpoints": "sqrt"})],
    "grid": [("adjoint", {"scheme": "grid"}), ("adjoint", {"scheme": "grid", "checkpoints": 3})],
    "backsolve": [("backsolve", {})],
    "fomaml": [("fomaml", {})],
    "reptile": [("reptile", {"scale": "horizon"})],
    "imaml": [("imaml", {"lam": 2.0, "cg_steps": 4})],
    "truncated": [("truncated", {"truncate": 5})],
}


def test_log_steps():
    assert hz.log_steps(1000) == (1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 300, 500, 1000)
    assert hz.log_steps(7) == (1, 2, 3, 5, 7)
    with pytest.raises(ValueError, match="largest"):
        hz.log_steps(0)


@pytest.mark.parametrize("solver", ["euler", "midpoint", "rk4"])
def test_every_line_is_its_method_run_at_that_horizon(task, solver):
    sw = hz.every_horizon(task, H, solver, steps=STEPS, lam=2.0, cg_steps=4, truncate=5)
    assert sw.steps == STEPS and sw.states.shape[0] == STEPS[-1] + 1
    for line, runs in ALONE.items():
        for j, k in enumerate(STEPS):
            for method, options in runs:
                if method == "truncated":
                    options = {"truncate": min(5, k)}
                if method == "adjoint" and options.get("checkpoints") == 3 and k < 3:
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", BacksolveWarning)
                    ref = flat(
                        meta_gradient(
                            task.support_loss,
                            task.query_loss,
                            task.theta,
                            method=method,
                            steps=k,
                            step_size=H,
                            solver=solver,
                            **options,
                        ).grad
                    )
                err = float((sw.grads[line][j] - ref).norm() / ref.norm())
                assert err < 1e-10, (line, method, options, k, err)


def test_loss_curves_are_the_losses_along_the_trajectory(task):
    sw = hz.every_horizon(task, H, "rk4", steps=(5,), methods=())
    p = task.problem(5, H, "rk4")
    for k in range(6):
        assert float(sw.support_curve[k]) == pytest.approx(float(p.support.loss(sw.states[k])), rel=1e-14)
        assert float(sw.query_curve[k]) == pytest.approx(float(p.query.loss(sw.states[k])), rel=1e-14)


def test_exact_gradients_are_the_flow_meta_gradient(task):
    """Forward sensitivities by dopri5 against back-propagation through 800 rk4 steps (error ~h^4), two algorithms."""
    exact = hz.exact_gradients(task, [0.1, 0.4])
    for T, g in zip((0.1, 0.4), exact):
        fine = flat(
            meta_gradient(
                task.support_loss,
                task.query_loss,
                task.theta,
                method="maml",
                steps=800,
                step_size=T / 800,
                solver="rk4",
            ).grad
        )
        assert float((g - fine).norm() / fine.norm()) < 1e-8
    # and not trivially: one euler step differs from the flow by far more
    coarse = flat(
        meta_gradient(
            task.support_loss, task.query_loss, task.theta, method="maml", steps=1, step_size=0.4, solver="euler"
        ).grad
    )
    assert float((exact[1] - coarse).norm() / coarse.norm()) > 1e-3


def test_errors_mark_non_finite_gradients():
    ref = torch.ones(2, 3, dtype=torch.float64)
    rel, cos = horizon_data.errors(torch.tensor([[1.0, 1.0, 1.0], [math.inf, 0.0, 0.0]], dtype=torch.float64), ref)
    assert rel[0] == 0 and cos[0] == pytest.approx(1.0) and rel[1] == math.inf and math.isnan(cos[1])


@pytest.mark.integration  # starts other processes
def test_compute_in_processes_equals_computing_here():
    options = dict(shots=6, queries=8, hidden=(8,), seed=1)
    args = dict(step_sizes=(0.02, 0.05), solvers=("euler", "rk4"), steps=(1, 4, 10))
    here = horizon_data.compute(options, workers=1, **args)
    spread = horizon_data.compute(options, workers=2, **args)
    for key, sw in here.sweeps.items():
        for m, g in sw.grads.items():
            assert torch.allclose(g, spread.sweeps[key].grads[m], rtol=1e-13, atol=0), (key, m)
        assert here.errors[key]["maml"][0] == pytest.approx(spread.errors[key]["maml"][0], rel=1e-9)
    assert set(here.curves) == {(h, s) for h in (0.02, 0.05) for s in ("euler", "rk4")}
    assert here.curves[(0.02, "rk4")].shape == (4, here.task.x_plot.shape[0])
    # the reference at the union of horizons serves each step size at its own
    assert torch.allclose(here.exact[0.05][0], hz.exact_gradients(here.task, [0.05])[0], rtol=1e-8)


def test_bad_arguments_are_named(task):
    with pytest.raises(ValueError, match="solver"):
        hz.every_horizon(task, H, "dopri5", steps=(2,))
    with pytest.raises(ValueError, match="step_size"):
        hz.every_horizon(task, -1.0, "rk4", steps=(2,))
    with pytest.raises(ValueError, match="methods"):
        hz.every_horizon(task, H, "rk4", steps=(2,), methods=("nope",))
    with pytest.raises(ValueError, match="family"):
        hz.horizon_task("Alpine2D")


def test_default_workers_follow_the_cpus_and_a_stated_memory_limit(monkeypatch):
    import os

    monkeypatch.delenv("MEM_LIMIT", raising=False)
    assert horizon_data.default_workers() == 1  # under pytest __main__ is a script: workers would re-run it
    monkeypatch.setattr(horizon_data, "workers_can_start", lambda: True)  # as in a notebook kernel
    assert 1 <= horizon_data.default_workers() <= min(4, len(os.sched_getaffinity(0)))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    assert horizon_data.default_workers() == 4
    monkeypatch.setenv("MEM_LIMIT", str(2 * 2**30))  # Binder's 2 GB: compute in the kernel
    assert horizon_data.default_workers() == 1
    monkeypatch.setenv("MEM_LIMIT", str(4 * 2**30))
    assert horizon_data.default_workers() == 3


SCRIPT = """from amaml_lab.widgets import HorizonExplorer
app = HorizonExplorer(step_sizes=(0.05,), solvers=("euler",), solver="euler", largest=10, shots=6, queries=8,
                      hidden=(8,))
print("built", len(app.data.steps))
"""


@pytest.mark.integration  # starts other processes
@pytest.mark.parametrize("how", ["file", "stdin"])
def test_the_explorer_builds_from_a_plain_script(tmp_path, how):
    """No main guard, or a program read from stdin: spawned workers could not re-import either, so the build
    computes in the process (before, it died with spawn's bootstrapping error and a broken pool)."""
    import subprocess
    import sys

    script = tmp_path / "save_figure.py"
    script.write_text(SCRIPT)
    cmd = [sys.executable, str(script)] if how == "file" else [sys.executable, "-"]
    done = subprocess.run(
        cmd, input=None if how == "file" else SCRIPT, capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert done.returncode == 0 and "built 5" in done.stdout, done.stderr[-2000:]


def test_killed_workers_fall_back_to_computing_here(monkeypatch):
    """A worker killed mid-build (a memory limit, a signal) breaks the pool; the build warns once and computes
    what is left here, and the data equal a build in one process."""
    import os
    import signal
    import threading
    import time

    monkeypatch.setattr(horizon_data, "workers_can_start", lambda: True)
    killed = []

    def kill_a_worker():
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            for pid in (int(d) for d in os.listdir("/proc") if d.isdigit()):
                try:
                    stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
                    cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
                except OSError:
                    continue
                if int(stat[1]) == os.getpid() and b"spawn_main" in cmdline:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    break
            time.sleep(0.02)

    options = dict(shots=6, queries=8, hidden=(8,), seed=1)
    args = dict(step_sizes=(0.05,), solvers=("euler", "rk4"), steps=hz.log_steps(10))
    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    with pytest.warns(horizon_data.WorkerFallbackWarning, match="computing the .* remaining parts here"):
        data = horizon_data.compute(options, workers=2, **args)
    killer.join()
    here = horizon_data.compute(options, workers=1, **args)
    assert killed
    for key in here.sweeps:
        for m, g in here.sweeps[key].grads.items():
            assert torch.allclose(data.sweeps[key].grads[m], g, rtol=0, atol=1e-12, equal_nan=True), (key, m)


@pytest.mark.parametrize(
    "error",
    [
        FileNotFoundError("/dev/shm: no such directory"),
        PermissionError("semaphores are not permitted here"),
        OSError("too many open files"),
        NotImplementedError("this platform lacks a functioning sem_open implementation"),
        ImportError("No module named '_multiprocessing'"),
        ValueError("max_workers"),
        RuntimeError("cannot start a process"),
    ],
)
def test_a_pool_that_cannot_start_computes_here(monkeypatch, error):
    """Whatever a process pool's start raises (no /dev/shm, no semaphores, a sandbox, a missing module), the
    explorer warns once and computes everything in the process, the same numbers as a one-process build."""
    import concurrent.futures

    class Refused:
        def __init__(self, *args, **kwargs):
            raise error

    monkeypatch.setattr(horizon_data, "workers_can_start", lambda: True)
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", Refused)
    options = dict(shots=6, queries=8, hidden=(8,), seed=1)
    args = dict(step_sizes=(0.05,), solvers=("euler",), steps=hz.log_steps(10))
    with pytest.warns(horizon_data.WorkerFallbackWarning, match=type(error).__name__):
        data = horizon_data.compute(options, workers=2, **args)
    here = horizon_data.compute(options, workers=1, **args)
    for key in here.sweeps:
        for m, g in here.sweeps[key].grads.items():
            assert torch.allclose(data.sweeps[key].grads[m], g, rtol=0, atol=0, equal_nan=True), (key, m)


def test_a_saved_build_loads_as_the_views_saw_it_and_only_for_its_settings(tmp_path):
    """The shipped build keeps what a view reads: the explorer built on the loaded data shows, at every position,
    what it shows on the computed data; other settings do not load it."""
    from amaml_lab import widgets

    options = dict(shots=6, queries=8, hidden=(8,), seed=1)
    args = dict(step_sizes=(0.02, 0.05), solvers=("euler", "rk4"), steps=(1, 4, 10), lam=2.0, cg_steps=5, truncate=5)
    data = horizon_data.compute(options, workers=1, **args)
    settings = horizon_data._settings(options, **args)
    horizon_data.save(data, settings, tmp_path / "build.pt")
    loaded = horizon_data.shipped(settings, tmp_path / "build.pt")
    assert loaded is not None and loaded.seconds == data.seconds and loaded.exact == {}
    assert (data.source, loaded.source) == ("computed", "shipped")
    assert horizon_data.shipped({**settings, "lam": 1.0}, tmp_path / "build.pt") is None
    assert horizon_data.shipped(horizon_data._settings({**options, "seed": 2}, **args), tmp_path / "build.pt") is None
    assert horizon_data.shipped(settings, tmp_path / "none.pt") is None
    apps = [widgets.HorizonExplorer(data=d, steps=4, step_size=0.02, solver="rk4") for d in (data, loaded)]
    for h in (0.02, 0.05):
        for s in ("euler", "rk4"):
            for k in (1, 4, 10):
                views = []
                for app in apps:
                    app.controls["step_size"].value, app.controls["solver"].value = h, s
                    app.controls["steps"].value = k
                    views.append([(t.name, t.x, t.y) for t in app.figure.data])
                assert views[0] == views[1], (h, s, k)


@pytest.mark.integration  # starts other processes
def test_the_shipped_build_is_notebook_02s_and_equals_computing_it(monkeypatch):
    """The explorer notebook 02 builds by default loads the shipped build (no computing: compute is not called),
    and its numbers are what computing them here gives (rk4 at h = 0.01, every horizon)."""
    from amaml_lab import widgets

    assert horizon_data.SHIPPED.exists(), "python -m amaml_lab.teach.horizons_data writes it"
    monkeypatch.setattr(horizon_data, "compute", lambda *a, **k: pytest.fail("the default build was computed"))
    app = widgets.HorizonExplorer(step_sizes=(0.01, 0.03), seed=0)
    monkeypatch.undo()
    fresh = horizon_data.compute({}, step_sizes=(0.01,), solvers=("rk4",), workers=1)
    key = (0.01, "rk4")
    for m, (rel, cos) in fresh.errors[key].items():
        shipped_rel, shipped_cos = app.data.errors[key][m]
        assert shipped_rel == pytest.approx(rel, rel=1e-6, abs=1e-12, nan_ok=True), m
        assert shipped_cos == pytest.approx(cos, rel=1e-6, abs=1e-12, nan_ok=True), m
    assert torch.allclose(app.data.curves[key], fresh.curves[key], rtol=1e-10, atol=1e-12)
    assert torch.equal(app.data.sweeps[key].support_curve, fresh.sweeps[key].support_curve)
