"""Argument checks in one place: a ValueError naming the argument and what is allowed, and a command-line parser
whose usage errors are one line and exit status 2."""
from __future__ import annotations

import argparse
import math
import numbers


def check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not known; allowed values: {', '.join(map(str, allowed))}")


def check_number(name: str, value, *, positive: bool = False, nonnegative: bool = False, integer: bool = False):
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        want = "an integer" if integer else "a real number"
        raise ValueError(f"{name} must be {want}; got {value!r}")
    if not integer and not math.isfinite(float(value)):
        raise ValueError(f"{name} must be finite; got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0; got {value!r}")
    if nonnegative and value < 0:
        raise ValueError(f"{name} must be >= 0; got {value!r}")
    return int(value) if integer else float(value)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message):  # one line, status 2
        self.exit(2, f"{self.prog}: error: {message}\n")
