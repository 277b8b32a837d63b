"""Notebook 09's app: drag the loop's length N, see what the loop does to theta's directions (the singular values
of du(N)/dθ) beside how the meta-gradient's directions agree between meta-batches."""

from __future__ import annotations

import ipywidgets as W

from ..viz import directions as viz_directions
from .app import App, slider_layout


class DirectionsExplorer(App):
    """Every state is read when the app is built: ``diagnoses`` ({label: a diagnosis of
    ``results/diagnose_directions.py``}, e.g. :func:`amaml_lab.studies.directions.diagnoses`) holds each theta's
    spectrum at every N and the directions' agreement at N = 10, 100 and 1,000; a move only indexes.
    """

    def __init__(self, diagnoses: dict, steps: int | None = None):
        if not diagnoses:
            raise ValueError("diagnoses is empty: run results/diagnose_directions.py, or pass the committed ones")
        self.diagnoses = diagnoses
        grids = [sorted(int(n) for n in d["spectrum"]) for d in diagnoses.values()]
        self.steps = [n for n in grids[0] if all(n in g for g in grids)]
        steps = self.steps[-1] if steps is None else steps
        if steps not in self.steps:
            raise ValueError(f"steps={steps!r} is not diagnosed; allowed values: {', '.join(map(str, self.steps))}")
        self.controls = {
            "steps": W.SelectionSlider(options=self.steps, value=steps, description="inner steps N", **slider_layout())
        }
        self.figure = viz_directions.explorer_figure(diagnoses, steps, widget=True)
        super().__init__()
        self.update()

    def counts(self) -> dict:
        """{label: :func:`~amaml_lab.viz.directions.spectrum_counts` at the slider's N}."""
        n = str(self.controls["steps"].value)
        return {label: viz_directions.spectrum_counts(d["spectrum"][n]) for label, d in self.diagnoses.items()}

    def redraw(self) -> str:
        n = self.controls["steps"].value
        viz_directions.update_explorer(self.figure, self.diagnoses, n)
        parts = [
            f"θ of {label}: {c['above_one']:,} of {c['total']:,} above 1, {c['survive']:,} above 1e-3, largest"
            f" {c['largest']:.2f}"
            for label, c in self.counts().items()
        ]
        return f"N = {n}: " + "; ".join(parts)
