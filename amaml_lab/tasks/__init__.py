"""Task families: each builds (support, query) batches of (x, y) tensors."""
from .synthetic import cos_mixture_task

__all__ = ["cos_mixture_task"]
