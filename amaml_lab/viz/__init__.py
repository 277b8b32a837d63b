"""Plotly figures, one module per subject: :mod:`.figures` (notebooks 01-07), :mod:`.horizons` (02's explorer),
:mod:`.payoff` (08), :mod:`.directions` (09), :mod:`.static` (the kernel-free explorers of the book) and
:mod:`.style` (one colour per method, run styles, log axes).  ``viz.surface_figure`` and the other figures of
:mod:`.figures` are reachable from here."""

from ..faces import lazy_face

PUBLIC = {
    "PATH_NAMES": "figures",
    "PATH_POINTS": "figures",
    "surface_figure": "figures",
    "update_surface": "figures",
    "agreement_figure": "figures",
    "order_figure": "figures",
    "COST_METHODS": "figures",
    "HORIZON_COST": "figures",
    "cost_figure": "figures",
    "update_cost": "figures",
    "reconstruction_figure": "figures",
    "RECONSTRUCTION_TITLE": "figures",
    "update_reconstruction": "figures",
    "blowup_figure": "figures",
    "backsolve_figure": "figures",
    "baselines_figure": "figures",
    "update_baselines": "figures",
    "MEASURES": "figures",
    "meta_progress_figure": "figures",
    "learning_curves_figure": "figures",
    "finetune_figure": "figures",
    "episode_figure": "figures",
    "accuracy_figure": "figures",
}
SUBMODULES = ("figures", "horizons", "payoff", "directions", "static", "style")
__all__ = sorted(PUBLIC)
__getattr__ = lazy_face(__name__, PUBLIC, SUBMODULES)
