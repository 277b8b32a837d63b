"""Widget apps for the notebooks: a plain class computes, ipywidgets controls only call it.

Each app holds ``controls`` (a dict of ipywidgets), ``figure`` (a plotly ``FigureWidget``) and ``status`` (an HTML
line); changing a control's ``.value`` calls :meth:`App.update`, which looks up what the app computed when it was
built (through :mod:`amaml_lab.teach` or from committed files), or measures through :mod:`amaml_lab.measure`, and
writes the new data into the figure's traces.  Nothing needs a running kernel, so the
tests drive the apps by setting values.  Show one in a notebook with ``display(app.widget)``.

:mod:`.app` holds the common part, :mod:`.surfaces` the apps of notebooks 01 and 03, :mod:`.methods` those of
02 and 04; notebook 08's is :mod:`amaml_lab.widgets.payoff` and notebook 09's :mod:`amaml_lab.widgets.directions`
(imported from there: they read committed run folders).
"""

from .app import App, grid_index, slider_grid, slider_layout
from .methods import BaselineExplorer, CostExplorer, HorizonExplorer, measured_costs
from .surfaces import FlowExplorer, ReconstructionExplorer

__all__ = [
    "App",
    "BaselineExplorer",
    "CostExplorer",
    "FlowExplorer",
    "HorizonExplorer",
    "ReconstructionExplorer",
    "grid_index",
    "measured_costs",
    "slider_grid",
    "slider_layout",
]
