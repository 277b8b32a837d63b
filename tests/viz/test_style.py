"""One style across the figures: one colour per method (whatever the run's label), and log axes that read in
decades (amaml_lab.viz.style.METHOD_COLORS, style_of, run_styles, log_axis)."""

import itertools

import plotly.graph_objects as go
import pytest

from amaml_lab import viz
from amaml_lab.metagrad import METHODS
from amaml_lab.viz import horizons as viz_horizon
from amaml_lab.viz import payoff as viz_study
from amaml_lab.viz import style as viz_style


def _rgb(color: str):
    return tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))


def test_every_method_has_its_own_colour():
    assert set(METHODS) <= set(viz_style.METHOD_COLORS)
    colors = [viz_style.METHOD_COLORS[m] for m in METHODS]
    assert len(set(c.lower() for c in colors)) == len(colors)
    # apart, not merely different strings: every pair differs by a visible amount in RGB
    for a, b in itertools.combinations(colors, 2):
        assert sum((x - y) ** 2 for x, y in zip(_rgb(a), _rgb(b))) ** 0.5 > 60, (a, b)
    # what is not a method (tasks, unnamed runs) takes none of the methods' colours
    assert not set(viz_style.OTHER_COLORS) & set(colors)


@pytest.mark.parametrize(
    "label, method",
    [
        ("maml", "maml"),
        ("maml-10", "maml"),
        ("maml-100", "maml"),
        ("maml-10-reference-protocol", "maml"),
        ("adjoint-100", "adjoint"),
        ("adjoint (discrete)", "adjoint"),
        ("grid", "adjoint"),
        ("adjoint-sqrt", "adjoint"),
        ("conv4-adjoint-sqrt", "adjoint"),
        ("maml = adjoint (discrete)", "maml"),
        ("comln", "comln"),
        ("comln-5way", "comln"),
        ("truncated (last 5)", "truncated"),
        ("fomaml, reg 1", "fomaml"),
        ("imaml", "imaml"),
        ("backsolve (state run backward)", "backsolve"),
        ("forward", "forward"),
        ("gradient flow", None),
    ],
)
def test_a_label_resolves_to_its_method(label, method):
    assert viz_style.method_of(label) == method
    if method is not None and method != "adjoint":
        assert viz_style.color_of(label) == viz_style.METHOD_COLORS[method]


def test_the_adjoints_variants_keep_its_hue_and_differ_by_dash():
    styles = {k: viz_style.style_of(k) for k in ("adjoint", "adjoint (discrete)", "adjoint-sqrt", "adjoint-grid")}
    assert len({s["dash"] for s in styles.values()}) == 4
    base = _rgb(viz_style.METHOD_COLORS["adjoint"])
    for s in styles.values():  # a darker shade of the same colour: every channel scaled by one factor
        rgb = _rgb(s["color"])
        factors = [c / b for c, b in zip(rgb, base) if b]
        assert max(factors) - min(factors) < 0.02 and all(c == 0 for c, b in zip(rgb, base) if not b)


def _runs(labels):
    """Run dicts as load_run gives them, with just what the figures of notebooks 05-07 read."""
    runs = {}
    for i, label in enumerate(labels):
        evals = [
            {
                "meta_step": s,
                **{f"{m}_{k}": 0.5 + 0.01 * i for m in ("inner", "finetuned") for k in ("mean",)},
                **{f"{m}_se": 0.01 for m in ("inner", "finetuned")},
            }
            for s in (0, 5, 10)
        ]
        runs[label] = {
            "evals": evals,
            "metrics": [{"meta_step": s, "query_loss": 1.0 / (s + 1)} for s in range(10)],
            "eval": [{"iteration": s, "nrmse_mean": 1.0 / (s + 1), "nrmse_se": 0.01} for s in range(5)],
            "summary": {"final": {"accuracy": 0.5, "accuracy_ci95": 0.01}},
        }
    return runs


def _trace_colors(fig) -> dict:
    """{trace name: (colour, dash)} of a figure's named line traces; a bar chart's colours by its x labels."""
    out = {}
    for t in fig.data:
        if isinstance(t, go.Bar):
            out.update({x: (c, None) for x, c in zip(t.x, t.marker.color)})
        elif t.name and t.showlegend is not False and not t.name.endswith("± s.e."):
            out.setdefault(t.name, (t.line.color, t.line.dash))
    return out


FIGURES_OF_RUNS = [viz.meta_progress_figure, viz.learning_curves_figure, viz.finetune_figure, viz.accuracy_figure]


@pytest.mark.parametrize("figure", FIGURES_OF_RUNS, ids=lambda f: f.__name__)
def test_run_figures_colour_each_method_its_own_way(figure):
    # notebook 07: comln beside maml (they were both grey); notebook 05: three maml runs beside the adjoint's
    seven = _trace_colors(figure(_runs(["maml", "fomaml", "reptile", "imaml", "adjoint", "comln"])))
    assert seven["maml"][0] != seven["comln"][0]
    assert all(seven[m][0] == viz_style.METHOD_COLORS[m] for m in seven)
    five = _trace_colors(
        figure(
            _runs(["adjoint-100", "fomaml", "imaml", "maml-10", "maml-10-reference-protocol", "maml-100", "reptile"])
        )
    )
    assert (
        five["maml-10"][0] == viz_style.METHOD_COLORS["maml"]
        and five["adjoint-100"][0] == viz_style.METHOD_COLORS["adjoint"]
    )
    mamls = [five[k] for k in ("maml-10", "maml-10-reference-protocol", "maml-100")]
    assert len(set(mamls)) == 3  # three runs of one method told apart by shade (and dash, for lines) ...
    for color, _ in mamls:  # ... never by hue: each is maml's colour with black mixed in
        rgb, base = _rgb(color), _rgb(viz_style.METHOD_COLORS["maml"])
        assert rgb[0] == 0 and abs(rgb[1] / base[1] - rgb[2] / base[2]) < 0.02
    others = {k: v for k, v in five.items() if not k.startswith("maml")}
    assert not {c for c, _ in mamls} & {c for c, _ in others.values()}


def test_finetune_figure_takes_given_colours():
    fig = viz.finetune_figure(_runs(["maml", "comln"]), colors={"maml": "#123456"})
    assert (
        _trace_colors(fig)["maml"][0] == "#123456"
        and _trace_colors(fig)["comln"][0] == viz_style.METHOD_COLORS["comln"]
    )


# ---------------------------------------------------------------- log axes
def _log_axes(fig) -> list:
    layout = fig.layout
    axes = [layout[k] for k in layout if k.startswith(("xaxis", "yaxis"))]
    return [a for a in axes if a.type == "log"]


def _reads_in_decades(axis) -> bool:
    if axis.tickvals is not None:  # a narrow span: 1, 2, 5 times powers of ten, written out
        return all(float(f"{v:.0e}".split("e")[0]) in (1, 2, 5) for v in axis.tickvals) and axis.ticktext
    # a tick at every power of ten (every second one on panel (c)'s 14 decades), as powers or plain numbers
    return axis.dtick in (1, 2) and axis.exponentformat in ("power", "none")


def _cost_rows():
    return [
        dict(name=n, steps=s, time_s=0.01 * s, peak_mb=0.1 * s)
        for n in ("maml", "adjoint", "adjoint-sqrt", "adjoint-grid", "maml-compiled", "adjoint-compiled")
        for s in (10, 100, 1000)
    ]


def _records():
    records = []
    for reg, method, steps, seed in itertools.product((0.0, 1.0), ("maml", "fomaml"), (1, 10, 100), (0, 1)):
        if method == "fomaml" and steps != 100:
            continue
        records.append(
            dict(
                setting="Sinusoid-10-10",
                reg=reg,
                method=method,
                steps=steps,
                seed=seed,
                tasks={"inner": [0.5 / steps + 0.1 * seed, 0.4]},
                summary={"config": {"eval_steps": 100, "step_size": 0.01}},
            )
        )
    return records


LOG_FIGURES = {
    "agreement_figure": lambda: viz.agreement_figure(
        [dict(steps=s, continuous=1e-3 / s, discrete=1e-14) for s in (4, 8, 16, 512)]
    ),
    "order_figure": lambda: viz.order_figure(
        [
            dict(solver=sv, step_size=2 / n, error=(2 / n) ** o, slope=o, steps=n)
            for sv, o in (("euler", 1), ("rk4", 4))
            for n in (5, 10, 20, 160)
        ]
    ),
    "order_figure (one decade)": lambda: viz.order_figure(
        [dict(solver="rk4", step_size=2 / n, error=1e-3 / n, slope=4, steps=n) for n in (5, 10, 20, 40)]
    ),
    "cost_figure": lambda: viz.cost_figure(_cost_rows()),
    "blowup_figure": lambda: viz.blowup_figure([dict(lam_T=x, error=1e-16 * 2.7**x) for x in (2, 20, 40)]),
    "backsolve_figure": lambda: viz.backsolve_figure(
        [dict(horizon=t, backsolve=10.0 ** (t - 8), adjoint=1e-9, checkpointed=1e-9) for t in (1, 5, 10)]
    ),
    "baselines_figure": lambda: viz.baselines_figure(
        [dict(label=lb, steps=s, rel_error=0.1 / s, cosine=0.9) for lb in ("adjoint", "fomaml") for s in (5, 50, 500)],
        steps=50,
    ),
    "own_loop_figure": lambda: viz_study.own_loop_figure(_records()),
    "memory_figure": lambda: viz_study.memory_figure(
        [dict(name=n, steps=s, peak_mb=s * 1.0) for n in ("conv4-maml", "conv4-adjoint") for s in (10, 100, 1000)], 2048
    ),
}


@pytest.mark.parametrize("name", LOG_FIGURES)
def test_every_log_axis_reads_in_decades(name):
    axes = _log_axes(LOG_FIGURES[name]())
    assert axes, "the figure has a log axis"
    assert all(_reads_in_decades(a) for a in axes), [a.to_plotly_json() for a in axes]


def test_the_horizon_explorers_log_axes_and_colours():
    from amaml_lab.teach import horizons as horizon
    from amaml_lab.teach import horizons_data as horizon_data

    data = horizon_data.compute(
        dict(shots=4, queries=4, hidden=(4,), seed=1),
        step_sizes=(0.05,),
        solvers=("rk4",),
        steps=horizon.log_steps(10),
        workers=1,
    )
    fig = viz_horizon.horizon_figure(data, 0.05, "rk4", 2, horizon.LINES, {"rows": _cost_rows()})
    axes = _log_axes(fig)
    assert len(axes) == 9 and all(_reads_in_decades(a) for a in axes)  # all but (a)'s two and the cosine's y
    lines = {t.name: t.line for t in fig.data if t.name in horizon.LABELS.values()}
    assert lines[horizon.LABELS["maml"]].color == viz_style.METHOD_COLORS["maml"]
    assert lines[horizon.LABELS["adjoint"]].color == viz_style.METHOD_COLORS["adjoint"]
    assert lines[horizon.LABELS["grid"]].dash == "dot"  # the adjoint's grid scheme: its hue, dotted
    measured = {t.name: t.line for t in fig.data if t.name and t.name.endswith("(measured)")}
    assert measured["maml (measured)"].color == viz_style.METHOD_COLORS["maml"]
    # the compiled path: its method's hue, lighter, long dashes (one look for "the same method, compiled")
    for name in ("maml", "adjoint"):
        line = measured[f"{name}-compiled (measured)"]
        assert (line.color, line.dash) == (viz_style.shade(viz_style.METHOD_COLORS[name], -0.35), "longdash")


def test_log_axis_settings():
    assert viz_style.log_axis() == dict(
        type="log",
        dtick=1,
        exponentformat="power",
        separatethousands=False,
        minor=dict(ticks="outside", ticklen=3, showgrid=False),
    )
    assert viz_style.log_axis(plain=True, title="steps")["exponentformat"] == "none"
    narrow = viz_style.log_axis(span=(0.0125, 0.4))
    assert narrow["tickvals"] == [0.02, 0.05, 0.1, 0.2] and narrow["ticktext"] == ["0.02", "0.05", "0.1", "0.2"]
    assert "dtick" not in narrow and viz_style.log_axis(span=(1e-3, 10))["dtick"] == 1
