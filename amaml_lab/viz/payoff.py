"""Plotly figures of the horizon experiment (:mod:`amaml_lab.studies.payoff`): own loop against the horizon,
the cross-evaluation heat map, memory against the horizon, and the payoff explorer's two panels."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..measure import memory_order
from ..studies import payoff as study
from .style import (
    OTHER_COLORS,
    PANEL_FONT,
    RUN_DASHES,
    RUN_SHADES,
    as_widget,
    color_of,
    log_axis,
    panel_titles,
    shade,
    style_of,
    top_title,
    wrap,
)

TASK_COLORS = OTHER_COLORS  # tasks are not methods: hues no method uses


def reg_style(index: int) -> dict:
    """maml's line at the ``index``-th proximal weight of a panel: maml's colour, the second dashed and darker."""
    return dict(
        color=shade(color_of("maml"), RUN_SHADES[index % len(RUN_SHADES)]), dash=RUN_DASHES[index % len(RUN_DASHES)]
    )


def own_loop_figure(records, measure: str = "inner"):
    """One panel per setting: nRMSE after each run's own loop against T = N·h, each reg a line through the seeds'
    mean with every seed a dot; the first-order controls (fomaml, reptile) at their N as separate markers."""
    names = sorted({r["setting"] for r in records})
    fig = make_subplots(rows=1, cols=max(1, len(names)), subplot_titles=names, horizontal_spacing=0.08)
    for col, setting in enumerate(names, 1):
        for k, reg in enumerate(sorted({r["reg"] for r in records if r["setting"] == setting})):
            line = reg_style(k)
            steps = sorted({r["steps"] for r in study.select(records, setting, reg, "maml")})
            h = study.scale(study.select(records, setting, reg))["step_size"]
            means, seeds_x, seeds_y = [], [], []
            for n in steps:
                values = [study.task_mean(r, measure) for r in study.select(records, setting, reg, "maml", n)]
                means.append(sum(values) / len(values))
                seeds_x += [n * h] * len(values)
                seeds_y += values
            fig.add_trace(
                go.Scatter(
                    x=[n * h for n in steps],
                    y=means,
                    mode="lines+markers",
                    name=f"maml (exact), reg {reg:g}",
                    legendgroup=f"reg{reg}",
                    showlegend=col == 1,
                    line=line,
                ),
                row=1,
                col=col,
            )
            fig.add_trace(
                go.Scatter(
                    x=seeds_x,
                    y=seeds_y,
                    mode="markers",
                    name=f"each seed, reg {reg:g}",
                    legendgroup=f"reg{reg}",
                    showlegend=col == 1,
                    marker=dict(color=line["color"], size=6, opacity=0.45),
                ),
                row=1,
                col=col,
            )
            for method in ("fomaml", "reptile"):
                runs = study.select(records, setting, reg, method)
                if runs:
                    fig.add_trace(
                        go.Scatter(
                            x=[r["steps"] * h for r in runs],
                            y=[study.task_mean(r, measure) for r in runs],
                            mode="markers",
                            name=f"{method}, reg {reg:g}",
                            legendgroup=method,
                            showlegend=col == 1,
                            marker=dict(color=color_of(method), symbol="x" if reg else "diamond", size=9),
                        ),
                        row=1,
                        col=col,
                    )
        fig.update_xaxes(row=1, col=col, **log_axis(plain=True, title_text="training horizon T = N·h"))
    fig.update_yaxes(title_text="meta-test nRMSE after the run's own loop", row=1, col=1)
    fig.update_layout(
        title="Training through a longer inner loop: the meta-test error after that loop",
        legend=dict(orientation="h", y=-0.2),
    )
    return fig


def cross_heatmap(matrix: dict, title: str, highlight: tuple | None = None, widget: bool = False):
    """Rows: theta trained at N; columns: test horizon N_test; colour and text: mean nRMSE over the seeds."""
    labels_x = [str(n) for n in matrix["test"]]
    labels_y = [str(n) for n in matrix["train"]]
    text = [[f"{v:.3f}" for v in row] for row in matrix["mean"]]
    heat = go.Heatmap(
        z=matrix["mean"],
        x=labels_x,
        y=labels_y,
        text=text,
        texttemplate="%{text}",
        colorscale="Viridis",
        reversescale=True,
        colorbar=dict(title="nRMSE"),
    )
    traces = [heat]
    if highlight is not None:
        i, j = highlight
        traces.append(
            go.Scatter(
                x=[labels_x[j]],
                y=[labels_y[i]],
                mode="markers",
                showlegend=False,
                marker=dict(symbol="square-open", size=38, color="#d62728", line=dict(width=3)),
            )
        )
    x_range, y_range = _cell_ranges(matrix)
    layout = dict(
        title=title,
        xaxis=dict(title="test horizon N_test (steps of the same loop)", type="category", range=x_range),
        yaxis=dict(title="trained through N steps", type="category", range=y_range),
    )
    return (go.FigureWidget if widget else go.Figure)(data=traces, layout=layout)


def _cell_ranges(matrix: dict) -> tuple[list, list]:
    """The heatmap's axes fixed to its cells: left to themselves, they pad for the frame's marker, and move by
    half a cell whenever the frame reaches an edge."""
    return [-0.5, len(matrix["test"]) - 0.5], [-0.5, len(matrix["train"]) - 0.5]


def _adapted_range(view: dict) -> list:
    """The adapted panel's y axis over every state (truths, support points, every trained and test N's
    predictions), a little padded: the same in every state, so that a move never re-ranges it."""
    import numpy as np

    values = np.concatenate(
        [np.ravel(view["pred"]), np.ravel(view["truth"]), np.ravel(np.asarray(view["support"][1], dtype=float))]
    )
    values = values[np.isfinite(values)]
    low, high = float(values.min()), float(values.max())
    pad = 0.05 * (high - low or 1.0)
    return [low - pad, high + pad]


def memory_figure(rows: list[dict], budget_mb: float | None = None):
    """Peak memory of one meta-gradient against N, a line per method; refused rows drawn at their prediction."""
    fig = go.Figure()
    for name in sorted({r["name"] for r in rows}, key=memory_order):
        mine = sorted((r for r in rows if r["name"] == name), key=lambda r: r["steps"])
        done = [r for r in mine if "peak_mb" in r]
        line = style_of(name)  # conv4-maml, conv4-adjoint, conv4-adjoint-sqrt (checkpointed: dash-dot)
        fig.add_trace(
            go.Scatter(
                x=[r["steps"] for r in done], y=[r["peak_mb"] for r in done], mode="lines+markers", name=name, line=line
            )
        )
        refused = [r for r in mine if "predicted_mb" in r]
        if refused:
            fig.add_trace(
                go.Scatter(
                    x=[done[-1]["steps"], *[r["steps"] for r in refused]],
                    y=[done[-1]["peak_mb"], *[r["predicted_mb"] for r in refused]],
                    mode="lines+markers",
                    name=f"{name}: refused (predicted)",
                    line=dict(color=line["color"], dash="dot"),
                    marker=dict(symbol="x", size=11),
                )
            )
    if budget_mb is not None:
        fig.add_hline(
            y=budget_mb,
            line=dict(color="#111111", dash="dash"),  # a reference line, like "steps now"
            annotation_text=f"budget {budget_mb:,.0f} MB",
        )
    fig.update_layout(
        title="Conv-4, 5-way 1-shot: peak memory of one meta-gradient against the inner steps",
        xaxis=log_axis(plain=True, title="inner steps N"),
        yaxis=log_axis(plain=True, title="peak memory (MB)"),
    )
    return fig


def payoff_figure(view: dict, i: int, j: int, widget: bool = False):
    """The payoff explorer: (left) theta trained at ``train[i]`` adapted for ``test[j]`` steps on a few meta-test
    tasks, beside their true functions and support points; (right) the cross-evaluation with that cell framed."""
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.55, 0.45],
        horizontal_spacing=0.1,
        subplot_titles=panel_titles(("adapted on a few meta-test tasks", "cross-evaluation (mean of seeds)")),
    )
    fig.update_annotations(font_size=PANEL_FONT)
    x = view["x"].tolist()
    for k in range(len(view["tasks"])):
        color = TASK_COLORS[k % len(TASK_COLORS)]
        fig.add_trace(
            go.Scatter(
                x=x,
                y=view["truth"][k].tolist(),
                mode="lines",
                name=f"task {view['tasks'][k]}: truth",
                line=dict(color=color, dash="dash", width=1),
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=view["support"][0][k].tolist(),
                y=view["support"][1][k].tolist(),
                mode="markers",
                name=f"task {view['tasks'][k]}: support",
                marker=dict(color=color, size=7),
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=view["pred"][i, j, k].tolist(),
                mode="lines",
                name=f"task {view['tasks'][k]}: adapted",
                line=dict(color=color, width=3),
            ),
            row=1,
            col=1,
        )
    heat = cross_heatmap(view["cross"], "", highlight=(view["cross"]["train"].index(view["train"][i]), j))
    for trace in heat.data:
        fig.add_trace(trace, row=1, col=2)
    fig.update_xaxes(title_text="x (standardised)", row=1, col=1)
    fig.update_yaxes(title_text="y (standardised)", row=1, col=1)
    x_range, y_range = _cell_ranges(view["cross"])
    fig.update_yaxes(range=_adapted_range(view), row=1, col=1)
    fig.update_xaxes(title_text="test horizon N_test", type="category", range=x_range, row=1, col=2)
    fig.update_yaxes(title_text="trained through N", type="category", range=y_range, row=1, col=2)
    title = _payoff_title(view)
    title, top = top_title(title)
    fig.update_layout(title=title, legend=dict(orientation="h", y=-0.25), height=520, margin=dict(t=top))
    return as_widget(fig) if widget else fig


def _payoff_title(view) -> str:
    # not the chosen cell (framed on the right, and said in the explorer's status line): a title that changed with
    # the controls would cost the browser a second full redraw of the figure at every move
    return wrap(
        f"{view['setting']}, reg {view['reg']:g}, seed {view['seed']}: θ trained through N steps, adapted for"
        f" N_test (the framed cell)"
    )


def update_payoff(fig, view: dict, i: int, j: int) -> None:
    """Write the chosen cell into an existing :func:`payoff_figure`: the adapted lines and the framed cell."""
    tasks = len(view["tasks"])
    labels_x = [str(n) for n in view["cross"]["test"]]
    labels_y = [str(n) for n in view["cross"]["train"]]
    with fig.batch_update():
        for k in range(tasks):
            fig.data[3 * k + 2].y = view["pred"][i, j, k].tolist()
        fig.data[3 * tasks + 1].x = [labels_x[j]]
        fig.data[3 * tasks + 1].y = [labels_y[view["cross"]["train"].index(view["train"][i])]]
