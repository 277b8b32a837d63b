"""Kernel-free explorers: a widget app's figure with every state it can show computed in advance, moved by plotly's
own slider and buttons, so that a static page (the book, an HTML export, nbviewer) moves like the app does in
JupyterLab, without a kernel.

One plotly control cannot read another's position, so each figure splits its state in two: buttons (or a
slider) choose which set of traces is visible, and a slider animates frames that rewrite every set at once.
Both draw from the app's own data with the app's own figure functions (:mod:`amaml_lab.viz.horizons`,
:mod:`amaml_lab.viz.payoff`, :mod:`amaml_lab.viz.directions`): a state here shows what the app shows there.
:func:`page_weight` says what a figure adds to a page.
"""

from __future__ import annotations

import math

import plotly.graph_objects as go

from . import directions as viz_directions
from . import figures as viz_figures
from . import horizons as viz_horizon
from . import payoff as viz_study
from .style import PANEL_FONT, color_of, title_lines, wrap

DIGITS = 6  # significant digits kept in the precomputed states (the page's weight; the plots cannot show more)
MARGIN = dict(t=100, b=80)  # plotly's margins where a layout leaves them unset
ANIMATE = dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))


def short(values):
    """``values`` rounded to :data:`DIGITS` significant digits; ``None`` and non-finite values become ``None``."""
    return [float(f"{v:.{DIGITS}g}") if v is not None and math.isfinite(v) else None for v in values]


def page_weight(fig) -> int:
    """Bytes of the figure's JSON: what it adds to a page beside plotly.js."""
    return len(fig.to_json().encode())


def _like(trace, **changes):
    """A copy of ``trace`` (its style, its subplot) with ``changes``."""
    return type(trace)(trace).update(**changes)


def _shipped_costs() -> dict:
    import json
    from importlib.resources import files

    return json.loads(files("amaml_lab").joinpath("measured", "cpu-steps.json").read_text())


def _slider(prefix: str, active: int, steps: list, y: float) -> dict:
    return dict(
        active=active,
        steps=steps,
        x=0.0,
        len=1.0,
        y=y,
        yanchor="top",
        pad=dict(t=0, b=0),
        currentvalue=dict(prefix=prefix, font=dict(size=14)),
        name=prefix,
    )


def _above(height: int, margin, px: float) -> float:
    """The paper coordinate ``px`` pixels above the plotting area's top (controls sit in the top margin)."""
    top, bottom = (MARGIN[k] if margin[k] is None else margin[k] for k in ("t", "b"))
    return 1 + px / (height - top - bottom)


def _titles_room(base) -> int:
    """Pixels the top row of ``base``'s panel titles takes above its plotting area (their lines at their font)."""
    notes = [a for a in base.layout.annotations if a.yref == "paper" and a.text]
    if not notes:
        return 0
    top = max(a.y for a in notes)
    return max(
        round(title_lines(a.text) * 1.3 * (a.font.size or PANEL_FONT)) + 8 for a in notes if abs(a.y - top) < 1e-9
    )


def _controls_on_top(fig, base, extra: int, title: str) -> tuple[float, float]:
    """Make room for ``extra`` pixels of controls between the title (wrapped to fit a phone) and the panels' titles;
    the paper y of the room's top and of its bottom (just above the panels' titles)."""
    title = wrap(title)
    top = MARGIN["t"] if base.layout.margin.t is None else base.layout.margin.t
    lines = 20 * (title_lines(title) - title_lines(base.layout.title.text or ""))  # the title's extra lines
    room = _titles_room(base)
    fig.update_layout(
        height=base.layout.height + extra + room + max(lines, 0),
        margin=dict(t=top + extra + room + max(lines, 0)),
        title=dict(text=title, font=dict(size=14), y=1.0, yref="container", yanchor="top", pad=dict(t=12)),
    )
    return _above(fig.layout.height, fig.layout.margin, extra + room + 10), _above(
        fig.layout.height, fig.layout.margin, room
    )


def _frame_steps(labels: list, redraw: bool = True) -> list:
    """Slider steps that animate to the frame of each label; ``redraw=False`` where the frames only move scatter
    data inside fixed axes (plotly then skips the full redraw: a move settles sooner)."""
    how = {**ANIMATE, "frame": {**ANIMATE["frame"], "redraw": redraw}}
    return [dict(label=str(k), method="animate", args=[[str(k)], how]) for k in labels]


# ---------------------------------------------------------------- notebook 02: the horizon explorer
def horizon_static_figure(
    data, cost: dict | None = None, step_size: float | None = None, solver: str = "rk4", steps: int | None = None
):
    """The horizon explorer (:class:`amaml_lab.widgets.HorizonExplorer`) for a page without a kernel.

    ``data`` is the app's :class:`amaml_lab.teach.horizons_data.HorizonData` (``app.data``), ``cost`` its panel (d)
    rows (default: the ones shipped with the package).  The buttons choose the step size and solver (one set of
    traces each), the slider the inner steps (a frame each: the model at u(T), the markers at T in (b) and (c),
    the line at the steps in (d), in every set at once), the legend the methods (in the book a method hidden in
    the legend stays hidden when a button shows another set: its traces' ``meta.legend`` name it to the loader).
    """
    from ..teach.horizons import LINES

    cost = cost or _shipped_costs()
    combos = [(h, s) for h in data.step_sizes for s in data.solvers]
    chosen = combos.index(
        (data.step_sizes[0] if step_size is None else step_size, solver if solver in data.solvers else data.solvers[-1])
    )
    if steps is None:
        steps = 100 if 100 in data.steps else data.steps[len(data.steps) // 2]
    j0 = data.steps.index(steps)
    base = viz_horizon.horizon_figure(data, *combos[chosen], j0, LINES, cost)
    fig = go.Figure(data=base.data[:3], layout=base.layout)  # the task and its points: the same in every state
    sets, moving = [], []
    for c, (h, s) in enumerate(combos):
        first = len(fig.data)
        moving.append(_horizon_set(fig, base, data, h, s, j0, c, visible=c == chosen))
        sets.append(list(range(first, len(fig.data))))
    fig.add_traces(base.data[8 + 2 * (len(LINES) + 1) :])  # (d): measured, the same in every state
    now = [i for i, t in enumerate(fig.data) if t.name == "steps now"]
    fig.frames = [
        go.Frame(name=str(k), data=_horizon_frame(data, combos, j, now), traces=sum(moving, []) + now)
        for j, k in enumerate(data.steps)
    ]
    every = sum(sets, [])
    buttons = [
        dict(label=f"h {h:g} · {s}", method="restyle", args=[{"visible": [i in sets[c] for i in every]}, every])
        for c, (h, s) in enumerate(combos)
    ]
    top, bottom = _controls_on_top(
        fig,
        base,
        170,
        "The horizon explorer without a kernel, every state computed in advance: "
        "inner steps (the slider), step size and solver (the buttons), methods "
        "(the legend)",
    )
    below = bottom + _above(fig.layout.height, fig.layout.margin, 125) - 1  # 125 px above the panels' titles
    fig.update_layout(
        updatemenus=[
            dict(
                type="buttons",
                direction="right",
                buttons=buttons,
                active=chosen,
                showactive=True,
                x=0.0,
                xanchor="left",
                y=top,
                yanchor="top",
                pad=dict(t=0, b=0),
            )
        ],
        sliders=[_slider("inner steps: ", j0, _frame_steps(data.steps, redraw=False), below)],
    )
    return fig


def _horizon_set(fig, base, data, h, s, j, c, visible) -> list:
    """Add one (step size, solver)'s traces, styled as ``base``'s; the indices of those the steps move."""
    view = viz_horizon.horizon_view(data, h, s, j, [])
    n = len(view["methods"])
    a, b = f"a{c}", f"b{c}"
    first = len(fig.data)
    # meta.legend names what a legend click hides in every set alike: the book's loader keeps it hidden when a
    # button shows another set (book/_ext/static/amaml-plotly.js)
    ma, mb = dict(legend="model"), dict(legend="losses")
    fig.add_traces(
        [
            _like(base.data[3], y=short(data.curves[(h, s)][0].tolist()), legendgroup=a, visible=visible, meta=ma),
            _like(base.data[4], y=short(view["curve"]), legendgroup=a, visible=visible, meta=ma),
            _like(base.data[5], x=short(view["t"]), y=short(view["support"]), legendgroup=b, visible=visible, meta=mb),
            _like(base.data[6], x=short(view["t"]), y=short(view["query"]), legendgroup=b, visible=visible, meta=mb),
            _like(base.data[7], x=[view["T"]] * 2, y=short(view["at_T"]), legendgroup=b, visible=visible, meta=mb),
        ]
    )
    moves = [first + 1, first + 4]
    for col, field in enumerate(("rel", "cos")):
        lines = base.data[8 + col * (n + 1) : 8 + col * (n + 1) + n]
        marker = base.data[8 + col * (n + 1) + n]
        for line, m in zip(lines, view["methods"]):
            group = f"{m['key']}{c}"
            fig.add_traces(
                [
                    _like(
                        line,
                        x=view["horizons"],
                        y=short(m[field]),
                        legendgroup=group,
                        visible=visible,
                        meta=dict(legend=m["key"]),
                        **viz_horizon.rel_marks(m, field),
                    ),
                    go.Scatter(
                        x=[view["T"]],
                        mode="markers",
                        name="at T",
                        text=[m["label"]],
                        showlegend=False,
                        legendgroup=group,
                        visible=visible,
                        xaxis=marker.xaxis,
                        yaxis=marker.yaxis,
                        meta=dict(legend=m["key"]),
                        hovertemplate=viz_horizon.AT_HOVER if field == "rel" else None,
                        **_at(m, field),
                    ).update(marker=dict(size=12, color=color_of(m["key"]), line=dict(width=2))),
                ]
            )
            moves.append(len(fig.data) - 1)
    return moves


def _at(method: dict, field: str) -> dict:
    """One method's marker at T in panel (c), rounded: where, its symbol (clamped or not) and true value."""
    marks = viz_horizon.at_marks([method], field)
    marks.pop("hovertemplate", None)  # the same in every state: the figure's trace has it
    return dict(marks, y=short(marks["y"]))


def _horizon_frame(data, combos, j, now) -> list:
    """Frame ``j``'s data, in :func:`horizon_static_figure`'s order of moving traces."""
    out = []
    for h, s in combos:
        view = viz_horizon.horizon_view(data, h, s, j, [])
        out += [
            dict(y=short(view["curve"])),  # no name: frames move data without a redraw, the legend stays
            dict(x=[view["T"]] * 2, y=short(view["at_T"])),
        ]
        for field in ("rel", "cos"):
            out += [dict(x=[view["T"]], **_at(m, field)) for m in view["methods"]]
    return out + [dict(x=[data.steps[j]] * 2) for _ in now]


# ---------------------------------------------------------------- notebook 04: the baselines explorer
def baselines_static_figure(table: dict, lams, lam: float, cg_steps: int, truncate: int, steps: int):
    """The baselines explorer (:class:`amaml_lab.widgets.BaselineExplorer`) for a page without a kernel.

    ``table`` is the app's (:func:`amaml_lab.teach.baselines.baseline_table`), ``lams`` its λ slider's grid, the
    rest the state it opens on.  Four sliders, each rewriting only its own traces: λ the iMAML lines (one per CG
    steps, all at once), CG steps which of them shows, truncation the truncated lines, inner steps the dotted
    line.  The dotted line spans every state's values (the app's spans the lines shown).
    """
    from ..teach.baselines import rows_at

    cgs = sorted({k for _, k in table["imaml"]})
    lams = [float(v) for v in lams]
    rows = rows_at(table, lam, cg_steps, truncate)
    base = viz_figures.baselines_figure(rows, steps=steps)
    n = (len(base.data) - 2) // 2
    fig = go.Figure(layout=base.layout)
    imaml, trunc = [], []
    for col, key in enumerate(("rel_error", "cosine")):
        for t in base.data[col * n : (col + 1) * n]:
            if t.name.startswith("imaml"):
                for k in cgs:
                    x, y = viz_figures.baseline_lines(table["imaml"][(float(lam), k)], key)["imaml"]
                    fig.add_trace(_like(t, x=x, y=short(y), visible=k == cg_steps, legendgroup="imaml"))
                    imaml.append((key, k, len(fig.data) - 1))
            else:
                fig.add_trace(t)
                if t.name.startswith("truncated"):
                    trunc.append((key, len(fig.data) - 1))
    everything = [r for r in table["fixed"]] + [r for v in table["imaml"].values() for r in v]
    everything += [r for v in table["truncated"].values() for r in v]
    lines = []
    for key, t in zip(("rel_error", "cosine"), base.data[2 * n :]):
        span = viz_figures.steps_line(everything, key, steps)["y"]
        fig.add_trace(_like(t, y=span))
        lines.append(len(fig.data) - 1)
    sliders = [
        ("iMAML λ: ", _nearest(lams, lam), [_imaml_step(table, imaml, v) for v in lams]),
        ("CG steps: ", cgs.index(cg_steps), [_cg_step(imaml, k) for k in cgs]),
        ("truncation: ", sorted(table["truncated"]).index(truncate), _truncation_steps(table, trunc)),
        ("inner steps: ", _steps_of(table).index(steps), [_steps_step(lines, k) for k in _steps_of(table)]),
    ]
    top, bottom = _controls_on_top(
        fig, base, 75 * len(sliders), "The baselines explorer without a kernel: every state computed in advance"
    )
    gap = (top - bottom) / len(sliders)
    fig.update_layout(
        sliders=[_slider(name, active, moves, top - i * gap) for i, (name, active, moves) in enumerate(sliders)]
    )
    return fig


def _nearest(values: list, value: float) -> int:
    return min(range(len(values)), key=lambda i: abs(math.log(values[i] / value)))


def _steps_of(table: dict) -> list:
    return sorted({r["steps"] for r in table["fixed"]})


def _imaml_step(table: dict, imaml: list, lam: float) -> dict:
    ys = [short(viz_figures.baseline_lines(table["imaml"][(lam, k)], key)["imaml"][1]) for key, k, _ in imaml]
    return dict(label=f"{lam:.3g}", method="restyle", args=[{"y": ys}, [i for _, _, i in imaml]])


def _cg_step(imaml: list, cg: int) -> dict:
    return dict(
        label=str(cg), method="restyle", args=[{"visible": [k == cg for _, k, _ in imaml]}, [i for *_, i in imaml]]
    )


def _truncation_steps(table: dict, trunc: list) -> list:
    out = []
    for k in sorted(table["truncated"]):
        found = [next(iter(viz_figures.baseline_lines(table["truncated"][k], key).items())) for key, _ in trunc]
        out.append(
            dict(
                label=str(k),
                method="restyle",
                args=[{"y": [short(y) for _, (_, y) in found], "name": [n for n, _ in found]}, [i for _, i in trunc]],
            )
        )
    return out


def _steps_step(lines: list, steps: int) -> dict:
    return dict(label=str(steps), method="restyle", args=[{"x": [[steps, steps]] * len(lines)}, lines])


# ---------------------------------------------------------------- notebook 08: the payoff explorer
def payoff_static_figure(view: dict, train: int | None = None, test: int | None = None):
    """The payoff explorer (:class:`amaml_lab.widgets.payoff.PayoffExplorer`) for a page without a kernel.

    ``view`` is the app's (:func:`amaml_lab.teach.payoff.adaptation_view`).  The upper slider chooses the trained
    N (one set of adapted curves and framed cell each), the lower one the test N (a frame each, rewriting every
    set at once); the truths, the support points and the cross-evaluation are the same in every state.
    """
    train = view["train"][0] if train is None else train
    test = (1000 if 1000 in view["test"] else view["test"][-1]) if test is None else test
    i0, j0 = view["train"].index(train), view["test"].index(test)
    base = viz_study.payoff_figure(view, i0, j0)
    tasks = len(view["tasks"])
    rows = [view["cross"]["train"].index(n) for n in view["train"]]
    labels_x = [str(n) for n in view["cross"]["test"]]
    labels_y = [str(n) for n in view["cross"]["train"]]
    fixed = [t for k in range(tasks) for t in base.data[3 * k : 3 * k + 2]] + [base.data[3 * tasks]]
    fig = go.Figure(data=fixed, layout=base.layout)
    sets = []
    for i in range(len(view["train"])):
        first = len(fig.data)
        fig.add_traces(
            [
                _like(base.data[3 * k + 2], y=short(view["pred"][i, j0, k].tolist()), visible=i == i0)
                for k in range(tasks)
            ]
        )
        fig.add_trace(_like(base.data[3 * tasks + 1], x=[labels_x[j0]], y=[labels_y[rows[i]]], visible=i == i0))
        sets.append(list(range(first, len(fig.data))))
    every = sum(sets, [])
    pick = [
        dict(label=str(n), method="restyle", args=[{"visible": [t in sets[i] for t in every]}, every])
        for i, n in enumerate(view["train"])
    ]
    fig.frames = [
        go.Frame(
            name=str(m),
            traces=every,
            data=[
                d
                for i in range(len(view["train"]))
                for d in [dict(y=short(view["pred"][i, j, k].tolist())) for k in range(tasks)] + [dict(x=[labels_x[j]])]
            ],
        )
        for j, m in enumerate(view["test"])
    ]
    top, bottom = _controls_on_top(
        fig,
        base,
        220,
        f"{view['setting']}, reg {view['reg']:g}, seed {view['seed']}, without a "
        "kernel: θ trained through N steps, adapted for N_test steps (every state "
        "computed in advance)",
    )
    second = bottom + _above(fig.layout.height, fig.layout.margin, 120) - 1  # 120 px above the panels' titles
    fig.update_layout(
        sliders=[
            _slider("trained N: ", i0, pick, top),
            _slider("test N: ", j0, _frame_steps(view["test"], redraw=False), second),
        ]
    )
    return fig


# ---------------------------------------------------------------- notebook 09: the directions explorer
def directions_static_figure(diagnoses: dict, steps: int | None = None):
    """The directions explorer (:class:`amaml_lab.widgets.directions.DirectionsExplorer`) for a page without a
    kernel: one frame per N the spectra were diagnosed at, each rewriting the spectra, the agreement bars and the
    panels' titles as the app's move does (:func:`amaml_lab.viz.directions.update_explorer`)."""
    grids = [sorted(int(n) for n in d["spectrum"]) for d in diagnoses.values()]
    every = [n for n in grids[0] if all(n in g for g in grids)]
    steps = every[-1] if steps is None else steps
    base = viz_directions.explorer_figure(diagnoses, steps)
    fig = go.Figure(base)
    frames = []
    for n in every:
        state = viz_directions.explorer_figure(diagnoses, n)
        frames.append(
            go.Frame(
                name=str(n),
                data=[dict(y=short(list(trace.y))) for trace in state.data],
                traces=list(range(len(state.data))),
                layout=dict(annotations=[dict(text=a.text) for a in state.layout.annotations]),
            )
        )
    fig.frames = frames
    top, _ = _controls_on_top(fig, base, 90, "Without a kernel: drag N (every state read from the diagnosis files)")
    fig.update_layout(sliders=[_slider("inner steps N: ", every.index(steps), _frame_steps(every), top)])
    return fig
