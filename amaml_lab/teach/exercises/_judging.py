"""How an exercise judges an answer: its reference in float64, the tolerance the answer's precision allows, and
the one sentence that names what is off (shared by every exercise of the package, private to it)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Exercise:
    name: str
    notebook: str
    task: str
    checker: object  # answer -> (ok, sentence)
    solution: object


STUB = "the notebook's stub"  # how a checker's sentence names the untouched stub (printed as not answered yet)
SINGLE = 1e-5  # relative: how close a float32 answer can be to the float64 reference after a few operations
AT_SINGLE = " (a float32 answer, judged at float32 precision: relative 1e-5)"


class NoAnswer(ValueError):
    """The answer is None: a stub left as it is, or a function without ``return``."""


def random_spd(n: int, gen: torch.Generator, low: float = 0.1, high: float = 5.0) -> torch.Tensor:
    """A symmetric positive definite matrix with eigenvalues drawn in [low, high] (float64)."""
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    eig = low + (high - low) * torch.rand(n, generator=gen, dtype=torch.float64)
    return q @ torch.diag(eig) @ q.T


def number(answer) -> float:
    if answer is None:
        raise NoAnswer
    return float(answer)


def _single(out) -> bool:
    return str(getattr(out, "dtype", "")) in ("torch.float32", "float32")  # a torch or numpy float32


def as_answer(out, tol: float = 1e-10) -> tuple[torch.Tensor, float]:
    """The answer in float64 and the tolerance its precision allows: ``tol``, or :data:`SINGLE` for float32.

    A tuple or list (a pair of numbers, say) is stacked, float32 if any of its items is."""
    if out is None:
        raise NoAnswer
    if isinstance(out, (tuple, list)):
        single = any(_single(item) for item in out)
        got = torch.stack([torch.as_tensor(item, dtype=torch.float64) for item in out]) if out else torch.zeros(0)
    else:
        single, got = _single(out), torch.as_tensor(out, dtype=torch.float64)
    return got, max(tol, SINGLE) if single else tol


def scalars(refs: dict, plain=()) -> dict:
    """``refs`` with every number made a float64 tensor, except the keys in ``plain`` (kept for the sentences)."""
    return {
        key: v if key in plain or isinstance(v, tuple) else torch.tensor(float(v), dtype=torch.float64)
        for key, v in refs.items()
    }


def close(a, b, tol: float = 1e-10) -> bool:
    """Whether ``a`` is ``b`` up to ``tol`` relative (a reference of zero is matched only exactly)."""
    return a.shape == b.shape and bool(torch.linalg.vector_norm(a - b) <= tol * float(b.norm()))


def matches(got, ref, tol: float) -> bool:
    """Whether ``got`` is ``ref``, or one of them when ``ref`` is a tuple of variants of one mistake."""
    return any(close(got, r, tol) for r in (ref if isinstance(ref, tuple) else (ref,)))


def shown(t: torch.Tensor) -> str:
    """A short vector as ``(a, b, ...)`` to 4 significant figures (its first 6 entries)."""
    values = [f"{float(v):.4g}" for v in t.flatten()[:6]]
    return "(" + ", ".join(values) + (", …" if t.numel() > 6 else "") + ")"


def judge(results, sentences: dict, right: str, far: str) -> tuple[bool, str]:
    """Judge a function's answers on several inputs.

    ``results``: one (answer, tol, refs) per input, refs["right"] the reference and refs[key] what the mistake
    ``key`` of ``sentences`` returns (or a tuple of variants). Right on every input: True and ``right``; else the
    first mistake that explains every answer (one input can make two mistakes coincide); else, within 1e-4
    (relative), a sentence on precision; else, as a last resort, ``far`` formatted with the first wrong input's
    plain refs, ``off`` (the distance), ``rel`` (relative), and ``got`` and ``expected``: numbers for a number,
    ``(a, b, ...)`` strings for a vector.
    """
    wrong = [(got, refs) for got, tol, refs in results if not close(got, refs["right"], tol)]
    if not wrong:
        return True, right + (AT_SINGLE if any(tol == SINGLE for _, tol, _ in results) else "") + "."
    for key, sentence in sentences.items():
        if all(matches(got, refs[key], tol) for got, tol, refs in results):
            return False, sentence
    got, refs = wrong[0]
    if got.shape != refs["right"].shape:
        return False, f"the answer has shape {tuple(got.shape)}; the right one has {tuple(refs['right'].shape)}."
    off = float((got - refs["right"]).norm())
    if off <= 1e-4 * float(refs["right"].norm()):  # the right formula at another precision: say so
        return False, (
            f"close, but off by {off / float(refs['right'].norm()):.1g} (relative): keep the inputs' float64 "
            "precision, or return float32 (a float32 answer is judged at float32 precision)."
        )
    plain = {key: value for key, value in refs.items() if not isinstance(value, (torch.Tensor, tuple))}
    if got.numel() == 1:
        plain.update(got=float(got), expected=float(refs["right"]))
    else:
        plain.update(got=shown(got), expected=shown(refs["right"]))
    return False, far.format(off=off, rel=off / float(refs["right"].norm()), **plain)


def two_figures(x: float) -> float:
    """Half a unit in the second significant figure of ``x``: how far an answer rounded to 2 figures can be."""
    return 0.5 * 10.0 ** (math.floor(math.log10(abs(x))) - 1) + 1e-12
