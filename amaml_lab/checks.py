"""Argument checks in one place: a ValueError naming the argument and what is allowed, and a command-line parser
whose usage errors are one line and exit status 2."""

from __future__ import annotations

import argparse
import math
import numbers
import re


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


def check_device(device: str, dtype: str | None = None) -> str:
    """``device`` if this machine has it (and it computes ``dtype``), else a ValueError saying what it has."""
    import torch

    if not isinstance(device, str) or not re.fullmatch(r"cpu|cuda(:\d+)?|mps", device):
        raise ValueError(f"device={device!r} is not known; allowed values: cpu, cuda, cuda:N, mps")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but this torch sees no CUDA GPU; use cpu")
    if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ValueError(f"device={device!r} but this machine has {count} CUDA GPU(s): use cuda:0 to cuda:{count - 1}")
    if device == "mps" and dtype == "float64":
        raise ValueError("device='mps' cannot compute in float64; pass --dtype float32 or use cpu")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device='mps' but this torch sees no Apple GPU; use cpu")
    return device
