"""The widget apps outside any kernel: set a control's value, the figure's traces change; a move only indexes
what the app computed when it was built."""

import math

import numpy as np
import pytest
import torch

from amaml_lab import compare_methods, viz, widgets
from amaml_lab.tasks.examples import build_task
from amaml_lab.teach import backward as explore_backward
from amaml_lab.teach import baselines as explore_baselines
from amaml_lab.teach import horizons_data as horizon_data
from amaml_lab.teach import surfaces as explore


def column(values) -> list:
    """A trace's data as plain numbers (the apps send float32 arrays, lists, or tuples)."""
    return [] if values is None else np.asarray(values).tolist()


def traces(fig) -> list:
    return [(column(t.x), column(t.y), t.name) for t in fig.data]


def forbid(monkeypatch, module, *names):
    """From here on, calling any of ``module``'s ``names`` fails the test: a move must only index."""
    for name in names:
        monkeypatch.setattr(module, name, lambda *a, _name=name, **k: pytest.fail(f"a move called {_name}"))


def test_flow_explorer_redraws_on_each_control():
    app = widgets.FlowExplorer(horizon=1.0, step_size=0.1)
    for name, value in [
        ("step_size", 0.2),
        ("horizon", 2.0),
        ("solver", "midpoint"),
        ("reg", 1.0),
        ("surface", "wells"),
    ]:
        before = [tuple(t.x) for t in app.figure.data[1:]]
        app.controls[name].value = value
        after = [tuple(t.x) for t in app.figure.data[1:]]
        assert after != before, name
    assert app.updates == 5 and "gradient flow: ends at" in app.status.value
    assert app.figure.layout.title.text.startswith("wells")


def test_flow_explorer_start_moves_the_end_across_the_ridge():
    app = widgets.FlowExplorer(surface="wells", horizon=4.0, step_size=0.05, solver="rk4", start=0.10)
    assert app.paths["gradient flow"][0].tolist() == [0.10, 1.8]
    assert float(app.paths["gradient flow"][-1][0]) < -0.9
    app.controls["start"].value = 0.20
    assert app.paths["gradient flow"][0].tolist() == [0.20, 1.8]
    assert float(app.paths["gradient flow"][-1][0]) > 0.9 and "gradient flow: ends at (1.0" in app.status.value


def test_flow_explorer_marks_a_diverging_gradient_descent():
    app = widgets.FlowExplorer(surface="quadratic", horizon=4.0, step_size=0.1)
    assert "unstable" not in app.status.value
    app.controls["step_size"].value = 0.3  # h * lambda_max = 2.25 > 2
    assert "gradient descent: ends at" in app.status.value and "(loss rose: the step is unstable)" in app.status.value


def test_flow_explorer_moves_along_its_tables(monkeypatch):
    """The build fills the tables along every control through the first state: the first move of any control
    only indexes; the paths are inner_paths' (the same steps; the flow within its tolerance)."""
    app = widgets.FlowExplorer(surface="valley", horizon=2.0, step_size=0.1, reg=0.5, start=-1.0)
    forbid(monkeypatch, explore, "inner_path_batch", "flow_batch", "inner_paths")
    grid_h = 10**-1.25  # on the step size slider's grid
    for name, value in [
        ("horizon", 4.4),
        ("solver", "midpoint"),
        ("start", -0.5),
        ("start", -1.0),
        ("reg", 2.0),
        ("reg", 0.5),
        ("surface", "wells"),
        ("surface", "valley"),
        ("step_size", grid_h),
    ]:
        app.controls[name].value = value
    monkeypatch.undo()
    ref = explore.inner_paths("valley", horizon=4.4, step_size=grid_h, solver="midpoint", reg=0.5, start=(-1.0, 1.5))
    assert list(app.paths) == list(ref)
    for key in ("gradient descent", "midpoint steps"):
        assert app.paths[key].shape == tuple(ref[key].shape)
        assert np.allclose(app.paths[key], ref[key].numpy(), rtol=1e-12, atol=1e-12), key
    assert np.allclose(app.paths["gradient flow"][-1], ref["gradient flow"][-1].numpy(), atol=1e-6)
    assert app.paths["gradient flow"][0].tolist() == [-1.0, 1.5]


def test_flow_explorer_computes_a_new_line_once(monkeypatch):
    """After moves of two controls the state is off the build's lines: the first move computes the moved
    control's whole line through it, the next moves along it only index."""
    app = widgets.FlowExplorer(horizon=1.0, step_size=0.1)
    app.controls["reg"].value = 1.0
    app.controls["start"].value = -1.0  # off the build's lines now
    calls = []
    real = explore.inner_path_batch
    monkeypatch.setattr(explore, "inner_path_batch", lambda *a, **k: calls.append(len(a[1])) or real(*a, **k))
    app.controls["reg"].value = 1.5
    # every reg position at once: the 29 of 31 not in the tables yet (reg 0 and 1 at this start came with the
    # start's line)
    assert calls == [29]
    for reg in (1.6, 0.3, 3.0):
        app.controls["reg"].value = reg
    assert calls == [29]
    app.controls["step_size"].value = 0.1234  # off the slider's grid: that state alone
    assert calls == [29, 1] and app.paths["gradient descent"].shape == (9, 2)


def test_flow_explorer_sends_only_what_changed(monkeypatch):
    app = widgets.FlowExplorer()
    forbid(monkeypatch, explore, "surface_grid")  # the surface is not drawn again unless it changes
    app.controls["step_size"].value = 10**-1.5
    assert all(isinstance(t.x, np.ndarray) and t.x.dtype == np.float32 for t in app.figure.data[1:] if len(t.x))
    app.controls["horizon"].value = 6.0  # 190 steps: drawn through at most 200 points each
    assert all(len(t.x) <= viz.PATH_POINTS for t in app.figure.data[1:])
    assert column(app.figure.data[1].x)[-1] == pytest.approx(float(app.paths["gradient descent"][-1, 0]), rel=1e-6)


def test_reconstruction_explorer_redraws(monkeypatch):
    app = widgets.ReconstructionExplorer(lam_max=2.0, horizon=1.0, steps=100)
    before = column(app.figure.data[1].y)
    forbid(monkeypatch, explore_backward, "reconstruction_grid", "reconstruction")
    app.controls["lam_max"].value = 10**1.6  # on the slider's grid: indexed
    app.controls["horizon"].value = 2.0
    assert column(app.figure.data[1].y) != before
    assert app.result["error"] > 1e6 and "λmax·T = 79.6" in app.status.value
    monkeypatch.undo()
    app.controls["lam_max"].value = 40.0  # off the grid: computed alone
    assert app.result["error"] > 1e6 and "λmax·T = 80.0" in app.status.value


def test_reconstruction_explorer_is_reconstruction():
    """The rebuilt state is rounding amplified e^(λmax T) times: the table must do reconstruction's arithmetic.  The
    forward states agree to the last bits and the rebuilt u(0)'s error to within the amplified rounding (a factor
    2); bit for bit only where this CPU's autograd kernels round as the table's products do (they did on earlier
    machines; here the forward states differ in their last bit and the error at λmax·T = 20 reads 3.16e-07, not
    3.07e-07)."""
    import re

    app = widgets.ReconstructionExplorer(lam_max=10.0, horizon=2.0)
    for lam, T in ((10.0, 2.0), (10**1.35, 3.75), (1.0, 0.5)):
        app.controls["lam_max"].value, app.controls["horizon"].value = lam, T
        ref = explore_backward.reconstruction(explore.QuadraticTask(eig=(0.2, lam)), T, 200)
        torch.testing.assert_close(app.result["forward"], ref["forward"], rtol=1e-14, atol=1e-15)
        assert torch.equal(app.result["t"], ref["t"])
        assert 0.5 < app.result["error"] / ref["error"] < 2, (lam, T, app.result["error"], ref["error"])
    app.controls["lam_max"].value, app.controls["horizon"].value = 10.0, 2.0
    off = float(re.search(r"off by ([0-9.e+-]+)", app.status.value).group(1))
    assert 2e-7 < off < 4e-7, app.status.value


def _same_rows(mine, ref):
    assert [(r["steps"], r["label"]) for r in mine] == [(r["steps"], r["label"]) for r in ref]
    for a, b in zip(mine, ref):
        for key in ("rel_error", "cosine", "query_loss"):
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-13), (a["label"], a["steps"], key)
        for key in ("grad_evals", "hvp_evals", "stored_states"):
            assert a[key] == b[key], (a["label"], a["steps"], key)


def test_baseline_explorer_indexes_every_lambda_cg_steps_and_truncation(monkeypatch):
    support_loss, query_loss, theta = build_task(8, "float64", "cpu", 4, 0)
    app = widgets.BaselineExplorer(support_loss, query_loss, theta, steps_list=(4, 8), cg_steps=2, truncate=2)
    labels = [t.name for t in app.figure.data]
    imaml, trunc = labels.index("imaml"), labels.index("truncated (last 2)")
    adjoint = [r for r in app.rows if r["method"] == "adjoint"]
    forbid(monkeypatch, explore_baselines, "baseline_table", "imaml_rows", "truncated_rows", "compare_methods")
    forbid(monkeypatch, explore_baselines, "meta_gradient")
    before = column(app.figure.data[imaml].y)
    app.controls["lam"].value = 10**1.3  # on the slider's grid
    assert column(app.figure.data[imaml].y) != before
    before = column(app.figure.data[imaml].y)
    app.controls["cg_steps"].value = 6
    assert column(app.figure.data[imaml].y) != before
    before = column(app.figure.data[trunc].y)
    app.controls["truncate"].value = 4
    assert column(app.figure.data[trunc].y) != before and app.figure.data[trunc].name == "truncated (last 4)"
    # the rows of methods no change touched are the very same objects
    assert all(a is b for a, b in zip(adjoint, [r for r in app.rows if r["method"] == "adjoint"]))
    # the steps control moves the dotted line and the status line
    app.controls["steps"].value = 4
    assert column(app.figure.data[-1].x) == [4, 4] and app.status.value.startswith("at 4 steps")
    monkeypatch.undo()
    # what it shows is compare_methods' rows for those settings (to rounding, and the same counts)
    for lam in (10**1.3, 20.0):  # on the slider's grid, then off it (that λ computed alone)
        app.controls["lam"].value = lam
        methods = explore_baselines.baseline_methods(lam, 6, 4)
        order = [m[0] for m in methods]
        ref = compare_methods(support_loss, query_loss, theta, (4, 8), step_size=0.01, methods=methods)
        _same_rows(sorted(app.rows, key=lambda r: (r["steps"], order.index(r["label"]))), ref)


def test_baseline_table_rows_are_compare_methods_rows():
    support_loss, query_loss, theta = build_task(8, "float64", "cpu", 4, 1)
    table = explore_baselines.baseline_table(
        support_loss,
        query_loss,
        theta,
        (3, 6),
        step_size=0.02,
        lams=(0.5, 3.0),
        cg_steps=4,
        truncates=(1, 3, 6),
        solver="midpoint",
    )
    for lam, cg, k in ((0.5, 1, 1), (3.0, 4, 3), (0.5, 3, 6)):
        ref = compare_methods(
            support_loss,
            query_loss,
            theta,
            (3, 6),
            step_size=0.02,
            solver="midpoint",
            methods=explore_baselines.baseline_methods(lam, cg, k),
        )
        mine = table["fixed"] + table["imaml"][(lam, cg)] + table["truncated"][k]
        order = [m[0] for m in explore_baselines.baseline_methods(lam, cg, k)]
        _same_rows(sorted(mine, key=lambda r: (r["steps"], order.index(r["label"]))), ref)


@pytest.mark.integration  # starts other processes
def test_cost_explorer_measures_every_point_once_in_the_background():
    import threading

    from amaml_lab.bench.worker import measure as measure_row

    calls = []

    def measure(name, steps):
        calls.append((name, steps, threading.current_thread() is threading.main_thread()))
        return measure_row(
            dict(
                name=name,
                steps=steps,
                shots=5,
                hidden=4,
                step_size=0.01,
                solver="rk4",
                dtype="float64",
                device="cpu",
                repeat=1,
                time_budget=30.0,
                seed=0,
            )
        )

    app = widgets.CostExplorer(steps_options=(4, 8), measure=measure)
    app.controls["steps"].value = 8  # a move while measuring: no measurement of its own
    app.wait(60)
    assert sorted(c[:2] for c in calls) == sorted((n, s) for s in (4, 8) for n in viz.COST_METHODS)
    assert not any(c[2] for c in calls)  # all in the background
    assert app.figure.data[0].x == (4, 8) and len(app.figure.data[0].y) == 2
    rings = [t for t in app.figure.data if t.name == "steps now"]  # the figure follows the slider
    assert [column(t.x) for t in rings] == [[8] * 3] * 2
    app.controls["steps"].value = 4
    assert [column(t.x) for t in rings] == [[4] * 3] * 2
    here = {r["name"]: r for r in app.rows if r["steps"] == 4}
    assert column(rings[0].y) == [here[n]["time_s"] for n in viz.COST_METHODS]
    assert column(rings[1].y) == [here[n]["peak_mb"] for n in viz.COST_METHODS]
    assert len(calls) == 2 * len(viz.COST_METHODS)
    assert all(r["time_s"] > 0 for r in app.rows)
    assert "all 6 points measured" in app.status.value


@pytest.mark.integration  # starts other processes
def test_cost_explorer_measures_in_one_separate_process():
    app = widgets.CostExplorer(steps_options=(3, 6), methods=("maml", "adjoint"), shots=5, hidden=4)
    assert "in a separate process" in app.status.value or app.rows
    app.wait(120)
    assert [(r["name"], r["steps"]) for r in app.rows] == [("maml", 3), ("adjoint", 3), ("maml", 6), ("adjoint", 6)]
    assert all(r["peak_mb"] > 0 and r["time_s"] > 0 for r in app.rows)


def test_cost_explorer_warms_each_point_up_and_repeats_it(monkeypatch):
    """Every point: its own call once as a warm-up, then the memory run, then ``repeat`` timed runs (the fastest
    kept): the first point of the process carries no first-call costs."""
    import amaml_lab
    from amaml_lab import measure
    from amaml_lab.bench import worker

    sent = []
    monkeypatch.setattr(measure, "stream", lambda cfgs: sent.extend(cfgs) or iter(()))
    widgets.CostExplorer(steps_options=(3, 6), methods=("maml",), shots=5, hidden=4).wait(30)
    assert [(c["steps"], c["warmup"], c["repeat"]) for c in sent] == [(3, "full", 3), (6, "full", 3)]
    steps = []
    real = amaml_lab.meta_gradient
    monkeypatch.setattr(amaml_lab, "meta_gradient", lambda *a, **k: steps.append(k["steps"]) or real(*a, **k))
    row = worker.measure({**sent[1], "time_budget": 60.0})
    assert steps == [6] * (1 + 1 + 3) and row["time_s"] > 0  # warm-up, memory, three timed
    steps.clear()
    worker.measure({**sent[1], "warmup": "short", "repeat": 1, "time_budget": 60.0})
    assert steps == [2, 6, 6]  # the benchmark's default: a two-step warm-up


def test_cost_explorer_reports_a_failed_measurement():
    def measure(name, steps):
        raise ValueError("no such luck")

    app = widgets.CostExplorer(steps_options=(4,), measure=measure)
    with pytest.raises(RuntimeError, match="no such luck"):
        app.wait(30)
    assert "measuring stopped" in app.status.value


@pytest.fixture(scope="module")
def horizon_app():
    from amaml_lab.teach import horizons as horizon

    data = horizon_data.compute(
        dict(shots=6, queries=8, hidden=(8,), seed=1),
        step_sizes=(0.02, 0.05),
        solvers=("euler", "rk4"),
        steps=horizon.log_steps(30),
        workers=1,
    )
    return widgets.HorizonExplorer(data=data, steps=10, step_size=0.02, solver="rk4")


def test_horizon_explorer_moves_every_panel_with_the_steps(horizon_app, monkeypatch):
    from amaml_lab.teach import horizons as horizon

    app = horizon_app
    # a move only indexes: nothing may compute
    monkeypatch.setattr(horizon, "every_horizon", lambda *a, **k: pytest.fail("a move recomputed the lines"))
    monkeypatch.setattr(horizon, "exact_gradients", lambda *a, **k: pytest.fail("a move recomputed the reference"))
    before = [(tuple(t.x or ()), tuple(t.y or ())) for t in app.figure.data]
    app.controls["steps"].value = 30
    after = [(tuple(t.x or ()), tuple(t.y or ())) for t in app.figure.data]
    names = [t.name for t in app.figure.data]
    changed = {names[i] for i, (b, a) in enumerate(zip(before, after)) if b != a}
    # (a) the adapted model, (b) the markers at T, (c) the markers at T, (d) the line at the steps
    assert {"model at u(T)", "at T", "steps now"} <= changed
    assert app.figure.data[names.index("steps now")].x == (30, 30)
    assert {f"{name} (measured)" for name in viz.HORIZON_COST} <= set(names)  # panel (d): the shipped rows
    for col, unit in ((1, "seconds"), (2, "MB")):  # panel (d) from 1 step (its line at 1-5 steps), with units
        panel = app.figure.get_subplot(3, col)
        assert panel.xaxis.range[0] <= 0 and panel.xaxis.range[1] >= 4 and panel.yaxis.title.text == unit
    v = app.view()
    assert v["T"] == pytest.approx(0.6) and "T = 0.6" in app.status.value
    # the drawn errors are the data's
    sw = app.data.sweeps[(0.02, "rk4")]
    rel, _ = horizon_data.errors(sw.grads["maml"], app.data.exact[0.02])
    assert v["methods"][0]["rel_at"] == rel[-1]


def test_horizon_explorer_step_size_solver_and_methods(horizon_app):
    app = horizon_app
    names = [t.name for t in app.figure.data]
    loss = names.index("L_S(u(t))")
    maml = names.index(app.view()["methods"][0]["label"])
    for control, value in (("step_size", 0.05), ("solver", "euler")):
        before = (app.figure.data[loss].y, app.figure.data[maml].y)
        app.controls[control].value = value
        assert app.figure.data[loss].y != before[0] and app.figure.data[maml].y != before[1]
    app.controls["methods"].value = ("maml", "adjoint")
    hidden = [t for t in app.figure.data if t.name and t.name.startswith("backsolve")]
    assert hidden and not any(t.visible for t in hidden)
    assert "backsolve" not in app.status.value
    app.controls["methods"].value = tuple(app.data.sweeps[(0.02, "rk4")].grads)


def test_horizon_explorer_shows_its_data_without_a_kernel(horizon_app):
    bundle = horizon_app._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    fig = bundle["application/vnd.plotly.v1+json"]
    assert len(fig["data"]) == len(horizon_app.figure.data)
    assert all(len(t.get("x", [])) > 0 for t in fig["data"] if t.get("visible", True) is not False)


def test_errors_beyond_the_scale_are_marked_and_hover_their_true_value():
    """Back-solving's error overflows the panel at long T (notebook 02's shipped data): those points are drawn at
    the ceiling as triangles, their hover gives the true value, in the app, after a move, and in the book's figure;
    the points on the scale stay plain circles at their value."""
    from amaml_lab.viz import horizons as viz_horizon
    from amaml_lab.viz.static import horizon_static_figure

    app = widgets.HorizonExplorer(step_sizes=(0.01, 0.03), seed=0)
    assert app.data.source == "shipped"
    raw = app.data.errors[(0.01, "rk4")]["backsolve"][0]
    back = next(m for m in app.view()["methods"] if m["key"] == "backsolve")
    marks = back["rel_marks"]
    beyond = [i for i, v in enumerate(raw) if math.isfinite(v) and v > viz_horizon.ERROR_CEILING]
    within = [i for i, v in enumerate(raw) if math.isfinite(v) and v <= viz_horizon.ERROR_CEILING]
    assert beyond and within
    for i in beyond:
        assert back["rel"][i] == viz_horizon.ERROR_CEILING and marks["symbol"][i] == viz_horizon.CLAMPED_SYMBOL
        assert marks["true"][i] == f"{raw[i]:.3g}"
    assert all(back["rel"][i] == raw[i] and marks["symbol"][i] == "circle" for i in within)

    def drawn(fig):
        return [t for t in fig.data if t.name == back["label"] and t.customdata is not None]

    app.controls["steps"].value = app.data.steps[3]  # a move keeps the marks
    true = f"{raw[beyond[0]]:.3g}"
    lines = drawn(app.figure)
    assert len(lines) == 1 and lines[0].marker.symbol == tuple(marks["symbol"]) and true in lines[0].customdata
    app.controls["step_size"].value = 0.03  # another sweep, other points beyond the scale: the marks follow
    coarse = next(m for m in app.view()["methods"] if m["key"] == "backsolve")["rel_marks"]
    assert coarse["symbol"] != marks["symbol"] and drawn(app.figure)[0].marker.symbol == tuple(coarse["symbol"])
    assert drawn(app.figure)[0].customdata == tuple(coarse["true"])
    lines = drawn(horizon_static_figure(app.data, app.cost))  # one line per step size and solver
    assert len(lines) == len(app.data.sweeps) and all(viz_horizon.CLAMPED_SYMBOL in t.marker.symbol for t in lines)
    assert any(t.marker.symbol == tuple(marks["symbol"]) and true in t.customdata for t in lines)


def unmarked_at_the_ceiling(fig: dict) -> list[str]:
    """Every point of ``fig`` (a plotly figure's dict, its frames included) drawn at the error ceiling without a
    triangle or without its true value: what a reader would take for an error of 10,000."""
    from amaml_lab.viz import horizons as viz_horizon

    found = []
    states = [("data", fig["data"])] + [(f"frame {f.get('name')}", f["data"]) for f in fig.get("frames", [])]
    for where, traces in states:
        for t in traces:
            symbol, custom = (t.get("marker") or {}).get("symbol"), t.get("customdata")
            for i, y in enumerate(t.get("y") or []):
                if y != viz_horizon.ERROR_CEILING:
                    continue
                s = symbol[i] if isinstance(symbol, (list, tuple)) else symbol
                if "triangle" not in str(s) or not custom or float(custom[i]) <= viz_horizon.ERROR_CEILING:
                    found.append(f"{where}: {t.get('name')} point {i} ({s}, {custom and custom[i]})")
    return found


def test_every_point_at_the_error_ceiling_is_marked_in_the_app_and_the_books_figure():
    """The markers at T too: at a long T back-solving's error is drawn at the ceiling, and its marker there must be
    an open triangle with the true value, in the app (after a move) and in every frame of the book's figure."""
    from amaml_lab.viz.static import horizon_static_figure

    app = widgets.HorizonExplorer(step_sizes=(0.01, 0.03), seed=0)
    raw = app.data.errors[(0.01, "rk4")]["backsolve"][0]
    j = next(i for i, v in enumerate(raw) if math.isfinite(v) and v > 1e4)  # back-solving off the scale
    app.controls["steps"].value = app.data.steps[j]
    fig = app.figure.to_plotly_json()
    at = [t for t in fig["data"] if t["name"] == "at T" and t.get("customdata")]
    assert at and any("triangle-up-open" in t["marker"]["symbol"] for t in at), "no clamped marker at T"
    assert unmarked_at_the_ceiling(fig) == []
    static = horizon_static_figure(app.data, app.cost).to_plotly_json()
    at_ceiling = [t for f in static["frames"] for t in f["data"] if 1e4 in (t.get("y") or [])]
    assert at_ceiling, "no frame draws a point at the ceiling: the check below would check nothing"
    assert unmarked_at_the_ceiling(static) == []


def test_horizon_explorer_rejects_what_it_did_not_compute(horizon_app):
    for kwargs, name in (
        ({"steps": 7}, "steps"),
        ({"step_size": 0.1}, "step_size"),
        ({"solver": "midpoint"}, "solver"),
        ({"methods": ("maml", "nope")}, "methods"),
    ):
        with pytest.raises(ValueError, match=name):
            widgets.HorizonExplorer(data=horizon_app.data, **kwargs)


def _same_figure(a, b):
    for (ax, ay, an), (bx, by, bn) in zip(traces(a), traces(b), strict=True):
        assert an == bn
        for u, v in ((ax, bx), (ay, by)):
            assert len(u) == len(v), an
            assert all(
                x == y
                or (
                    isinstance(x, float)
                    and isinstance(y, float)
                    and (x == pytest.approx(y, rel=1e-6, abs=1e-12) or (x != x and y != y))
                )
                for x, y in zip(u, v)
            ), an


def test_every_apps_figure_is_saved_with_its_traces(horizon_app):
    """A notebook saves a FigureWidget's state as it was made: each app's figure is made with every trace in, so a
    saved notebook read without a kernel shows the plot, not an empty frame (the apps of notebooks 01-04, 08, 09)."""
    from amaml_lab.studies import directions, payoff
    from amaml_lab.studies.committed import RESULTS
    from amaml_lab.widgets.directions import DirectionsExplorer
    from amaml_lab.widgets.payoff import PayoffExplorer

    records = payoff.committed()
    apps = {
        "flow": widgets.FlowExplorer(),
        "reconstruction": widgets.ReconstructionExplorer(),
        "baselines": widgets.BaselineExplorer(*build_task(8, "float64", "cpu", 4, 0), steps_list=(4, 8)),
        "horizon": horizon_app,
        "cost": widgets.CostExplorer(steps_options=(4,), measure=lambda *a, **k: []),
        "payoff": PayoffExplorer(records, "Sinusoid-10-10", 0.0, seed=0),
        "directions": DirectionsExplorer(directions.diagnoses(RESULTS / "horizon", "CosMixture-50-50")),
    }
    for name, app in apps.items():
        saved = app.figure.get_state()["_widget_data"]
        assert len(saved) == len(app.figure.data) > 0, name
        assert [t.get("name") for t in saved] == [t.name for t in app.figure.data], name


@pytest.mark.parametrize("kind", ["flow", "reconstruction", "baselines", "horizon"])
def test_after_many_moves_the_figure_is_a_fresh_apps(kind, horizon_app):
    """Each move sends only what changed: after any sequence of moves the figure holds what a new app built at
    the final values draws (the browser test checks the page draws the kernel's figure)."""
    if kind == "flow":
        make = widgets.FlowExplorer
        app = make()
        moves = [
            ("step_size", 10**-1.5),
            ("surface", "wells"),
            ("start", 0.3),
            ("solver", "euler"),
            ("reg", 0.4),
            ("horizon", 5.0),
            ("solver", "midpoint"),
            ("surface", "valley"),
            ("step_size", 10**-0.6),
        ]
    elif kind == "reconstruction":
        make = widgets.ReconstructionExplorer
        app = make()
        moves = [("lam_max", 10**1.25), ("horizon", 4.25), ("lam_max", 10**0.4), ("horizon", 0.75)]
    elif kind == "baselines":
        task = build_task(8, "float64", "cpu", 4, 0)

        def make(**values):
            return widgets.BaselineExplorer(*task, steps_list=(4, 8), **values)

        app = make()
        moves = [
            ("lam", 10**0.7),
            ("cg_steps", 3),
            ("truncate", 1),
            ("steps", 4),
            ("lam", 10**-0.5),
            ("truncate", 6),
            ("cg_steps", 11),
        ]
    else:

        def make(**values):
            return widgets.HorizonExplorer(data=horizon_app.data, **values)

        app = make()
        moves = [
            ("steps", 30),
            ("solver", "euler"),
            ("step_size", 0.05),
            ("methods", ("maml", "fomaml")),
            ("steps", 3),
            ("solver", "rk4"),
        ]
    for name, value in moves:
        app.controls[name].value = value
    _same_figure(app.figure, make(**app.values()).figure)


def test_every_app_is_marked_for_the_browser_test():
    app = widgets.ReconstructionExplorer()
    classes = app.widget._dom_classes
    assert "amaml-app" in classes and f"amaml-app-{app.uid}" in classes and widgets.App.live[app.uid] is app
    app.controls["horizon"].value = 3.0
    assert [name for name, _, _ in app.timings] == ["horizon"]


def test_measured_costs_are_shipped():
    cost = widgets.measured_costs()
    names = {r["name"] for r in cost["rows"]}
    assert {"maml", "adjoint"} <= names and "python -m amaml_lab.bench" in cost["command"]


def test_experiment_figures_from_a_run(tmp_path):
    from amaml_lab.studies.rundir import load_run
    from amaml_lab.training.config import RunConfig
    from amaml_lab.training.runs import run

    cfg = RunConfig(
        "Sinusoid", 5, 5, 2, meta_steps=3, tasks=3, pool=10, hidden=4, checkpoint_every=3, eval_tasks=2, eval_steps=20
    )
    run(cfg, tmp_path / "adjoint", show_progress=False)
    loaded = load_run(tmp_path / "adjoint")
    assert len(loaded["metrics"]) == 3 and len(loaded["eval"]) == 3
    fig = viz.learning_curves_figure({"adjoint": loaded}, window=2)
    assert list(fig.data[0].x) == [1, 2, 3]
    fig = viz.finetune_figure({"adjoint": loaded})
    assert list(fig.data[0].x) == [0, 10, 20]


def test_meta_progress_figure_reads_evals_csv(tmp_path):
    from amaml_lab.studies.rundir import load_run
    from amaml_lab.training.config import RunConfig
    from amaml_lab.training.runs import run

    cfg = RunConfig(
        "Sinusoid",
        5,
        5,
        2,
        meta_steps=4,
        tasks=3,
        pool=10,
        hidden=4,
        checkpoint_every=2,
        eval_tasks=2,
        eval_steps=20,
        eval_interval=2,
    )
    summary = run(cfg, tmp_path / "maml", show_progress=False)
    loaded = load_run(tmp_path / "maml")
    fig = viz.meta_progress_figure({"maml": loaded})
    inner, finetuned = fig.data
    assert list(inner.x) == [0, 2, 4] and list(finetuned.x) == [0, 2, 4]
    assert inner.y[-1] == pytest.approx(summary["final"]["nrmse_inner"], abs=1e-12)
    assert finetuned.y[-1] == pytest.approx(summary["final"]["nrmse"], abs=1e-12)


@pytest.mark.parametrize("builder", ["agreement", "order", "blowup", "backsolve"])
def test_static_figures_take_their_rows(builder):
    rows = {
        "agreement": [{"steps": 2, "step_size": 0.1, "continuous": 1e-3, "discrete": 0.0}],
        "order": [{"solver": "rk4", "steps": 2, "step_size": 0.1, "error": 1e-5, "slope": 4.0}],
        "blowup": [{"lam_max": 1.0, "lam_T": 2.0, "error": 1e-12}],
        "backsolve": [
            {
                "steps": 2,
                "horizon": 0.02,
                "backsolve": float("inf"),
                "adjoint": 1e-9,
                "checkpointed": 1e-9,
                "reconstruction_error": 1.0,
            }
        ],
    }[builder]
    fig = getattr(viz, f"{builder}_figure")(rows)
    assert len(fig.data) >= 1 and all(len(t.x) == 1 for t in fig.data)


def test_episode_and_accuracy_figures():
    import torch

    xs = torch.rand(6, 1, 28, 28)
    ys = torch.tensor([0, 0, 1, 1, 2, 2])
    xq, yq = torch.rand(6, 1, 28, 28), torch.tensor([0, 1, 2, 0, 1, 2])
    fig = viz.episode_figure((xs, ys), (xq, yq), max_query=1)
    assert len(fig.data) == 3 * (2 + 1)
    assert fig.data[0].z[0] == xs[0, 0].flip(0)[0].tolist()  # the first shot of class 0, top-left
    runs = {
        "maml": {"summary": {"final": {"accuracy": 0.5, "accuracy_ci95": 0.1}}},
        "comln": {"summary": {"final": {"accuracy": 0.7, "accuracy_ci95": 0.05}}},
    }
    bars = viz.accuracy_figure(runs)
    assert list(bars.data[0].y) == [50.0, 70.0] and list(bars.data[0].error_y.array) == [10.0, 5.0]


def _planted_diagnoses():
    """Two thetas' diagnoses as results/diagnose_directions.py writes them, with values that say where they are."""
    out = {}
    for k, label in enumerate(("maml-10", "reptile-1000")):
        spectrum = {str(n): [10.0 * n + k, 1.0 + k, 1e-4 * (k + 1)] for n in (1, 10, 100, 1000)}
        directions = {
            str(n): {
                name: {"pairwise_cosine": (j + 1) / 10 + n / 1e4 + k / 100, "mean_norm": 1.0, "coherence": 0.5}
                for j, name in enumerate(("exact", "fomaml", "reptile"))
            }
            for n in (10, 1000)
        }
        out[label] = {"spectrum": spectrum, "directions": directions}
    return out


def test_the_directions_explorer_shows_the_diagnosis_at_each_n_and_only_indexes(monkeypatch):
    from amaml_lab.viz import directions as viz_directions
    from amaml_lab.widgets.directions import DirectionsExplorer

    found = _planted_diagnoses()
    app = DirectionsExplorer(found)
    assert app.steps == [1, 10, 100, 1000] and app.controls["steps"].value == 1000

    def no_rebuild(*args, **kwargs):
        raise AssertionError("a move rebuilt the figure")

    monkeypatch.setattr(viz_directions, "explorer_figure", no_rebuild)
    for n, near in ((1, 10), (10, 10), (100, 10), (1000, 1000)):  # 100 is as near 10 as 1,000 in log: the smaller
        app.controls["steps"].value = n
        for i, d in enumerate(found.values()):
            assert list(app.figure.data[i].y) == d["spectrum"][str(n)]
        for j, name in enumerate(("exact", "fomaml", "reptile")):
            want = [d["directions"][str(near)][name]["pairwise_cosine"] for d in found.values()]
            assert list(app.figure.data[2 + j].y) == want
        assert f"N = {n}" in app.figure.layout.annotations[0].text
        assert f"N = {near}" in app.figure.layout.annotations[1].text
    app.controls["steps"].value = 10
    assert app.counts()["reptile-1000"] == {"total": 3, "above_one": 2, "survive": 2, "largest": 101.0}
    assert "θ of maml-10: 1 of 3 above 1, 2 above 1e-3, largest 100.00" in app.status.value  # 1.0 is not above 1


def test_the_directions_explorer_refuses_what_it_cannot_show():
    from amaml_lab.widgets.directions import DirectionsExplorer

    with pytest.raises(ValueError, match="diagnoses is empty"):
        DirectionsExplorer({})
    with pytest.raises(ValueError, match="steps=30 is not diagnosed; allowed values: 1, 10, 100, 1000"):
        DirectionsExplorer(_planted_diagnoses(), steps=30)
