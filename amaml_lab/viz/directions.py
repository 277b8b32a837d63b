"""Plotly figures of "exact or first-order through a long loop?" (:mod:`amaml_lab.studies.directions` reads the runs,
``results/diagnose_directions.py`` writes the diagnosis these figures draw): the own-loop error against meta-steps,
the directions' agreement and size against N, the loop Jacobian's singular values, and the loss along a direction.
"""

from __future__ import annotations

import math
import statistics

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..studies import directions
from .style import PANEL_FONT, as_widget, color_of, log_axis, panel_titles, run_styles, top_title, wrap

DIRECTION_METHODS = {"exact": "maml", "fomaml": "fomaml", "reptile": "reptile"}  # each direction in its method's hue
CURVE_RUNS = (
    ("maml", 1000),
    ("reptile", 1000),
    directions.REMEDY,
    ("fomaml", 1000),
    ("maml", 300),
    ("maml", 100),
    ("maml", 10),
)


def _rate_of(root, setting: str, method: str, steps: int) -> str:
    if steps != directions.SELECTION_STEPS:
        return directions.COMMITTED_RATE
    return directions.chosen_rate(root, setting, directions.base_method(method)) or directions.COMMITTED_RATE


def curves_figure(
    root, settings=("CosMixture-50-50", "Sinusoid-10-10"), runs=CURVE_RUNS, measure: str = "inner", seeds=(0, 1, 2)
):
    """One panel per setting: each run's meta-test nRMSE after its own loop against meta-steps (evals.csv of its
    continuation under ROOT/long), one line per seed in the run's style, at the run's chosen rate."""
    fig = make_subplots(rows=1, cols=len(settings), subplot_titles=list(settings), horizontal_spacing=0.07)
    styles = run_styles([f"{m}-{n}" for m, n in runs])
    for col, setting in enumerate(settings, 1):
        for method, n in runs:
            rate, label = _rate_of(root, setting, method, n), f"{method}-{n}"
            for seed in seeds:
                x, y = directions.curve(directions.long_folder(root, setting, method, n, rate, seed), measure)
                if x:
                    fig.add_trace(
                        go.Scatter(
                            x=x,
                            y=y,
                            mode="lines+markers",
                            name=f"{label} (Adam {rate})",
                            legendgroup=label,
                            showlegend=col == 1 and seed == seeds[0],
                            line=styles[label],
                            marker=dict(size=4),
                            hovertemplate=f"{label} seed {seed}: %{{y:.3f}} at %{{x}}<extra></extra>",
                        ),
                        row=1,
                        col=col,
                    )
        fig.update_xaxes(title_text="meta-steps", row=1, col=col)
    fig.update_yaxes(title_text="meta-test nRMSE after the run's own loop", row=1, col=1)
    fig.update_layout(
        title="Each direction at its own learning rate, trained on: the error after the loop",
        legend=dict(orientation="h", y=-0.22),
    )
    return fig


def agreement_figure(diagnosis: dict, title: str = ""):
    """At one theta: each direction's agreement between meta-batches (mean pairwise cosine, left) and its mean
    norm (right) against the loop's length N."""
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.12,
        subplot_titles=panel_titles(["agreement between meta-batches (mean pairwise cosine)", "mean norm"]),
    )
    fig.update_annotations(font_size=PANEL_FONT)
    steps = sorted(int(n) for n in diagnosis["directions"])
    for name, method in DIRECTION_METHODS.items():
        stats = [diagnosis["directions"][str(n)][name] for n in steps]
        for col, key in ((1, "pairwise_cosine"), (2, "mean_norm")):
            fig.add_trace(
                go.Scatter(
                    x=steps,
                    y=[s[key] for s in stats],
                    mode="lines+markers",
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    line=dict(color=color_of(method)),
                ),
                row=1,
                col=col,
            )
    for col in (1, 2):
        fig.update_xaxes(row=1, col=col, **log_axis(plain=True, title_text="inner steps N"))
    fig.update_yaxes(row=1, col=2, **log_axis())
    fig.update_layout(title=title or "The three directions at one θ", legend=dict(orientation="h", y=-0.25))
    return fig


def spectrum_figure(diagnoses: dict, steps: int, title: str = ""):
    """The singular values of du(N)/dθ, largest first (log scale), at N = ``steps``, one line per theta
    (``diagnoses``: {label: diagnosis}); the line at 1 separates the directions the loop stretches from those it
    shrinks."""
    fig = go.Figure()
    styles = run_styles(list(diagnoses))
    for label, d in diagnoses.items():
        values = d["spectrum"][str(steps)]
        fig.add_trace(
            go.Scatter(x=list(range(1, len(values) + 1)), y=values, mode="lines", name=label, line=styles[label])
        )
    fig.add_hline(y=1.0, line=dict(color="#777777", dash="dot"))
    fig.update_xaxes(title_text="rank of the singular value")
    fig.update_yaxes(title_text="singular value of du(N)/dθ", **log_axis())
    fig.update_layout(title=title or f"The loop's Jacobian at N = {steps}", legend=dict(orientation="h", y=-0.25))
    return fig


def slices_figure(diagnosis: dict, title: str = ""):
    """The own-loop query loss along the exact and the Reptile direction (each normalised, its descent to the
    left), one panel per N."""
    steps = sorted(int(n) for n in diagnosis["slices"])
    fig = make_subplots(rows=1, cols=len(steps), subplot_titles=[f"N = {n}" for n in steps], horizontal_spacing=0.08)
    for col, n in enumerate(steps, 1):
        for name in ("exact", "reptile"):
            fig.add_trace(
                go.Scatter(
                    x=diagnosis["alphas"],
                    y=diagnosis["slices"][str(n)][name],
                    mode="lines+markers",
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    marker=dict(size=4),
                    line=dict(color=color_of(DIRECTION_METHODS[name])),
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text="α along the normalised direction", row=1, col=col)
    fig.update_yaxes(title_text="query MSE after the loop", row=1, col=1)
    fig.update_layout(title=title or "The meta-loss along each direction", legend=dict(orientation="h", y=-0.25))
    return fig


def scale_figure(diagnoses: dict, title: str = ""):
    """Per diagnosed theta ({label: diagnosis} with a "scale"), each meta-batch's norm of the exact and of the
    Reptile direction at the run's own N (in the run's name), over that direction's median (log scale), a row per
    theta from the top down: a heavy tail is a few batches far larger than the rest.  Rows, not columns: their
    labels read across, at a phone's width too."""
    fig = go.Figure()
    labels = [label for label, d in diagnoses.items() if "scale" in d]
    for name in ("exact", "reptile"):
        xs, ys = [], []
        for label in labels:
            norms = diagnoses[label]["scale"][name]["norms"]
            median = statistics.median(norms)
            xs += [v / median for v in norms]
            ys += [label] * len(norms)
        fig.add_trace(
            go.Box(
                x=xs,
                y=ys,
                name=f"{name} direction",
                orientation="h",
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                marker=dict(color=color_of(DIRECTION_METHODS[name]), size=5),
                line=dict(color=color_of(DIRECTION_METHODS[name])),
                fillcolor="rgba(0,0,0,0)",
            )
        )
    fig.add_vline(x=1.0, line=dict(color="#777777", dash="dot", width=1))
    fig.update_xaxes(title_text="a batch's norm over the median batch's", **log_axis(plain=True))
    fig.update_yaxes(title_text="θ of", categoryorder="array", categoryarray=labels[::-1], automargin=True)
    text, top = top_title(wrap(title or "How unevenly the directions' sizes spread over 20 meta-batches"))
    fig.update_layout(
        boxmode="group",
        title=text,
        height=160 + 42 * len(labels),
        margin=dict(t=top),
        legend=dict(orientation="h", y=-0.12, yanchor="top"),
    )
    return fig


SURVIVES = 1e-3  # a singular value of du(N)/dtheta above this: a direction of theta that still moves u(N)


def nearest_diagnosed(diagnosis: dict, steps: int) -> int:
    """The N at which the directions were diagnosed (10, 100, 1,000) nearest to ``steps`` on a log scale."""
    return min((int(n) for n in diagnosis["directions"]), key=lambda n: (abs(math.log(n / steps)), n))


def spectrum_counts(values: list) -> dict:
    """How many singular values exceed 1 (the directions the loop stretches) and :data:`SURVIVES`, and the largest."""
    return {
        "total": len(values),
        "above_one": sum(v > 1 for v in values),
        "survive": sum(v > SURVIVES for v in values),
        "largest": max(values),
    }


def _agreements(diagnoses: dict, steps: int) -> dict:
    """{direction: [its mean pairwise cosine at each theta, at the diagnosed N nearest to ``steps``]}."""
    return {
        name: [d["directions"][str(nearest_diagnosed(d, steps))][name]["pairwise_cosine"] for d in diagnoses.values()]
        for name in DIRECTION_METHODS
    }


def _explorer_titles(diagnoses: dict, steps: int) -> list:
    near = nearest_diagnosed(next(iter(diagnoses.values())), steps)
    return panel_titles(
        [
            f"singular values of du(N)/dθ at N = {steps}",
            f"agreement between batches at N = {near}",
        ]
    )


def explorer_figure(diagnoses: dict, steps: int, widget: bool = False):
    """Notebook 09's explorer at N = ``steps``: left, each theta's singular values of the loop's Jacobian (largest
    first, log scale, the lines at 1 and at :data:`SURVIVES`); right, each direction's agreement between
    meta-batches at each theta (at the diagnosed N nearest to ``steps``).  The first ``len(diagnoses)`` traces are
    the spectra, the next three the directions' bars: :func:`update_explorer` rewrites only their y."""
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.58, 0.42],
        horizontal_spacing=0.1,
        subplot_titles=_explorer_titles(diagnoses, steps),
    )
    fig.update_annotations(font_size=PANEL_FONT)
    styles = run_styles(list(diagnoses))
    for label, d in diagnoses.items():
        values = d["spectrum"][str(steps)]
        fig.add_trace(
            go.Scatter(
                x=list(range(1, len(values) + 1)),
                y=values,
                mode="lines",
                name=f"θ of {label}",
                legendgroup=label,
                line=styles[label],
            ),
            row=1,
            col=1,
        )
    for name, values in _agreements(diagnoses, steps).items():
        fig.add_trace(
            go.Bar(
                x=[f"θ of {label}" for label in diagnoses],
                y=values,
                name=f"{name} direction",
                marker_color=color_of(DIRECTION_METHODS[name]),
            ),
            row=1,
            col=2,
        )
    for level, dash in ((1.0, "dot"), (SURVIVES, "dash")):
        fig.add_hline(y=level, line=dict(color="#777777", dash=dash, width=1), row=1, col=1)
    fig.update_xaxes(row=1, col=1, **log_axis(plain=True, title_text="rank of the singular value (largest first)"))
    largest = max(max(v) for d in diagnoses.values() for v in d["spectrum"].values())
    # from 1e-5, so that the few values far below (the loop's null directions) do not squeeze the rest to a line
    fig.update_yaxes(
        title_text="singular value (dotted: 1; dashed: 1e-3)",
        range=[-5, math.log10(2 * largest)],
        row=1,
        col=1,
        **log_axis(),
    )
    fig.update_yaxes(title_text="mean pairwise cosine", range=[-0.1, 1.0], row=1, col=2)
    fig.update_layout(
        barmode="group",
        height=520,
        legend=dict(orientation="h", y=-0.22),
        title=top_title(EXPLORER_TITLE)[0],
        margin=dict(t=top_title(EXPLORER_TITLE)[1]),
    )
    return as_widget(fig) if widget else fig


EXPLORER_TITLE = wrap("What the loop does to θ's directions, beside how the meta-gradient's directions agree")


def update_explorer(fig, diagnoses: dict, steps: int) -> None:
    """Move the explorer to N = ``steps``: rewrites the spectra, the bars and the two panel titles."""
    with fig.batch_update():
        for i, d in enumerate(diagnoses.values()):
            fig.data[i].y = d["spectrum"][str(steps)]
        for j, values in enumerate(_agreements(diagnoses, steps).values()):
            fig.data[len(diagnoses) + j].y = values
        for annotation, text in zip(fig.layout.annotations, _explorer_titles(diagnoses, steps)):
            annotation.text = text


__all__ = [
    "CURVE_RUNS",
    "DIRECTION_METHODS",
    "SURVIVES",
    "agreement_figure",
    "curves_figure",
    "explorer_figure",
    "nearest_diagnosed",
    "scale_figure",
    "slices_figure",
    "spectrum_counts",
    "spectrum_figure",
    "update_explorer",
]
