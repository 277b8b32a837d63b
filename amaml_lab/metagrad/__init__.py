"""One entry point for every meta-gradient: :func:`meta_gradient` (see :mod:`.dispatch`), the batch over tasks
(:func:`meta_gradient_batch`) and the side-by-side comparison (:func:`compare_methods`)."""

from __future__ import annotations

from .backsolve import BacksolveWarning
from .batch import BatchMetaGradient, VmapFallbackWarning, meta_gradient_batch
from .comln import comln_task
from .compare import compare_methods
from .core import MetaGradient
from .dispatch import METHODS, SCHEMES, Method, loop_jacobian, meta_gradient
from .sweeps import GridSchemeWarning

__all__ = [
    "meta_gradient",
    "loop_jacobian",
    "METHODS",
    "MetaGradient",
    "BacksolveWarning",
    "GridSchemeWarning",
    "SCHEMES",
    "Method",
    "comln_task",
    "compare_methods",
    "meta_gradient_batch",
    "BatchMetaGradient",
    "VmapFallbackWarning",
]
