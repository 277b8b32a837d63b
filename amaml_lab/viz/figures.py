"""Plotly figures for the notebooks: plain functions from the data of :mod:`explore` and :mod:`train` to figures.

Each builder returns a ``go.Figure``; pass ``widget=True`` for a
``go.FigureWidget`` whose traces a widget app can update in place.  The
``update_*`` functions write new data into an existing figure's traces (inside
one ``batch_update``), so a slider redraws without rebuilding the figure.
"""

from __future__ import annotations

import plotly.graph_objects as go

from ..teach import surfaces as explore
from .style import (
    PANEL_FONT,
    PATH_COLORS,
    SOLVER_COLORS,
    as_widget,
    color_of,
    log_axis,
    panel_titles,
    run_colors,
    run_styles,
    style_of,
    wire,
)


def _figure(traces, layout, widget: bool):
    fig = (go.FigureWidget if widget else go.Figure)(data=traces)
    fig.update_layout(template="plotly_white", margin=dict(l=60, r=20, t=50, b=50), **layout)
    return fig


# ---------------------------------------------------------------- 01: the inner loop on a surface
PATH_NAMES = ("gradient descent", "solver steps", "gradient flow")
PATH_POINTS = 200  # a longer path is drawn through about this many of its points


def _path_traces(paths: dict) -> list[dict]:
    """Data for the three path traces, in PATH_NAMES order (the solver's path may be absent: empty)."""
    solver_key = next((k for k in paths if k.endswith("steps")), None)
    out = []
    for name in PATH_NAMES:
        key = solver_key if name == "solver steps" else name
        pts = paths.get(key) if key else None
        if pts is None:
            out.append(dict(x=[], y=[], name="(same as gradient descent)"))
        else:
            out.append(dict(x=wire(pts[:, 0], PATH_POINTS), y=wire(pts[:, 1], PATH_POINTS), name=key))
    return out


def surface_figure(surface: str, paths: dict, widget: bool = False):
    """Contours of a 2-D loss surface with the inner loop's paths drawn on them."""
    xs, ys, z = explore.surface_grid(surface)
    s = explore.surface(surface)
    traces = [
        go.Contour(
            x=xs.tolist(),
            y=ys.tolist(),
            z=z.log1p().tolist(),
            colorscale="Greys",
            showscale=False,
            contours=dict(coloring="lines"),
            ncontours=30,
            name="log(1 + loss)",
            hoverinfo="skip",
        )
    ]
    styles = [
        dict(mode="lines+markers", marker=dict(size=6)),
        dict(mode="markers", marker=dict(size=8, symbol="x")),
        dict(mode="lines", line=dict(width=3)),
    ]
    for data, style, name in zip(_path_traces(paths), styles, PATH_NAMES):
        traces.append(go.Scatter(**data, **style, line_color=PATH_COLORS[name]))
    return _figure(
        traces,
        dict(
            title=_surface_title(s),
            xaxis=dict(range=s.box[:2], title="u₁"),
            yaxis=dict(range=s.box[2:], title="u₂", scaleanchor="x"),
            height=520,
            legend=dict(orientation="h", y=-0.15),
        ),
        widget,
    )


def _surface_title(s) -> str:
    return f"{s.name}<br><sup>{s.doc}</sup>"


def update_surface(fig, surface: str, paths: dict, contours: bool = True) -> None:
    """New paths; with ``contours`` also the surface (its contours, title and box), else those are left alone."""
    with fig.batch_update():
        if contours:
            xs, ys, z = explore.surface_grid(surface)
            s = explore.surface(surface)
            fig.data[0].x, fig.data[0].y, fig.data[0].z = xs.tolist(), ys.tolist(), z.log1p().tolist()
            fig.layout.title.text = _surface_title(s)
            fig.layout.xaxis.range, fig.layout.yaxis.range = s.box[:2], s.box[2:]
        for trace, data in zip(fig.data[1:], _path_traces(paths)):
            trace.x, trace.y, trace.name = data["x"], data["y"], data["name"]


# ---------------------------------------------------------------- 02: adjoint against unrolled
def agreement_figure(rows: list[dict]):
    """Relative difference to maml's gradient against steps, at a fixed horizon."""
    steps = [r["steps"] for r in rows]
    traces = [
        go.Scatter(
            x=steps, y=[max(r[k], 1e-17) for r in rows], mode="lines+markers", name=f"adjoint ({k})", line=style_of(k)
        )
        for k in ("continuous", "discrete")
    ]
    return _figure(
        traces,
        dict(
            title="adjoint vs back-propagation through the same steps (fixed T)",
            xaxis=log_axis(plain=True, title="inner steps"),
            yaxis=log_axis(title="relative difference"),
        ),
        False,
    )


def order_figure(rows: list[dict]):
    """Error of the continuous adjoint against the exact flow, log-log in the step size, per solver."""
    traces = []
    for solver in dict.fromkeys(r["solver"] for r in rows):
        mine = [r for r in rows if r["solver"] == solver]
        slope = mine[-1]["slope"]
        traces.append(
            go.Scatter(
                x=[r["step_size"] for r in mine],
                y=[r["error"] for r in mine],
                mode="lines+markers",
                name=f"{solver} (slope {slope:.2f})",
                line_color=SOLVER_COLORS.get(solver),
            )
        )
    return _figure(
        traces,
        dict(
            title="the continuous adjoint's error against the exact meta-gradient",
            xaxis=log_axis(plain=True, span=[r["step_size"] for r in rows], title="step size h"),
            yaxis=log_axis(title="relative error"),
        ),
        False,
    )


COST_METHODS = ("maml", "adjoint", "adjoint-sqrt")
# the horizon explorer's cost panel: the shipped measurements of these bench rows (compiled: the same methods as
# torch.compile graphs, amaml_lab.compiled), and their colours
HORIZON_COST = {
    name: color_of(name)
    for name in ("maml", "adjoint", "adjoint-sqrt", "adjoint-grid", "maml-compiled", "adjoint-compiled")
}


def cost_figure(rows: list[dict], widget: bool = False, steps: int | None = None):
    """Time and peak memory against steps, one trace per method (rows of :func:`amaml_lab.bench.worker.measure`); with
    ``steps``, a ring on each method's point at that many steps (the last trace of each panel, "steps now")."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("time (s)", "peak memory (MB)"))
    for col, key in ((1, "time_s"), (2, "peak_mb")):
        for name in COST_METHODS:
            mine = sorted((r for r in rows if r["name"] == name), key=lambda r: r["steps"])
            fig.add_trace(
                go.Scatter(
                    x=[r["steps"] for r in mine],
                    y=[r[key] for r in mine],
                    mode="lines+markers",
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    line=style_of(name),
                ),
                1,
                col,
            )
    for col, key in ((1, "time_s"), (2, "peak_mb")):
        fig.add_trace(
            go.Scatter(
                **_cost_now(rows, key, steps),
                mode="markers",
                name="steps now",
                showlegend=False,
                marker=dict(size=14, symbol="circle-open", line=dict(width=2.5)),
            ),
            1,
            col,
        )
    fig.update_xaxes(**log_axis(plain=True, title="inner steps"))
    fig.update_yaxes(**log_axis(plain=True))
    fig.update_layout(template="plotly_white", height=400, margin=dict(l=60, r=20, t=50, b=50))
    return as_widget(fig) if widget else fig


def _cost_now(rows: list[dict], key: str, steps: int | None) -> dict:
    """The "steps now" rings: each method's point at ``steps`` (those measured), in its colour."""
    here = [r for name in COST_METHODS for r in rows if r["name"] == name and r["steps"] == steps]
    return dict(
        x=[r["steps"] for r in here],
        y=[r[key] for r in here],
        marker_color=[color_of(r["name"]) for r in here],
        text=[r["name"] for r in here],
    )


def update_cost(fig, rows: list[dict], steps: int | None = None) -> None:
    """New rows and the rings at ``steps``: a trace is sent to the browser only where its data changed."""
    with fig.batch_update():
        for i, key in enumerate(("time_s", "peak_mb")):
            for j, name in enumerate(COST_METHODS):
                mine = sorted((r for r in rows if r["name"] == name), key=lambda r: r["steps"])
                trace = fig.data[i * len(COST_METHODS) + j]
                trace.x, trace.y = [r["steps"] for r in mine], [r[key] for r in mine]
            now, ring = _cost_now(rows, key, steps), fig.data[2 * len(COST_METHODS) + i]
            ring.x, ring.y, ring.marker.color, ring.text = now["x"], now["y"], now["marker_color"], now["text"]


# ---------------------------------------------------------------- 03: running the state backward
def reconstruction_figure(result: dict, component: int = 0, widget: bool = False):
    """One component of the true u(t) and of the state rebuilt backward from u(T)."""
    t = result["t"].tolist()
    traces = [
        go.Scatter(
            x=t,
            y=result["forward"][:, component].tolist(),
            name="u(t), forward",
            line_color=PATH_COLORS["gradient flow"],
        ),
        go.Scatter(
            x=t,
            y=result["backward"][:, component].clamp(-1e6, 1e6).tolist(),
            name="rebuilt backward from u(T) (drawn at ±1e6 beyond)",
            line=dict(color=color_of("backsolve"), dash="dash"),
        ),
    ]
    return _figure(
        traces,
        dict(title=RECONSTRUCTION_TITLE, xaxis=dict(title="t"), yaxis=dict(title=f"u_{component + 1}(t)"), height=380),
        widget,
    )


# not the error (the explorer's status line says it): a title that changed with the controls would cost the browser
# a second full redraw of the figure at every move
RECONSTRUCTION_TITLE = "the state rebuilt backward from u(T), against the true one"


def update_reconstruction(fig, result: dict, component: int = 0) -> None:
    with fig.batch_update():
        t = wire(result["t"])
        fig.data[0].x, fig.data[0].y = t, wire(result["forward"][:, component])
        fig.data[1].x, fig.data[1].y = t, wire(result["backward"][:, component].clamp(-1e6, 1e6))


def blowup_figure(rows: list[dict]):
    """Reconstruction error of u(0) against lambda_max T (log scale)."""
    traces = [
        go.Scatter(
            x=[r["lam_T"] for r in rows],
            y=[max(r["error"], 1e-17) for r in rows],
            mode="lines+markers",
            name="rebuilt u(0)",
            line_color=color_of("backsolve"),
        )
    ]
    return _figure(
        traces,
        dict(
            title="running the flow backward amplifies rounding by about e^(λmax T)",
            xaxis=dict(title="λmax · T"),
            yaxis=log_axis(title="relative error of u(0)"),
        ),
        False,
    )


def backsolve_figure(rows: list[dict]):
    """Meta-gradient error to maml against the horizon: back-solved vs stored vs checkpointed adjoint."""
    x = [r["horizon"] for r in rows]
    traces = [
        go.Scatter(x=x, y=[min(max(r[k], 1e-17), 1e30) for r in rows], mode="lines+markers", name=k, line=style_of(k))
        for k in ("backsolve", "adjoint", "checkpointed")
    ]
    return _figure(
        traces,
        dict(
            title="meta-gradient error against back-propagation",
            xaxis=dict(title="horizon T"),
            yaxis=log_axis(title="relative error"),
        ),
        False,
    )


# ---------------------------------------------------------------- 04: the baselines side by side
def baseline_lines(rows: list[dict], key: str) -> dict:
    """{label: (steps, values)} of ``rows`` for one panel (``key``: rel_error, drawn from 1e-17 up, or cosine)."""
    out = {}
    for r in rows:
        out.setdefault(r["label"], ([], []))
        out[r["label"]][0].append(r["steps"])
        out[r["label"]][1].append(max(r[key], 1e-17) if key == "rel_error" else r[key])
    return out


def baselines_figure(rows: list[dict], widget: bool = False, steps: int | None = None):
    """Relative error and cosine to the exact meta-gradient against steps, per method (a dotted line at ``steps``)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=panel_titles(
            ("relative error to the exact meta-gradient of each method's own loop", "cosine to it")
        ),
    )
    fig.update_annotations(font_size=PANEL_FONT)
    for col, key in ((1, "rel_error"), (2, "cosine")):
        for label, (x, y) in baseline_lines(rows, key).items():
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="lines+markers",
                    name=label,
                    legendgroup=label.split()[0],
                    showlegend=col == 1,
                    line=style_of(label),
                ),
                1,
                col,
            )
    for col, key in ((1, "rel_error"), (2, "cosine")):
        fig.add_trace(
            go.Scatter(
                **steps_line(rows, key, steps),
                mode="lines",
                showlegend=False,
                name="steps now",
                line=dict(color="#111111", dash="dot"),
            ),
            1,
            col,
        )
    fig.update_xaxes(**log_axis(plain=True, title="inner steps"))
    fig.update_yaxes(**log_axis(), row=1, col=1)
    fig.update_layout(template="plotly_white", height=420, margin=dict(l=60, r=20, t=50, b=50))
    return as_widget(fig) if widget else fig


def steps_line(rows, key, steps) -> dict:
    """The dotted line at ``steps``, spanning the values of ``rows`` in panel ``key``."""
    if steps is None:
        return dict(x=[], y=[])
    values = [max(r[key], 1e-17) if key == "rel_error" else r[key] for r in rows] or [1.0]
    return dict(x=[steps, steps], y=[min(values), max(values)])


def update_baselines(fig, rows: list[dict], steps: int | None = None) -> None:
    with fig.batch_update():
        i = 0
        for key in ("rel_error", "cosine"):
            for label, (x, y) in baseline_lines(rows, key).items():
                fig.data[i].x, fig.data[i].y, fig.data[i].name = x, y, label
                i += 1
        for key in ("rel_error", "cosine"):
            line = steps_line(rows, key, steps)
            fig.data[i].x, fig.data[i].y = line["x"], line["y"]
            i += 1


# ---------------------------------------------------------------- 05-06: experiments
MEASURES = {
    "theta": "at θ (no adaptation)",
    "inner": "after the method's own inner loop",
    "ft10": "after 10 Adam iterations",
    "ft100": "after 100 Adam iterations",
    "finetuned": "after the evaluation's Adam fine-tuning",
}


def meta_progress_figure(runs: dict, measures=("inner", "finetuned"), title: str | None = None):
    """Meta-test nRMSE (mean ± s.e. over tasks) against meta-steps, from each run's ``evals.csv``.

    One panel per measure (see :data:`MEASURES`): after the method's own inner
    loop is what its meta-gradient optimises; after fine-tuning is the
    reference's protocol.
    """
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1, cols=len(measures), subplot_titles=[MEASURES[m] for m in measures], horizontal_spacing=0.08
    )
    styles = run_styles(runs)
    for col, measure in enumerate(measures, start=1):
        for label, r in runs.items():
            rows = [e for e in r["evals"] if f"{measure}_mean" in e]
            fig.add_trace(
                go.Scatter(
                    x=[e["meta_step"] for e in rows],
                    y=[e[f"{measure}_mean"] for e in rows],
                    error_y=dict(type="data", array=[e[f"{measure}_se"] for e in rows], thickness=0.6),
                    mode="lines+markers",
                    marker_size=4,
                    name=label,
                    legendgroup=label,
                    showlegend=col == 1,
                    line=styles[label],
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text="meta-step", row=1, col=col)
    fig.update_yaxes(title_text="meta-test nRMSE (mean ± s.e.)", row=1, col=1)
    fig.update_layout(
        template="plotly_white",
        margin=dict(l=60, r=20, t=70, b=50),
        title=title or "meta-test error along meta-training",
    )
    return fig


def _smooth(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def learning_curves_figure(runs: dict, window: int = 10, loss: str = "query MSE (standardised)"):
    """Meta-training query loss (moving average over ``window`` meta-steps), one trace per run label.

    ``loss`` names what the runs' ``query_loss`` is (``"query cross-entropy"`` for classification).
    """
    styles = run_styles(runs)
    traces = [
        go.Scatter(
            x=[m["meta_step"] for m in r["metrics"]],
            y=_smooth([m["query_loss"] for m in r["metrics"]], window),
            mode="lines",
            name=label,
            line=styles[label],
        )
        for label, r in runs.items()
    ]
    return _figure(
        traces,
        dict(
            title=f"meta-training: {loss} (moving average of {window})",
            xaxis=dict(title="meta-step"),
            yaxis=dict(title=loss),
        ),
        False,
    )


def finetune_figure(runs: dict, title: str | None = None, colors: dict | None = None):
    """The evaluation protocol's curves: meta-test nRMSE (mean ± s.e.) against Adam fine-tuning iterations.

    Error bars for short curves; for long ones (more than 30 points) a band of ± one standard error.
    ``colors`` maps labels to colours (default: each run's method's, see :func:`run_styles`).
    """
    traces, styles = [], run_styles(runs)
    for label, r in runs.items():
        x = [c["iteration"] for c in r["eval"]]
        y = [c["nrmse_mean"] for c in r["eval"]]
        se = [c["nrmse_se"] for c in r["eval"]]
        color = (colors or {}).get(label) or styles[label]["color"]
        long = len(x) > 30
        line = dict(color=color, dash=styles[label]["dash"])
        traces.append(
            go.Scatter(
                x=x,
                y=y,
                mode="lines",
                name=label,
                line=line,
                legendgroup=label,
                error_y=None if long else dict(type="data", array=se, visible=True, thickness=0.5),
            )
        )
        if long:
            traces.append(
                go.Scatter(
                    x=x + x[::-1],
                    y=[m + e for m, e in zip(y, se)] + [m - e for m, e in zip(y[::-1], se[::-1])],
                    fill="toself",
                    mode="lines",
                    line_width=0,
                    fillcolor=color,
                    opacity=0.15,
                    legendgroup=label,
                    showlegend=False,
                    hoverinfo="skip",
                    name=f"{label} ± s.e.",
                )
            )
    return _figure(
        traces,
        dict(
            title=title or "meta-test: fine-tuning from the meta-learned θ",
            xaxis=dict(title="Adam iterations on the support set"),
            yaxis=dict(title="nRMSE (mean ± s.e.)"),
        ),
        False,
    )


# ---------------------------------------------------------------- 07: few-shot images
def episode_figure(support, query=None, max_query: int = 3):
    """An N-way K-shot episode as a grid of images: one row per class, its K shots then up to ``max_query`` queries."""
    from plotly.subplots import make_subplots

    xs, ys = support
    ways = int(ys.max()) + 1
    rows = [[xs[i, 0] for i in range(len(ys)) if int(ys[i]) == k] for k in range(ways)]
    shots = len(rows[0])
    if query is not None:
        xq, yq = query
        for k in range(ways):
            rows[k] += [xq[i, 0] for i in range(len(yq)) if int(yq[i]) == k][:max_query]
    cols = max(len(r) for r in rows)
    fig = make_subplots(rows=ways, cols=cols, horizontal_spacing=0.01, vertical_spacing=0.01)
    for k, images in enumerate(rows):
        for j, img in enumerate(images):
            fig.add_trace(
                go.Heatmap(
                    z=img.flip(0).tolist(), colorscale="Greys", showscale=False, zmin=0, zmax=1, hoverinfo="skip"
                ),
                k + 1,
                j + 1,
            )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x")
    title = f"{ways}-way {shots}-shot episode: each row a class; support first" + (", then queries" if query else "")
    fig.update_layout(
        template="plotly_white",
        title=title,
        height=110 * ways + 60,
        width=110 * cols + 40,
        margin=dict(l=10, r=10, t=50, b=10),
    )
    return fig


def accuracy_figure(runs: dict):
    """Meta-test accuracy with its 95% confidence interval, one bar per run label."""
    labels = list(runs)
    finals = [runs[k]["summary"]["final"] for k in labels]
    colors = run_colors(labels)
    trace = go.Bar(
        x=labels,
        y=[100 * f["accuracy"] for f in finals],
        marker_color=[colors[k] for k in labels],
        error_y=dict(type="data", array=[100 * f["accuracy_ci95"] for f in finals], visible=True),
    )
    return _figure(
        [trace],
        dict(
            title="meta-test accuracy (mean ± 95% CI over the episodes)",
            yaxis=dict(title="accuracy (%)", range=[0, 100]),
        ),
        False,
    )


# ---------------------------------------------------------------- 02: the horizon explorer
