"""Committed and new run folders read: a run's files (:mod:`.rundir`), paired statistics and tables
(:mod:`.stats`), the committed long runs (:mod:`.committed`), the horizon experiment (:mod:`.payoff`, notebook
08), exact or first-order through a long loop (:mod:`.directions`, :mod:`.diagnosis`, notebook 09), the image runs'
stopping rule (:mod:`.stopping`)."""

from ..faces import lazy_face

PUBLIC = {
    "load_run": "rundir",
    "per_task": "rundir",
    "config_of": "rundir",
    "paired": "stats",
    "paired_runs": "stats",
    "format_paired": "stats",
    "markdown_table": "stats",
    "RESULTS": "committed",
}
SUBMODULES = ("rundir", "stats", "committed", "payoff", "directions", "diagnosis", "stopping")
__all__ = sorted(PUBLIC)
__getattr__ = lazy_face(__name__, PUBLIC, SUBMODULES)
