"""Progress bars (tqdm.auto: a widget in notebooks, text in a terminal) that CI and quiet runs silence."""
from __future__ import annotations

import os


def quiet_by_default() -> bool:
    """True under CI (``CI`` set) or when ``AMAML_LAB_QUIET`` is set: no bars unless asked for."""
    return bool(os.environ.get("CI")) or bool(os.environ.get("AMAML_LAB_QUIET"))


def progress(total: int, desc: str = "", initial: int = 0, enabled: bool | None = None):
    """A tqdm bar with an ETA over ``total`` units; a no-op bar when ``enabled`` is False (None: not under CI)."""
    from tqdm.auto import tqdm

    if enabled is None:
        enabled = not quiet_by_default()
    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True, leave=False)
