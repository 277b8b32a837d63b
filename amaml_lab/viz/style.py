"""One style for every figure of the kit: a colour per meta-gradient method (variants by dash and shade), styles
for a set of runs, decade log axes, and the widget helpers that send a figure's data fast (:func:`traces_only`,
:func:`wire`)."""

from __future__ import annotations

import re
from contextlib import contextmanager

# One colour per meta-gradient method, the same in every figure of every notebook: Okabe and Ito's colour-blind-safe
# palette (its yellow left out: it vanishes on white), then black, grey and Tol's wine for the last three.
METHOD_COLORS = {
    "maml": "#0072B2",
    "adjoint": "#D55E00",
    "backsolve": "#CC79A7",
    "fomaml": "#E69F00",
    "reptile": "#009E73",
    "imaml": "#56B4E9",
    "truncated": "#999999",
    "comln": "#000000",
    "forward": "#882255",
}
# words that name a method without its name: the adjoint's schemes and states (a "grid" line is the adjoint's)
METHOD_ALIASES = {
    "continuous": "adjoint",
    "stored": "adjoint",
    "discrete": "adjoint",
    "grid": "adjoint",
    "checkpointed": "adjoint",
    "sqrt": "adjoint",
    "backsolved": "backsolve",
}
# the adjoint's variants keep its hue: a dash, and a darker shade (fraction of black mixed in); the stored
# continuous adjoint is the plain line.  "sqrt" and "c64" (the benchmark's names) are checkpointed.
VARIANTS = {"discrete": ("dash", 0.25), "checkpointed": ("dashdot", 0.4), "grid": ("dot", 0.55)}
# any method's compiled path (the same numbers, faster): its hue, lighter, long dashes
COMPILED = ("longdash", -0.35)
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
    return "#" + "".join(
        f"{round(c + (target - c) * amount):02X}" for c in (int(color[i : i + 2], 16) for i in (1, 3, 5))
    )


def style_of(label) -> dict | None:
    """A line's ``dict(color=..., dash=...)`` by the method its label names (see :func:`method_of`); the adjoint's
    variants (discrete, checkpointed, grid) in its hue, dashed and darker; a compiled path (``maml-compiled``) in
    its method's hue, lighter, long dashes; None when the label names no method."""
    method = method_of(label)
    if method is None:
        return None
    dash, dark = VARIANTS.get(_variant(label), ("solid", 0.0)) if method == "adjoint" else ("solid", 0.0)
    if "compiled" in re.findall(r"[a-z]+", str(label).lower()):
        dash, dark = COMPILED
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
            dark = -abs(dark) if max(int(style["color"][i : i + 2], 16) for i in (1, 3, 5)) < 0x40 else dark
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
    axis = dict(
        type="log",
        dtick=1,
        exponentformat="none" if plain else "power",
        separatethousands=plain,
        minor=dict(ticks="outside", ticklen=3, showgrid=False),
    )
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


def as_widget(fig):
    """``fig`` as a FigureWidget, made once every trace is in: a notebook saves a FigureWidget's traces only as
    they were when it was made (those added later reach the browser as messages), so one made empty and then
    filled shows an empty plot wherever the saved notebook is read without a kernel."""
    import plotly.graph_objects as go

    return go.FigureWidget(fig)


TITLE_CHARS = 40  # a figure's title, broken into lines this long, fits a phone's 390 px and a desktop column
PANEL_CHARS = 40  # a panel's title, at PANEL_FONT: half a desktop column, or a phone's width (the book stacks them)
PANEL_FONT = 13


def wrap(text: str, width: int = TITLE_CHARS) -> str:
    """``text`` broken at spaces into lines of at most ``width`` characters (a longer word keeps its own line),
    joined by plotly's ``<br>``: a figure's text does not wrap by itself, and the book shows figures from a phone's
    390 px up."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "<br>".join([*lines, line])


def panel_titles(titles) -> list[str]:
    """Titles of panels side by side, wrapped to :data:`PANEL_CHARS` (draw them at :data:`PANEL_FONT`)."""
    return [wrap(t, PANEL_CHARS) for t in titles]


def title_lines(text: str) -> int:
    """How many lines a wrapped title takes."""
    return text.count("<br>") + 1


def top_title(text: str) -> tuple[dict, int]:
    """(plotly title, top margin) for a wrapped title set at the figure's top edge, clear of the panel titles
    under it: left to itself plotly centres a title in the top margin, where a second line meets them."""
    title = dict(text=text, y=1.0, yref="container", yanchor="top", pad=dict(t=24))
    return title, 50 + 22 * title_lines(text)
