"""amaml_lab: meta-learning with long inner loops, adjoint methods side by side.

The public face: :func:`meta_gradient` and :data:`METHODS`; the inner flow in
:mod:`amaml_lab.flow`; task and model builders.  Above the engine, one subpackage a layer: ``training`` (a run),
``studies`` (run folders read), ``teach`` (the notebooks' computations), ``viz`` (figures), ``widgets`` (apps) and
``bench`` (measurements); ``cli`` and ``commands`` are the command line.

Importing the package sets one intra-op thread for PyTorch (:mod:`amaml_lab.threads`; ``AMAML_LAB_THREADS``
changes it).
"""

from . import moved
from .threads import use_chosen_threads

use_chosen_threads()
moved.install()  # the old import paths, each with a warning naming its new one (amaml_lab.moved)

from .flow import SOLVERS, trajectory  # noqa: E402
from .functional import ParamSpec, module_loss, module_params, task_losses  # noqa: E402
from .metagrad import (  # noqa: E402
    METHODS,
    BacksolveWarning,
    BatchMetaGradient,
    GridSchemeWarning,
    MetaGradient,
    VmapFallbackWarning,
    comln_task,
    compare_methods,
    loop_jacobian,
    meta_gradient,
    meta_gradient_batch,
)

__version__ = "0.1.0"

__all__ = [
    "meta_gradient",
    "compare_methods",
    "comln_task",
    "meta_gradient_batch",
    "BatchMetaGradient",
    "VmapFallbackWarning",
    "METHODS",
    "SOLVERS",
    "MetaGradient",
    "BacksolveWarning",
    "GridSchemeWarning",
    "ParamSpec",
    "trajectory",
    "loop_jacobian",
    "module_loss",
    "module_params",
    "task_losses",
]
