"""Old import paths, kept for one release: each works and warns (DeprecationWarning) with its new path.

Issue 35 moved the modules above the engine into the subpackages of their layers; :data:`MOVED` lists every old
path with the modules that now hold its names (a split module lists several, searched in order).  Old paths of
names that moved out of :mod:`amaml_lab.measure` (the benchmark's catalogue and worker, now in
:mod:`amaml_lab.bench`) are removed, not kept.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

MOVED = {
    "config": ("training.config",),
    "builders": ("training.builders",),
    "train": ("training.train",),
    "evaluate": ("training.evaluate",),
    "distributed": ("training.distributed",),
    "runs": ("training.runs", "studies.rundir"),
    "experiments": ("commands", "studies.stats"),
    "committed": ("studies.committed",),
    "horizon_study": ("studies.payoff", "teach.payoff", "measure"),
    "directions": ("studies.directions",),
    "diagnosis": ("studies.diagnosis",),
    "explore": ("teach.surfaces",),
    "explore_backward": ("teach.backward",),
    "explore_baselines": ("teach.baselines",),
    "horizon": ("teach.horizons",),
    "horizon_data": ("teach.horizons_data",),
    "exercises": ("teach.exercises",),
    "viz_style": ("viz.style",),
    "viz_study": ("viz.payoff",),
    "viz_horizon": ("viz.horizons",),
    "viz_directions": ("viz.directions",),
    "viz_static": ("viz.static",),
    "widgets_study": ("widgets.payoff",),
    "peers": ("bench.peers",),
    "peers_jax": ("bench.peers_jax",),
    "side_by_side": ("bench.side_by_side",),
}
RENAMED = {("horizon_study", "_memory_order"): "memory_order", ("horizon_study", "test_horizons"): "evaluated_horizons"}


def _old_module(old: str) -> types.ModuleType:
    """A stand-in for ``amaml_lab.<old>``: each name is looked up in its new modules, with a warning."""
    module = types.ModuleType(f"amaml_lab.{old}", f"Moved: see amaml_lab.{' and amaml_lab.'.join(MOVED[old])}.")

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        new_name = RENAMED.get((old, name), name)
        for new in MOVED[old]:
            target = importlib.import_module(f"amaml_lab.{new}")
            if hasattr(target, new_name):
                warnings.warn(
                    f"amaml_lab.{old}.{name} is now amaml_lab.{new}.{new_name}; the old path goes in the next release",
                    DeprecationWarning,
                    stacklevel=2,
                )
                return getattr(target, new_name)
        raise AttributeError(f"amaml_lab.{old} (moved to amaml_lab.{', amaml_lab.'.join(MOVED[old])}) has no {name!r}")

    module.__getattr__ = __getattr__
    return module


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        package, _, old = fullname.partition(".")
        if package == "amaml_lab" and old in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return _old_module(spec.name.partition(".")[2])

    def exec_module(self, module):
        warnings.warn(
            f"{module.__name__} is now {' and '.join('amaml_lab.' + m for m in MOVED[module.__name__[10:]])};"
            " the old path goes in the next release",
            DeprecationWarning,
            stacklevel=2,
        )


def install() -> None:
    """Make the old paths importable (once)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
