"""Progress bars with an ETA that CI and quiet runs silence.

In a terminal they are tqdm's text bars, each cleared when done.  In a notebook (a Jupyter kernel) a run
shows one line of text that stays (a meta-training run's bar), and the bars of its parts (fine-tuning,
inner loops over the meta-test tasks) are not shown: no widget per epoch or per method is left in the
notebook's output.
"""

from __future__ import annotations

import os
import sys


def quiet_by_default() -> bool:
    """True under CI (``CI`` set) or when ``AMAML_LAB_QUIET`` is set: no bars unless asked for."""
    return bool(os.environ.get("CI")) or bool(os.environ.get("AMAML_LAB_QUIET"))


def in_notebook() -> bool:
    """True inside a Jupyter kernel."""
    return "ipykernel" in sys.modules


def progress(total: int, desc: str = "", initial: int = 0, enabled: bool | None = None, part: bool = False):
    """A tqdm bar over ``total`` units; a no-op bar when ``enabled`` is False (None: not under CI).

    ``part=True`` marks the bar of a part of a run (fine-tuning, an evaluation sweep): shown in a terminal,
    not in a notebook, where each run keeps to one line.
    """
    from tqdm import tqdm

    if enabled is None:
        enabled = not quiet_by_default()
    notebook = in_notebook()
    if notebook and part:
        enabled = False
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        disable=not enabled,
        dynamic_ncols=not notebook,
        leave=notebook,
        file=sys.stdout if notebook else sys.stderr,
        ncols=100 if notebook else None,
    )
