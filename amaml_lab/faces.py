"""Package faces: a subpackage's ``__init__`` names what is public and where it lives, and imports it on first
use, so that importing one module of a subpackage does not import its neighbours (a run-folder reader imports
no trainer, a widget no training code)."""

from __future__ import annotations

import importlib


def lazy_face(package: str, names: dict, submodules=()):
    """A module ``__getattr__`` for ``package``: ``names`` maps each public name to the submodule holding it;
    ``submodules`` are reachable as attributes too.  Anything else is an AttributeError."""

    def __getattr__(name: str):
        if name in names:
            return getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
