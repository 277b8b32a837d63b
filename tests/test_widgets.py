"""The widget apps outside any kernel: set a control's value, the figure's traces change."""
import pytest

from amaml_lab import bench, viz, widgets


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


def test_baseline_explorer_redraws_for_lambda_cg_steps_and_truncation():
    support_loss, query_loss, theta = bench.build_task(8, "float64", "cpu", 4, 0)
    app = widgets.BaselineExplorer(support_loss, query_loss, theta, steps_list=(4, 8), cg_steps=2, truncate=2)
    labels = [t.name for t in app.figure.data]
    imaml = labels.index("imaml")
    trunc = labels.index("truncated (last 2)")
    before = app.figure.data[imaml].y
    app.controls["lam"].value = 20.0
    assert app.figure.data[imaml].y != before
    before = app.figure.data[imaml].y
    app.controls["cg_steps"].value = 6
    assert app.figure.data[imaml].y != before
    before = app.figure.data[trunc].y
    app.controls["truncate"].value = 4
    assert app.figure.data[trunc].y != before and app.figure.data[trunc].name == "truncated (last 4)"


def test_cost_explorer_measures_each_new_point_once():
    calls = []

    def measure(name, steps):
        calls.append((name, steps))
        return widgets.bench_measure(name, steps, shots=5, hidden=4, in_process=True)

    app = widgets.CostExplorer(steps_options=(4, 8), measure=measure)
    assert app.figure.data[0].x == (4,)
    app.controls["steps"].value = 8
    assert app.figure.data[0].x == (4, 8) and len(app.figure.data[0].y) == 2
    app.controls["steps"].value = 4
    assert len(calls) == 2 * len(viz.COST_METHODS)  # the first point was not measured again
    assert all(r["time_s"] > 0 for r in app.rows)


def test_experiment_figures_from_a_run(tmp_path):
    from amaml_lab.train import RunConfig, run

    cfg = RunConfig("Sinusoid", 5, 5, 2, meta_steps=3, tasks=3, pool=10, hidden=4, checkpoint_every=3,
                    eval_tasks=2, eval_steps=20)
    run(cfg, tmp_path / "adjoint", show_progress=False)
    loaded = viz.load_run(tmp_path / "adjoint")
    assert len(loaded["metrics"]) == 3 and len(loaded["eval"]) == 3
    fig = viz.learning_curves_figure({"adjoint": loaded}, window=2)
    assert list(fig.data[0].x) == [1, 2, 3]
    fig = viz.finetune_figure({"adjoint": loaded})
    assert list(fig.data[0].x) == [0, 10, 20]


def test_meta_progress_figure_reads_evals_csv(tmp_path):
    from amaml_lab.train import RunConfig, run

    cfg = RunConfig("Sinusoid", 5, 5, 2, meta_steps=4, tasks=3, pool=10, hidden=4, checkpoint_every=2,
                    eval_tasks=2, eval_steps=20, eval_interval=2)
    summary = run(cfg, tmp_path / "maml", show_progress=False)
    loaded = viz.load_run(tmp_path / "maml")
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
