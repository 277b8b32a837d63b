"""Task families: each builds (support, query) batches of (x, y) tensors."""

from . import movielens
from .synthetic import FAMILIES, Split, cos_mixture_task, family, family_task, make_split, sample_episode

__all__ = [
    "movielens",
    "FAMILIES",
    "Split",
    "cos_mixture_task",
    "family",
    "family_task",
    "make_split",
    "sample_episode",
]
