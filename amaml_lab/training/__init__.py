"""A run: its settings (:mod:`.config`), the model and losses from them (:mod:`.builders`), meta-training
(:mod:`.train`), evaluation (:mod:`.evaluate`), process groups (:mod:`.distributed`) and the run folder
written (:mod:`.runs`).  Reading a run folder is :mod:`amaml_lab.studies.rundir`, which imports no trainer."""

from ..faces import lazy_face

PUBLIC = {
    "RunConfig": "config",
    "TRAIN_METHODS": "config",
    "build_model": "builders",
    "losses_for": "builders",
    "meta_train": "train",
    "batch_gradient": "train",
    "Diverged": "train",
    "evaluate": "evaluate",
    "run": "runs",
    "reevaluate": "runs",
    "validate": "runs",
}
SUBMODULES = ("config", "builders", "train", "evaluate", "distributed", "runs")
__all__ = sorted(PUBLIC)
__getattr__ = lazy_face(__name__, PUBLIC, SUBMODULES)
