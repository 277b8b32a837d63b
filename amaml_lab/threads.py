"""The kit chooses its threads: one intra-op thread, unless ``AMAML_LAB_THREADS`` says otherwise.

The kit's work is many tiny tensor operations (a 2 x 32 MLP, a meta-batch of five), where OpenMP threads gain
little and, on a busy laptop, spin against each other: a notebook that finishes in minutes on one thread can take
far longer on two beside another busy process.  Importing ``amaml_lab`` therefore sets
``torch.set_num_threads(1)``.  ``AMAML_LAB_THREADS=N`` sets N threads instead; ``AMAML_LAB_THREADS=0`` leaves
PyTorch's own choice (for larger models of your own).  Processes the kit starts (workers, ranks) inherit it.
"""

from __future__ import annotations

import os

VARIABLE = "AMAML_LAB_THREADS"


def chosen_threads(value: str | None = None) -> int:
    """The intra-op threads the kit uses: ``value`` (default: the environment's ``AMAML_LAB_THREADS``, else 1);
    0 means PyTorch's own choice."""
    value = os.environ.get(VARIABLE, "1") if value is None else value
    try:
        threads = int(value)
    except ValueError:
        threads = -1
    if threads < 0:
        raise ValueError(
            f"{VARIABLE}={value!r} is not allowed; allowed values: an integer >= 1 (threads), or 0"
            " (PyTorch's own choice)"
        )
    return threads


def use_chosen_threads() -> int:
    """Apply :func:`chosen_threads` to this process; returns the threads torch now uses."""
    import torch

    threads = chosen_threads()
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()
