"""The widget apps outside any kernel: set a control's value, the figure's traces change."""
import pytest

from amaml_lab import viz, widgets
from amaml_lab.tasks.examples import build_task
from amaml_lab import horizon_data


def test_flow_explorer_redraws_on_each_control():
    app = widgets.FlowExplorer(horizon=1.0, step_size=0.1)
    for name, value in [("step_size", 0.2), ("horizon", 2.0), ("solver", "midpoint"), ("reg", 1.0),
                        ("surface", "wells")]:
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


def test_reconstruction_explorer_redraws():
    app = widgets.ReconstructionExplorer(lam_max=2.0, horizon=1.0, steps=100)
    before = app.figure.data[1].y
    app.controls["lam_max"].value = 40.0
    app.controls["horizon"].value = 2.0
    assert app.figure.data[1].y != before
    assert app.result["error"] > 1e6 and "λmax·T = 80.0" in app.status.value


def test_baseline_explorer_redraws_for_lambda_cg_steps_and_truncation(monkeypatch):
    computed = []  # the methods each recomputation ran, seen from outside the app
    real = widgets.compare_methods

    def recording(*args, methods, **kwargs):
        computed.append([m[1] for m in methods])
        return real(*args, methods=methods, **kwargs)

    monkeypatch.setattr(widgets, "compare_methods", recording)
    support_loss, query_loss, theta = build_task(8, "float64", "cpu", 4, 0)
    app = widgets.BaselineExplorer(support_loss, query_loss, theta, steps_list=(4, 8), cg_steps=2, truncate=2)
    assert computed == [["adjoint", "fomaml", "reptile", "imaml", "truncated"]]
    labels = [t.name for t in app.figure.data]
    imaml = labels.index("imaml")
    trunc = labels.index("truncated (last 2)")
    adjoint = [r for r in app.rows if r["method"] == "adjoint"]
    before = app.figure.data[imaml].y
    app.controls["lam"].value = 20.0
    assert app.figure.data[imaml].y != before and computed[-1] == ["imaml"]
    before = app.figure.data[imaml].y
    app.controls["cg_steps"].value = 6
    assert app.figure.data[imaml].y != before and computed[-1] == ["imaml"]
    before = app.figure.data[trunc].y
    app.controls["truncate"].value = 4
    assert app.figure.data[trunc].y != before and app.figure.data[trunc].name == "truncated (last 4)"
    assert computed[-1] == ["truncated"]
    # the rows of methods no change touched are the very same objects
    assert all(a is b for a, b in zip(adjoint, [r for r in app.rows if r["method"] == "adjoint"]))
    # the steps control recomputes nothing: it moves the dotted line and the status line
    n = len(computed)
    app.controls["steps"].value = 4
    assert len(computed) == n and app.figure.data[-1].x == (4, 4) and app.status.value.startswith("at 4 steps")


def test_cost_explorer_measures_every_point_once_in_the_background():
    import threading

    from amaml_lab.measure import measure as measure_row

    calls = []

    def measure(name, steps):
        calls.append((name, steps, threading.current_thread() is threading.main_thread()))
        return measure_row(dict(name=name, steps=steps, shots=5, hidden=4, step_size=0.01, solver="rk4",
                                dtype="float64", device="cpu", repeat=1, time_budget=30.0, seed=0))

    app = widgets.CostExplorer(steps_options=(4, 8), measure=measure)
    app.controls["steps"].value = 8  # a move while measuring: no measurement of its own
    app.wait(60)
    assert sorted(c[:2] for c in calls) == sorted((n, s) for s in (4, 8) for n in viz.COST_METHODS)
    assert not any(c[2] for c in calls)  # all in the background
    assert app.figure.data[0].x == (4, 8) and len(app.figure.data[0].y) == 2
    app.controls["steps"].value = 4
    assert len(calls) == 2 * len(viz.COST_METHODS)
    assert all(r["time_s"] > 0 for r in app.rows)
    assert "all 6 points measured" in app.status.value


def test_cost_explorer_measures_in_one_separate_process():
    app = widgets.CostExplorer(steps_options=(3, 6), methods=("maml", "adjoint"), shots=5, hidden=4)
    assert "in a separate process" in app.status.value or app.rows
    app.wait(120)
    assert [(r["name"], r["steps"]) for r in app.rows] == [("maml", 3), ("adjoint", 3), ("maml", 6), ("adjoint", 6)]
    assert all(r["peak_mb"] > 0 and r["time_s"] > 0 for r in app.rows)


def test_cost_explorer_reports_a_failed_measurement():
    def measure(name, steps):
        raise ValueError("no such luck")

    app = widgets.CostExplorer(steps_options=(4,), measure=measure)
    with pytest.raises(RuntimeError, match="no such luck"):
        app.wait(30)
    assert "measuring stopped" in app.status.value


@pytest.fixture(scope="module")
def horizon_app():
    from amaml_lab import horizon

    data = horizon_data.compute(dict(shots=6, queries=8, hidden=(8,), seed=1), step_sizes=(0.02, 0.05),
                           solvers=("euler", "rk4"), steps=horizon.log_steps(30), workers=1)
    return widgets.HorizonExplorer(data=data, steps=10, step_size=0.02, solver="rk4")


def test_horizon_explorer_moves_every_panel_with_the_steps(horizon_app, monkeypatch):
    from amaml_lab import horizon

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


def test_horizon_explorer_rejects_what_it_did_not_compute(horizon_app):
    for kwargs, name in (({"steps": 7}, "steps"), ({"step_size": 0.1}, "step_size"), ({"solver": "midpoint"}, "solver"),
                         ({"methods": ("maml", "nope")}, "methods")):
        with pytest.raises(ValueError, match=name):
            widgets.HorizonExplorer(data=horizon_app.data, **kwargs)


def test_measured_costs_are_shipped():
    cost = widgets.measured_costs()
    names = {r["name"] for r in cost["rows"]}
    assert {"maml", "adjoint"} <= names and "python -m amaml_lab.bench" in cost["command"]


def test_experiment_figures_from_a_run(tmp_path):
    from amaml_lab.config import RunConfig
    from amaml_lab.runs import load_run, run

    cfg = RunConfig("Sinusoid", 5, 5, 2, meta_steps=3, tasks=3, pool=10, hidden=4, checkpoint_every=3,
                    eval_tasks=2, eval_steps=20)
    run(cfg, tmp_path / "adjoint", show_progress=False)
    loaded = load_run(tmp_path / "adjoint")
    assert len(loaded["metrics"]) == 3 and len(loaded["eval"]) == 3
    fig = viz.learning_curves_figure({"adjoint": loaded}, window=2)
    assert list(fig.data[0].x) == [1, 2, 3]
    fig = viz.finetune_figure({"adjoint": loaded})
    assert list(fig.data[0].x) == [0, 10, 20]


def test_meta_progress_figure_reads_evals_csv(tmp_path):
    from amaml_lab.config import RunConfig
    from amaml_lab.runs import load_run, run

    cfg = RunConfig("Sinusoid", 5, 5, 2, meta_steps=4, tasks=3, pool=10, hidden=4, checkpoint_every=2,
                    eval_tasks=2, eval_steps=20, eval_interval=2)
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
        "backsolve": [{"steps": 2, "horizon": 0.02, "backsolve": float("inf"), "adjoint": 1e-9, "checkpointed": 1e-9,
                       "reconstruction_error": 1.0}],
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
    runs = {"maml": {"summary": {"final": {"accuracy": 0.5, "accuracy_ci95": 0.1}}},
            "comln": {"summary": {"final": {"accuracy": 0.7, "accuracy_ci95": 0.05}}}}
    bars = viz.accuracy_figure(runs)
    assert list(bars.data[0].y) == [50.0, 70.0] and list(bars.data[0].error_y.array) == [10.0, 5.0]
