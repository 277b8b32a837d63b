"""The horizon explorer's figure (notebook 02): four panels drawn from
:class:`amaml_lab.teach.horizons_data.HorizonData`, indexed, never computed; :func:`update_horizon` writes a new view
into an existing ``FigureWidget``."""

from __future__ import annotations

import plotly.graph_objects as go

from .figures import HORIZON_COST
from .style import PANEL_FONT, as_widget, color_of, log_axis, panel_titles, style_of, top_title, wrap

ERROR_CEILING = 1e4  # errors above this (back-solving's overflow) are drawn at the ceiling


def _loss_points(n: int, points: int = 240) -> list[int]:
    """About ``points`` log-spaced grid indices in 1..n-1 (a loss curve on a log time axis)."""
    import math

    idx = {min(n - 1, max(1, round(math.exp(i * math.log(n - 1) / (points - 1))))) for i in range(points)}
    return sorted(idx)


def _clip(values):
    import math

    return [None if not math.isfinite(v) else min(v, ERROR_CEILING) for v in values]


CLAMPED_SYMBOL = "triangle-up"  # an error above ERROR_CEILING, drawn at the ceiling; its hover gives the true value


def _clamp_marks(values) -> dict:
    """Per point of an error line: its marker (a triangle where the error is drawn at the ceiling) and the true
    value for the hover."""
    import math

    return {
        "symbol": [CLAMPED_SYMBOL if math.isfinite(v) and v > ERROR_CEILING else "circle" for v in values],
        "size": [9 if math.isfinite(v) and v > ERROR_CEILING else 4 for v in values],
        "true": [f"{v:.3g}" if math.isfinite(v) else "overflow" for v in values],
    }


REL_HOVER = "%{fullData.name}<br>T = %{x:.3g}: relative error %{customdata}<extra></extra>"


def horizon_view(data, step_size: float, solver: str, j: int, shown) -> dict:
    """Everything one view of the horizon explorer draws, as plain lists (indexing only, no computing)."""
    import math

    from ..teach.horizons import LABELS, LINES

    key = (step_size, solver)
    sw, errs = data.sweeps[key], data.errors[key]
    T = data.steps[j] * step_size
    idx = _loss_points(len(sw.states))
    t = [i * step_size for i in idx]
    horizons = [k * step_size for k in data.steps]
    view = {
        "T": T,
        "curve": data.curves[key][j + 1].tolist(),
        "t": t,
        "support": sw.support_curve[idx].tolist(),
        "query": sw.query_curve[idx].tolist(),
        "at_T": [float(sw.support_curve[data.steps[j]]), float(sw.query_curve[data.steps[j]])],
        "horizons": horizons,
        "methods": [],
    }
    for m in LINES:
        rel, cos = errs[m]
        cos = [c if math.isfinite(c) else None for c in cos]  # JSON has no NaN: a gap
        view["methods"].append(
            dict(
                key=m,
                label=LABELS[m],
                shown=m in shown,
                rel=_clip(rel),
                rel_marks=_clamp_marks(rel),
                cos=cos,
                rel_at=rel[j],
                cos_at=cos[j],
            )
        )
    return view


def horizon_figure(data, step_size: float, solver: str, j: int, shown, cost: dict, widget: bool = False):
    """The explorer's six panels: (a) the model at theta and u(T); (b) losses along t; (c) error and cosine
    of every method against the flow's exact meta-gradient, as functions of T; (d) measured time and memory."""
    from plotly.subplots import make_subplots

    task = data.task
    view = horizon_view(data, step_size, solver, j, shown)
    fig = make_subplots(
        rows=3,
        cols=2,
        vertical_spacing=0.1,
        horizontal_spacing=0.12,
        subplot_titles=panel_titles(
            (
                "(a) the model at θ and at u(T)",
                "(b) losses along t",
                "(c) error to the exact one (▲: > 1e4)",
                "(c) cosine to it",
                "(d) time of one meta-gradient",
                "(d) its peak memory",
            )
        ),
    )
    fig.update_annotations(font_size=PANEL_FONT)
    x = task.x_plot[:, 0].tolist()
    fig.add_trace(
        go.Scatter(x=x, y=task.y_plot.tolist(), name="task", line=dict(color="#bbbbbb", width=4), legendgroup="a"), 1, 1
    )
    fig.add_trace(
        go.Scatter(
            x=task.support[0][:, 0].tolist(),
            y=task.support[1][:, 0].tolist(),
            mode="markers",
            name="support points",
            marker=dict(color="#111111", size=8),
            legendgroup="a",
        ),
        1,
        1,
    )
    fig.add_trace(
        go.Scatter(
            x=task.query[0][:, 0].tolist(),
            y=task.query[1][:, 0].tolist(),
            mode="markers",
            name="query points",
            marker=dict(color="#ffffff", size=7, line=dict(color="#111111", width=1.5)),
            legendgroup="a",
        ),
        1,
        1,
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=data.curves[(step_size, solver)][0].tolist(),
            name="model at θ",
            line=dict(color="#7f7f7f", dash="dash"),
            legendgroup="a",
        ),
        1,
        1,
    )
    fig.add_trace(
        go.Scatter(x=x, y=view["curve"], name="model at u(T)", line=dict(color="#111111", width=3), legendgroup="a"),
        1,
        1,
    )
    fig.add_trace(
        go.Scatter(x=view["t"], y=view["support"], name="L_S(u(t))", line_color="#111111", legendgroup="b"), 1, 2
    )
    fig.add_trace(
        go.Scatter(
            x=view["t"], y=view["query"], name="L_Q(u(t))", line=dict(color="#111111", dash="dash"), legendgroup="b"
        ),
        1,
        2,
    )
    fig.add_trace(
        go.Scatter(
            x=[view["T"]] * 2,
            y=view["at_T"],
            mode="markers",
            name="at T",
            showlegend=False,
            marker=dict(
                color="#111111", size=11, symbol=["diamond", "diamond-open"], line=dict(color="#111111", width=2)
            ),
        ),
        1,
        2,
    )  # support filled, query open
    for col, field in ((1, "rel"), (2, "cos")):
        for m in view["methods"]:
            fig.add_trace(
                go.Scatter(
                    x=view["horizons"],
                    y=m[field],
                    name=m["label"],
                    mode="lines+markers",
                    legendgroup=m["key"],
                    showlegend=col == 1,
                    visible=m["shown"],
                    line=style_of(m["key"]),
                    **rel_marks(m, field),
                ),
                2,
                col,
            )
        fig.add_trace(
            go.Scatter(
                **_method_markers(view, field),
                mode="markers",
                showlegend=False,
                name="at T",
            ).update(marker=dict(size=12, line=dict(width=2))),
            2,
            col,
        )
    _cost_panels(fig, data.steps[j], cost)
    _log_axes(fig, _loss_span(data), _steps_span(data, cost))
    fig.update_yaxes(range=_model_span(data), row=1, col=1)
    fig.update_layout(
        template="plotly_white",
        height=1150,
        margin=dict(l=60, r=20, t=top_title(HORIZON_TITLE)[1], b=40),
        legend=dict(font=dict(size=11), orientation="h", yanchor="top", y=-0.06, x=0),
        title=top_title(HORIZON_TITLE)[0],
    )
    return as_widget(fig) if widget else fig


def _cost_panels(fig, steps: int, cost: dict) -> None:
    """(d): measured time and peak memory against the steps, with a line at the steps shown now."""
    for col, field in ((1, "time_s"), (2, "peak_mb")):
        top = 1.0
        for name in HORIZON_COST:
            mine = sorted((r for r in cost["rows"] if r["name"] == name and field in r), key=lambda r: r["steps"])
            top = max([top] + [r[field] for r in mine])
            fig.add_trace(
                go.Scatter(
                    x=[r["steps"] for r in mine],
                    y=[r[field] for r in mine],
                    mode="lines+markers",
                    name=f"{name} (measured)",
                    legendgroup=f"cost-{name}",
                    showlegend=col == 1,
                    line=style_of(name),
                ),
                3,
                col,
            )
        floor = min([r[field] for r in cost["rows"] if field in r] + [top]) / 2
        fig.add_trace(
            go.Scatter(
                x=[steps, steps],
                y=[floor, top * 2],
                mode="lines",
                showlegend=False,
                name="steps now",
                line=dict(color="#111111", dash="dot"),
            ),
            3,
            col,
        )


def _loss_span(data) -> tuple | None:
    """The least and largest finite positive loss of every sweep in ``data`` (the losses panel's ticks fit all)."""
    import torch

    values = torch.cat([torch.cat([sw.support_curve, sw.query_curve]).flatten() for sw in data.sweeps.values()])
    values = values[torch.isfinite(values) & (values > 0)]
    return (float(values.min()), float(values.max())) if len(values) else None


def _model_span(data) -> list:
    """Panel (a)'s y axis over every state (the task, its points, the model at every T of every sweep), a little
    padded: the same in every state, so that no move re-ranges it (and the book's frames need no full redraw)."""
    import torch

    task = data.task
    values = torch.cat(
        [c.flatten() for c in data.curves.values()]
        + [task.y_plot.flatten(), task.support[1].flatten(), task.query[1].flatten()]
    )
    values = values[torch.isfinite(values)]
    low, high = float(values.min()), float(values.max())
    pad = 0.05 * (high - low or 1.0)
    return [low - pad, high + pad]


def _steps_span(data, cost: dict) -> list:
    """Panel (d)'s steps axis (log10): from 1 step, so that the line at the steps shown now is on it for every
    position of the slider, to the most steps measured or explored."""
    import math

    top = max([data.steps[-1]] + [r["steps"] for r in cost["rows"]])
    return [-0.05, math.log10(top) + 0.05]


def _log_axes(fig, loss_span=None, steps_span=None) -> None:
    fig.update_xaxes(title="x", row=1, col=1)
    fig.update_xaxes(**log_axis(plain=True, title="t"), row=1, col=2)
    fig.update_yaxes(**log_axis(span=loss_span), row=1, col=2)
    for col in (1, 2):
        fig.update_xaxes(**log_axis(plain=True, title="T = steps × step size"), row=2, col=col)
        fig.update_xaxes(**log_axis(plain=True, title="inner steps (rk4, measured)"), range=steps_span, row=3, col=col)
    fig.update_yaxes(**log_axis(plain=True, title="seconds"), row=3, col=1)
    fig.update_yaxes(**log_axis(plain=True, title="MB"), row=3, col=2)
    fig.update_yaxes(**log_axis(range=[-10, 4.2], dtick=2), row=2, col=1)  # 14 decades: a label every second
    fig.update_yaxes(range=[-1.05, 1.05], row=2, col=2)


def rel_marks(method: dict, field: str) -> dict:
    """The marker and hover of one method's line in panel (c): on the error line a triangle where the error is
    drawn at the ceiling, with the true value on hover."""
    if field != "rel":
        return {"marker": dict(size=4)}
    marks = method["rel_marks"]
    return {
        "marker": dict(size=marks["size"], symbol=marks["symbol"]),
        "customdata": marks["true"],
        "hovertemplate": REL_HOVER,
    }


def at_marks(methods, field: str) -> dict:
    """The markers at T of panel (c), one per method of ``methods`` (:func:`horizon_view`'s dicts): open
    circles; on the error side an open triangle where the error is drawn at the ceiling, its true value on hover."""
    values = [m["rel_at" if field == "rel" else "cos_at"] for m in methods]
    if field != "rel":
        return {"y": values, "marker": dict(symbol="circle-open")}
    marks = _clamp_marks(values)
    return {
        "y": _clip(values),
        "marker": dict(symbol=[f"{s}-open" for s in marks["symbol"]]),
        "customdata": marks["true"],
        "hovertemplate": AT_HOVER,
    }


AT_HOVER = "%{text}<br>T = %{x:.3g}: relative error %{customdata}<extra>at T</extra>"


def _method_markers(view, field) -> dict:
    shown = [m for m in view["methods"] if m["shown"]]
    marks = at_marks(shown, field)
    marks["marker"].update(color=[color_of(m["key"]) for m in shown])
    return dict(x=[view["T"]] * len(shown), text=[m["label"] for m in shown], **marks)


# the title does not change with the controls (the explorer's status line says T, the steps and the losses):
# a new title would cost the browser a second full redraw of the figure at every move
HORIZON_TITLE = wrap("the inner loop at the length the controls set: its model, losses, meta-gradients and cost")


def update_horizon(fig, data, step_size: float, solver: str, j: int, shown) -> None:
    """Write one view into a :func:`horizon_figure` (trace order as built there)."""
    view = horizon_view(data, step_size, solver, j, shown)
    n = len(view["methods"])
    with fig.batch_update():
        fig.data[3].y = data.curves[(step_size, solver)][0].tolist()
        fig.data[4].y = view["curve"]
        fig.data[5].x, fig.data[5].y = view["t"], view["support"]
        fig.data[6].x, fig.data[6].y = view["t"], view["query"]
        fig.data[7].x, fig.data[7].y = [view["T"]] * 2, view["at_T"]
        base = 8
        for field in ("rel", "cos"):
            for i, m in enumerate(view["methods"]):
                trace = fig.data[base + i]
                trace.x, trace.y, trace.visible = view["horizons"], m[field], m["shown"]
                if field == "rel":
                    marks = rel_marks(m, field)
                    trace.marker.symbol, trace.marker.size = marks["marker"]["symbol"], marks["marker"]["size"]
                    trace.customdata = marks["customdata"]
            fig.data[base + n].update(_method_markers(view, field))
            base += n + 1
        for col in range(2):
            trace = fig.data[base + len(HORIZON_COST) + col * (len(HORIZON_COST) + 1)]
            trace.x = [data.steps[j]] * 2
