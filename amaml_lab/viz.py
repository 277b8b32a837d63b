"""Plotly figures for the notebooks: plain functions from the data of :mod:`explore` and :mod:`train` to figures.

Each builder returns a ``go.Figure``; pass ``widget=True`` for a
``go.FigureWidget`` whose traces a widget app can update in place.  The
``update_*`` functions write new data into an existing figure's traces (inside
one ``batch_update``), so a slider redraws without rebuilding the figure.
"""
from __future__ import annotations

import re
from contextlib import contextmanager

import plotly.graph_objects as go

from . import explore

# ---------------------------------------------------------------- one style for every figure
# One colour per meta-gradient method, the same in every figure of every notebook: Okabe and Ito's colour-blind-safe
# palette (its yellow left out: it vanishes on white), then black, grey and Tol's wine for the last three.
METHOD_COLORS = {"maml": "#0072B2", "adjoint": "#D55E00", "backsolve": "#CC79A7", "fomaml": "#E69F00",
                 "reptile": "#009E73", "imaml": "#56B4E9", "truncated": "#999999", "comln": "#000000",
                 "forward": "#882255"}
# words that name a method without its name: the adjoint's schemes and states (a "grid" line is the adjoint's)
METHOD_ALIASES = {"continuous": "adjoint", "stored": "adjoint", "discrete": "adjoint", "grid": "adjoint",
                  "checkpointed": "adjoint", "sqrt": "adjoint", "backsolved": "backsolve"}
# the adjoint's variants keep its hue: a dash, and a darker shade (fraction of black mixed in); the stored
# continuous adjoint is the plain line.  "sqrt" and "c64" (the benchmark's names) are checkpointed.
VARIANTS = {"discrete": ("dash", 0.25), "checkpointed": ("dashdot", 0.4), "grid": ("dot", 0.55)}
# several runs of one method in one figure (maml-10, maml-100): the same hue, the 2nd, 3rd, ... dashed and darker
RUN_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
RUN_SHADES = (0.0, 0.3, 0.5, -0.3, 0.15, -0.5)
# what is not a method (tasks, runs whose label names none): hues none of the methods use
OTHER_COLORS = ("#332288", "#999933", "#AA4499", "#44AA99", "#661100", "#6699CC")
# not methods either: the inner loop's paths (notebook 01) and the ODE solvers (their order study, notebook 02)
PATH_COLORS = {"gradient descent": "#d62728", "solver steps": "#2ca02c", "gradient flow": "#1f77b4"}
SOLVER_COLORS = {"euler": "#9E9AC8", "midpoint": "#756BB1", "rk4": "#54278F", "dopri5": "#2D004B"}


def method_of(label) -> str | None:
    """The method a label names: its first word that is one (``maml-10`` and ``maml-10-reference-protocol`` are
    maml, ``conv4-adjoint-sqrt`` and ``grid`` the adjoint, ``truncated (last 5)`` truncated); None if none."""
    text = str(label).lower()
    if re.search(r"(?<![a-z0-9-])a-maml\b", text):  # the paper's name for the adjoint
        return "adjoint"
    for word in re.findall(r"[a-z0-9]+", text):
        if word in METHOD_COLORS:
            return word
        if word in METHOD_ALIASES:
            return METHOD_ALIASES[word]
    return None


def _variant(label) -> str | None:
    """The adjoint's variant a label names (its first word that names one), None for the plain stored adjoint."""
    for word in re.findall(r"[a-z0-9]+", str(label).lower()):
        if word in ("continuous", "stored"):
            return None
        if word in VARIANTS:
            return word
        if word == "sqrt" or re.fullmatch(r"c\d+", word):
            return "checkpointed"
    return None


def shade(color: str, amount: float) -> str:
    """``color`` (``#rrggbb``) with a fraction ``amount`` of black mixed in; of white where ``amount`` < 0."""
    target, amount = (0, amount) if amount >= 0 else (255, -amount)
    return "#" + "".join(f"{round(c + (target - c) * amount):02X}" for c in
                         (int(color[i:i + 2], 16) for i in (1, 3, 5)))


def style_of(label) -> dict | None:
    """A line's ``dict(color=..., dash=...)`` by the method its label names (see :func:`method_of`); the adjoint's
    variants (discrete, checkpointed, grid) in its hue, dashed and darker; None when the label names no method."""
    method = method_of(label)
    if method is None:
        return None
    dash, dark = VARIANTS.get(_variant(label), ("solid", 0.0)) if method == "adjoint" else ("solid", 0.0)
    return dict(color=shade(METHOD_COLORS[method], dark), dash=dash)


def color_of(label) -> str | None:
    """The colour of the method a label names (``maml-10``, ``maml``, ``maml (exact), reg 0`` alike); None if none."""
    style = style_of(label)
    return style and style["color"]


def run_styles(labels) -> dict:
    """``{label: dict(color=..., dash=...)}`` for the runs one figure shows, in order: each its method's colour; a
    second, third, ... run of one method the same hue, dashed and darker (never another hue); labels naming no
    method take the :data:`OTHER_COLORS` in turn."""
    out, seen, others = {}, {}, 0
    for label in labels:
        style = style_of(label)
        if style is None:
            style, others = dict(color=OTHER_COLORS[others % len(OTHER_COLORS)], dash="solid"), others + 1
        key = (method_of(label), _variant(label)) if method_of(label) else label
        k = seen[key] = seen.get(key, -1) + 1
        if k:
            dark = RUN_SHADES[k % len(RUN_SHADES)]
            dark = -abs(dark) if max(int(style["color"][i:i + 2], 16) for i in (1, 3, 5)) < 0x40 else dark
            style = dict(color=shade(style["color"], dark), dash=RUN_DASHES[k % len(RUN_DASHES)])
        out[label] = style
    return out


def run_colors(labels) -> dict:
    """One colour per run label: its method's (see :func:`run_styles`; maml-10 and maml-100 shades of one hue)."""
    return {label: style["color"] for label, style in run_styles(labels).items()}


def log_axis(plain: bool = False, span=None, **settings) -> dict:
    """Plotly settings for a log axis that reads at a glance: a labelled tick at each power of ten and nowhere
    else (``dtick=1``), labelled 10⁻², 10⁻¹, 1, 10, 10² (powers), or with ``plain=True`` 0.01, 0.1, 1, 10, 100,
    1,000 (for steps, seconds, megabytes); unlabelled minor ticks mark 2..9 of each decade.

    ``span=(low, high)``, the data's extent: where it covers less than two decades (one labelled tick or none),
    the ticks are 1, 2 and 5 times each power of ten in it, written out in full (0.02, 0.05, 0.1, 0.2).
    ``settings`` add to these or replace them (a title, a range in decades)."""
    axis = dict(type="log", dtick=1, exponentformat="none" if plain else "power", separatethousands=plain,
                minor=dict(ticks="outside", ticklen=3, showgrid=False))
    if span is not None and 0 < min(span) and max(span) < 100 * min(span):
        import math

        low, high = min(span), max(span)
        first = math.floor(math.log10(low))
        values = [float(f"{m}e{k}") for k in range(first, math.ceil(math.log10(high)) + 1) for m in (1, 2, 5)]
        values = [v for v in values if low / 1.01 <= v <= high * 1.01]
        if values:
            del axis["dtick"]
            axis.update(tickmode="array", tickvals=values, ticktext=[f"{v:,g}" for v in values])
    axis.update(settings)
    return axis


def _figure(traces, layout, widget: bool):
    fig = (go.FigureWidget if widget else go.Figure)(data=traces)
    fig.update_layout(template="plotly_white", margin=dict(l=60, r=20, t=50, b=50), **layout)
    return fig


@contextmanager
def traces_only(fig):
    """``fig.batch_update()`` for edits that only move trace data inside axes whose ranges already hold it: the
    browser re-plots the changed traces alone (plotly's animate path without its full redraw: the axes, legend
    and titles are not drawn again), about half the time of a full redraw on a large figure.  A layout edit, a
    change of visibility, or data outside the axes' ranges needs ``batch_update``.  Outside a widget (a plain
    ``Figure``, or inside another batch) it is ``batch_update``."""
    perform = getattr(fig, "_perform_batch_animate", None)  # the FigureWidget's own (plotly's batch_animate)
    if perform is None or getattr(fig, "_in_batch_mode", False):
        with fig.batch_update():
            yield
        return
    fig._perform_batch_animate = lambda opts: perform({**opts, "frame": {**opts.get("frame", {}), "redraw": False}})
    try:
        with fig.batch_animate(duration=0):
            yield
    finally:
        del fig._perform_batch_animate


def wire(values, most: int | None = None):
    """A trace's data column as a widget sends it best: a float32 numpy array (a binary buffer, not JSON numbers),
    thinned to about ``most`` evenly spaced points, the first and last kept.  Non-numeric columns pass as lists."""
    import numpy as np

    a = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values)
    if a.dtype.kind not in "fiub":
        return a.tolist()
    if most is not None and len(a) > most:
        a = a[np.unique(np.linspace(0, len(a) - 1, most).round().astype(int))]
    return np.ascontiguousarray(a, dtype=np.float32)


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
    traces = [go.Contour(x=xs.tolist(), y=ys.tolist(), z=z.log1p().tolist(), colorscale="Greys", showscale=False,
                         contours=dict(coloring="lines"), ncontours=30, name="log(1 + loss)", hoverinfo="skip")]
    styles = [dict(mode="lines+markers", marker=dict(size=6)), dict(mode="markers", marker=dict(size=8, symbol="x")),
              dict(mode="lines", line=dict(width=3))]
    for data, style, name in zip(_path_traces(paths), styles, PATH_NAMES):
        traces.append(go.Scatter(**data, **style, line_color=PATH_COLORS[name]))
    return _figure(traces, dict(title=_surface_title(s), xaxis=dict(range=s.box[:2], title="u₁"),
                                yaxis=dict(range=s.box[2:], title="u₂", scaleanchor="x"), height=520,
                                legend=dict(orientation="h", y=-0.15)), widget)


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
    traces = [go.Scatter(x=steps, y=[max(r[k], 1e-17) for r in rows], mode="lines+markers", name=f"adjoint ({k})",
                         line=style_of(k)) for k in ("continuous", "discrete")]
    return _figure(traces, dict(title="adjoint vs back-propagation through the same steps (fixed T)",
                                xaxis=log_axis(plain=True, title="inner steps"),
                                yaxis=log_axis(title="relative difference")), False)


def order_figure(rows: list[dict]):
    """Error of the continuous adjoint against the exact flow, log-log in the step size, per solver."""
    traces = []
    for solver in dict.fromkeys(r["solver"] for r in rows):
        mine = [r for r in rows if r["solver"] == solver]
        slope = mine[-1]["slope"]
        traces.append(go.Scatter(x=[r["step_size"] for r in mine], y=[r["error"] for r in mine], mode="lines+markers",
                                 name=f"{solver} (slope {slope:.2f})", line_color=SOLVER_COLORS.get(solver)))
    return _figure(traces, dict(title="the continuous adjoint's error against the exact meta-gradient",
                                xaxis=log_axis(plain=True, span=[r["step_size"] for r in rows], title="step size h"),
                                yaxis=log_axis(title="relative error")), False)


COST_METHODS = ("maml", "adjoint", "adjoint-sqrt")
# the horizon explorer's cost panel: the shipped measurements of these bench rows, and their colours
HORIZON_COST = {name: color_of(name) for name in ("maml", "adjoint", "adjoint-sqrt", "adjoint-grid")}


def cost_figure(rows: list[dict], widget: bool = False, steps: int | None = None):
    """Time and peak memory against steps, one trace per method (rows of :func:`amaml_lab.measure.measure`); with
    ``steps``, a ring on each method's point at that many steps (the last trace of each panel, "steps now")."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("time (s)", "peak memory (MB)"))
    if widget:
        fig = go.FigureWidget(fig)
    for col, key in ((1, "time_s"), (2, "peak_mb")):
        for name in COST_METHODS:
            mine = sorted((r for r in rows if r["name"] == name), key=lambda r: r["steps"])
            fig.add_trace(go.Scatter(x=[r["steps"] for r in mine], y=[r[key] for r in mine], mode="lines+markers",
                                     name=name, legendgroup=name, showlegend=col == 1, line=style_of(name)), 1, col)
    for col, key in ((1, "time_s"), (2, "peak_mb")):
        fig.add_trace(go.Scatter(**_cost_now(rows, key, steps), mode="markers", name="steps now", showlegend=False,
                                 marker=dict(size=14, symbol="circle-open", line=dict(width=2.5))), 1, col)
    fig.update_xaxes(**log_axis(plain=True, title="inner steps"))
    fig.update_yaxes(**log_axis(plain=True))
    fig.update_layout(template="plotly_white", height=400, margin=dict(l=60, r=20, t=50, b=50))
    return fig


def _cost_now(rows: list[dict], key: str, steps: int | None) -> dict:
    """The "steps now" rings: each method's point at ``steps`` (those measured), in its colour."""
    here = [r for name in COST_METHODS for r in rows if r["name"] == name and r["steps"] == steps]
    return dict(x=[r["steps"] for r in here], y=[r[key] for r in here], marker_color=[color_of(r["name"]) for r in here],
                text=[r["name"] for r in here])


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
    traces = [go.Scatter(x=t, y=result["forward"][:, component].tolist(), name="u(t), forward",
                         line_color=PATH_COLORS["gradient flow"]),
              go.Scatter(x=t, y=result["backward"][:, component].clamp(-1e6, 1e6).tolist(),
                         name="rebuilt backward from u(T) (drawn at ±1e6 beyond)",
                         line=dict(color=color_of("backsolve"), dash="dash"))]
    return _figure(traces, dict(title=RECONSTRUCTION_TITLE, xaxis=dict(title="t"),
                                yaxis=dict(title=f"u_{component + 1}(t)"), height=380), widget)


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
    traces = [go.Scatter(x=[r["lam_T"] for r in rows], y=[max(r["error"], 1e-17) for r in rows], mode="lines+markers",
                         name="rebuilt u(0)", line_color=color_of("backsolve"))]
    return _figure(traces, dict(title="running the flow backward amplifies rounding by about e^(λmax T)",
                                xaxis=dict(title="λmax · T"),
                                yaxis=log_axis(title="relative error of u(0)")), False)


def backsolve_figure(rows: list[dict]):
    """Meta-gradient error to maml against the horizon: back-solved vs stored vs checkpointed adjoint."""
    x = [r["horizon"] for r in rows]
    traces = [go.Scatter(x=x, y=[min(max(r[k], 1e-17), 1e30) for r in rows], mode="lines+markers", name=k,
                         line=style_of(k)) for k in ("backsolve", "adjoint", "checkpointed")]
    return _figure(traces, dict(title="meta-gradient error against back-propagation", xaxis=dict(title="horizon T"),
                                yaxis=log_axis(title="relative error")), False)


# ---------------------------------------------------------------- 04: the baselines side by side
def _baseline_data(rows: list[dict], key: str) -> dict:
    out = {}
    for r in rows:
        out.setdefault(r["label"], ([], []))
        out[r["label"]][0].append(r["steps"])
        out[r["label"]][1].append(max(r[key], 1e-17) if key == "rel_error" else r[key])
    return out


def baselines_figure(rows: list[dict], widget: bool = False, steps: int | None = None):
    """Relative error and cosine to the exact meta-gradient against steps, per method (a dotted line at ``steps``)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("relative error to the exact meta-gradient of each method's own loop", "cosine to it"))
    if widget:
        fig = go.FigureWidget(fig)
    for col, key in ((1, "rel_error"), (2, "cosine")):
        for label, (x, y) in _baseline_data(rows, key).items():
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=label, legendgroup=label.split()[0],
                                     showlegend=col == 1, line=style_of(label)), 1, col)
    for col, key in ((1, "rel_error"), (2, "cosine")):
        fig.add_trace(go.Scatter(**_steps_line(rows, key, steps), mode="lines", showlegend=False, name="steps now",
                                 line=dict(color="#111111", dash="dot")), 1, col)
    fig.update_xaxes(**log_axis(plain=True, title="inner steps"))
    fig.update_yaxes(**log_axis(), row=1, col=1)
    fig.update_layout(template="plotly_white", height=420, margin=dict(l=60, r=20, t=50, b=50))
    return fig


def _steps_line(rows, key, steps) -> dict:
    if steps is None:
        return dict(x=[], y=[])
    values = [max(r[key], 1e-17) if key == "rel_error" else r[key] for r in rows] or [1.0]
    return dict(x=[steps, steps], y=[min(values), max(values)])


def update_baselines(fig, rows: list[dict], steps: int | None = None) -> None:
    with fig.batch_update():
        i = 0
        for key in ("rel_error", "cosine"):
            for label, (x, y) in _baseline_data(rows, key).items():
                fig.data[i].x, fig.data[i].y, fig.data[i].name = x, y, label
                i += 1
        for key in ("rel_error", "cosine"):
            line = _steps_line(rows, key, steps)
            fig.data[i].x, fig.data[i].y = line["x"], line["y"]
            i += 1


# ---------------------------------------------------------------- 05-06: experiments
MEASURES = {"theta": "at θ (no adaptation)", "inner": "after the method's own inner loop",
            "ft10": "after 10 Adam iterations", "ft100": "after 100 Adam iterations",
            "finetuned": "after the full Adam fine-tuning"}


def meta_progress_figure(runs: dict, measures=("inner", "finetuned"), title: str | None = None):
    """Meta-test nRMSE (mean ± s.e. over tasks) against meta-steps, from each run's ``evals.csv``.

    One panel per measure (see :data:`MEASURES`): after the method's own inner
    loop is what its meta-gradient optimises; after fine-tuning is the
    reference's protocol.
    """
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(measures), subplot_titles=[MEASURES[m] for m in measures],
                        horizontal_spacing=0.08)
    styles = run_styles(runs)
    for col, measure in enumerate(measures, start=1):
        for label, r in runs.items():
            rows = [e for e in r["evals"] if f"{measure}_mean" in e]
            fig.add_trace(go.Scatter(x=[e["meta_step"] for e in rows], y=[e[f"{measure}_mean"] for e in rows],
                                     error_y=dict(type="data", array=[e[f"{measure}_se"] for e in rows], thickness=0.6),
                                     mode="lines+markers", marker_size=4, name=label, legendgroup=label,
                                     showlegend=col == 1, line=styles[label]), row=1, col=col)
        fig.update_xaxes(title_text="meta-step", row=1, col=col)
    fig.update_yaxes(title_text="meta-test nRMSE (mean ± s.e.)", row=1, col=1)
    fig.update_layout(template="plotly_white", margin=dict(l=60, r=20, t=70, b=50),
                      title=title or "meta-test error along meta-training")
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
    traces = [go.Scatter(x=[m["meta_step"] for m in r["metrics"]], y=_smooth([m["query_loss"] for m in r["metrics"]],
                                                                               window),
                         mode="lines", name=label, line=styles[label]) for label, r in runs.items()]
    return _figure(traces, dict(title=f"meta-training: {loss} (moving average of {window})",
                                xaxis=dict(title="meta-step"), yaxis=dict(title=loss)), False)


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
        traces.append(go.Scatter(x=x, y=y, mode="lines", name=label, line=line, legendgroup=label,
                                 error_y=None if long else dict(type="data", array=se, visible=True, thickness=0.5)))
        if long:
            traces.append(go.Scatter(x=x + x[::-1], y=[m + e for m, e in zip(y, se)] + [m - e for m, e in
                                                                                         zip(y[::-1], se[::-1])],
                                     fill="toself", mode="lines", line_width=0, fillcolor=color, opacity=0.15,
                                     legendgroup=label, showlegend=False, hoverinfo="skip", name=f"{label} ± s.e."))
    return _figure(traces, dict(title=title or "meta-test: fine-tuning from the meta-learned θ",
                                xaxis=dict(title="Adam iterations on the support set"),
                                yaxis=dict(title="nRMSE (mean ± s.e.)")), False)


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
            fig.add_trace(go.Heatmap(z=img.flip(0).tolist(), colorscale="Greys", showscale=False,
                                     zmin=0, zmax=1, hoverinfo="skip"), k + 1, j + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x")
    title = f"{ways}-way {shots}-shot episode: each row a class; support first" + (", then queries" if query else "")
    fig.update_layout(template="plotly_white", title=title, height=110 * ways + 60, width=110 * cols + 40,
                      margin=dict(l=10, r=10, t=50, b=10))
    return fig


def accuracy_figure(runs: dict):
    """Meta-test accuracy with its 95% confidence interval, one bar per run label."""
    labels = list(runs)
    finals = [runs[k]["summary"]["final"] for k in labels]
    colors = run_colors(labels)
    trace = go.Bar(x=labels, y=[100 * f["accuracy"] for f in finals], marker_color=[colors[k] for k in labels],
                   error_y=dict(type="data", array=[100 * f["accuracy_ci95"] for f in finals], visible=True))
    return _figure([trace], dict(title="meta-test accuracy (mean ± 95% CI over the episodes)",
                                 yaxis=dict(title="accuracy (%)", range=[0, 100])), False)


# ---------------------------------------------------------------- 02: the horizon explorer
