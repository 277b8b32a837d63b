"""Exercises on the inner loop's steps: the largest stable step (notebook 01), where back-solving breaks (03) and
the directions a long loop keeps (09)."""

from __future__ import annotations

import functools
import math

import torch

from ...functional import load_forward_ad
from ._judging import Exercise, as_answer, judge, number, scalars, two_figures

# notebook 01's exercise (its check and its hint) uses torch.func.hessian: load forward mode now, quietly, so that
# neither the check nor the learner's own call prints PyTorch's internal torch.jit.script deprecation warning
load_forward_ad()


# ---------------------------------------------------------------- 01: the largest stable step
def _bowl_lam_max() -> float:
    from ..surfaces import surface

    H = torch.func.hessian(surface("quadratic").loss)(torch.zeros(2, dtype=torch.float64))
    return float(torch.linalg.eigvalsh(H)[-1])


STABLE_STEP_STUB = 0.5  # what notebook 01 ships in my_answer


def _check_stable_step(answer) -> tuple[bool, str]:
    lam = _bowl_lam_max()
    right, h = 2.0 / lam, number(answer)
    tol = two_figures(right)
    if abs(h - right) <= tol:
        return True, (
            f"{h:g} ≈ 2/λmax = {right:.4f} (accepted to 2 significant figures, ±{tol:.2g}): each step "
            f"multiplies the stiff direction by 1 − h·λmax, in (−1, 1) only for h below {right:.4f}."
        )
    if h == STABLE_STEP_STUB:
        return False, (
            f"{h:g} is the placeholder the notebook's stub puts in my_answer: fill in the largest stable "
            "step you work out from the Hessian's eigenvalues."
        )
    if h <= 0:
        return False, (
            f"negated or zero: a step h = {h:.4g} does not descend (h < 0 climbs the loss); check the sign, "
            "the bound comes from 1 − h·λmax staying above −1."
        )
    near = {
        1.0 / lam: "that is 1/λmax, where the stiff direction is removed in one step; past it the iterates "
        "oscillate but still shrink, up to 2/λmax.",
        lam: "that is λmax itself, a curvature, not a step: the step is limited by 1 − h·λmax staying above −1.",
        2.0 * right: "doubled: that is 4/λmax, too large: there 1 − h·λmax = −3; the bound is where it reaches −1.",
    }
    for value, sentence in near.items():
        if abs(h - value) <= two_figures(value):
            return False, sentence
    if h > right and abs(2.0 / h - 0.5) < 0.05:
        return False, "that step is set by the smallest eigenvalue; the largest one (the stiff direction) limits it."
    if right - 2 * tol <= h < right:
        return False, f"close, but truncated: round 2/λmax to 2 significant figures (±{tol:.2g} is accepted)."
    verdict = "too large: gradient descent diverges there" if h > right else "stable but not the largest"
    return False, f"{h:.4g} is {verdict}; the bound comes from 1 − h·λmax staying above −1."


def _solution_stable_step():
    return 2.0 / _bowl_lam_max()


# ---------------------------------------------------------------- 03: where back-solving breaks
@functools.cache
def measured_breaking_point(tol: float = 1e-6, horizon: float = 2.0, steps: int = 200) -> float:
    """The smallest λmax·T on a grid where the state rebuilt backward misses θ by more than ``tol`` (relative).

    Measured once per process and arguments (cached): the sweep rebuilds 40 states and takes seconds.
    """
    from ..backward import reconstruction_sweep

    lam_values = [2.0 * 1.1**i for i in range(40)]
    for row in reconstruction_sweep(lam_values, horizon=horizon, steps=steps):
        if not row["error"] <= tol:
            return row["lam_T"]
    return float("inf")


BREAKING_POINT_STUB = 10.0  # what notebook 03 ships in my_answer


def _check_breaking_point(answer) -> tuple[bool, str]:
    guess = number(answer)
    measured = measured_breaking_point()
    if abs(guess - measured) <= 0.15 * measured:
        return True, (
            f"measured: the rebuilt u(0) misses θ by more than 1e-6 from λmax·T ≈ {measured:.0f}; "
            f"e^(λmax·T) × 1e-16 = 1e-6 gives λmax·T = ln(1e10) ≈ 23."
        )
    if guess == BREAKING_POINT_STUB:
        return False, (
            "10 is the placeholder the notebook's stub puts in my_answer: fill in your prediction (if you "
            "solved for it: 10 is log10(1e10); the growth is e^(λmax·T), so take the natural log)."
        )
    if abs(guess - math.log(1e16)) < 3:
        return False, (
            "that is where the error reaches order one (ln 1e16 ≈ 37); the question asks for 1e-6, "
            "ten orders of magnitude earlier."
        )
    if guess < 0:
        return False, (
            f"negated: you said {guess:.3g}, but λmax·T (a curvature times a time) is positive; check the "
            "sign of your logarithm."
        )
    return False, (
        f"measured {measured:.0f}, you said {guess:.3g}: rounding of 1e-16 grows like e^(λmax·T); "
        "solve e^(λmax·T) × 1e-16 = 1e-6."
    )


def _solution_breaking_point():
    return math.log(1e-6 / 1e-16)


# ---------------------------------------------------------------- 09: the directions a long loop keeps
_SURVIVE = {
    "stub": (
        "that is every direction, which is what the notebook's stub returns: count only those whose factor "
        "|1 − hλ|^N stays above 1e-3."
    ),
    "flow": (
        "that is the flow's e^(−λT), T = N·h, not the steps' (1 − hλ)^N: they part where hλ is not small (a step "
        "with hλ = 1 lands on the minimum; with hλ > 2 it overshoots and grows)."
    ),
    "no abs": (
        "a step with hλ > 1 flips the sign of that direction: its size after N steps is |1 − hλ|^N (yours drops "
        "it when N is odd)."
    ),
    "above one": "that counts the directions the loop stretches (factor above 1); those above 1e-3 are asked.",
    "negated": "the step descends: u ← u − h·H·u, so each factor is 1 − hλ, not 1 + hλ.",
    "shrunk": "that counts the directions the loop shrinks below 1e-3: the others survive.",
    "one step": "that is one step's factor |1 − hλ|; the loop applies it N times: |1 − hλ|^N.",
}
_SURVIVE_CASES = (  # (eigenvalues, h, N): every mistake above differs from the right count in one case at least
    ([-0.5, -0.01, 1e-4, 1e-3, 0.5, 5.0, 10.0, 12.0, 15.0, 25.0, 40.0], 0.1, 101),
    ([-50.0, -0.2, 0.0, 0.3, 0.5, 0.8, 2.0, 100.0, 150.0, 199.0, 250.0], 0.01, 1000),
)


def _check_survivors(survivors) -> tuple[bool, str]:
    results = []
    for values, h, n in _SURVIVE_CASES:
        lam = torch.tensor(values, dtype=torch.float64)
        factor = (1 - h * lam).abs()

        def count(kept):
            return float(kept.sum())

        refs = {
            "right": count(factor**n > 1e-3),
            "directions": len(values),
            "stub": float(len(values)),
            "flow": count(torch.exp(-lam * h * n) > 1e-3),
            "no abs": count((1 - h * lam) ** n > 1e-3),
            "above one": count(factor**n > 1),
            "negated": count((1 + h * lam).abs() ** n > 1e-3),
            "shrunk": count(factor**n <= 1e-3),
            "one step": count(factor > 1e-3),
        }
        got, tol = as_answer(survivors(lam.clone(), h, n), 1e-9)
        if got.numel() != 1:
            return False, f"return one number, the count, not {got.numel()} of them."
        refs = scalars(refs, plain=("directions",))
        results.append((got.reshape(()), tol, refs))
    return judge(
        results,
        _SURVIVE,
        "|1 − hλ|^N > 1e-3: flat directions (hλ near 0) survive any loop, curved ones fade, and the loop stretches "
        "those of negative curvature or of hλ > 2",
        "of {directions} directions expected {expected:.0f} to survive, got {got:.4g}.",
    )


def _solution_survivors():
    def survivors(lam, h, n):
        return int(((1 - h * lam).abs() ** n > 1e-3).sum())

    return survivors


EXERCISES = (
    Exercise(
        "stable_step",
        "01",
        "The bowl has loss ½ uᵀAu. What is the largest step size h for which gradient descent "
        "u ← u − h∇L(u) still converges? Answer with a number (hint: torch.func.hessian and "
        "torch.linalg.eigvalsh).",
        _check_stable_step,
        _solution_stable_step,
    ),
    Exercise(
        "breaking_point",
        "03",
        "Rounding leaves about 1e-16 (relative) in u(T), and running the flow backward multiplies it by about "
        "e^(λmax·T). Predict the λmax·T at which the rebuilt u(0) misses θ by more than 1e-6. Answer with a "
        "number; the check measures it.",
        _check_breaking_point,
        _solution_breaking_point,
    ),
    Exercise(
        "survivors",
        "09",
        "A quadratic support loss with Hessian H (eigenvalues lam, a tensor) trained by N Euler steps of size h "
        "has the loop's Jacobian du(N)/dθ = (I − hH)^N. Write survivors(lam, h, n) returning how many directions "
        "of θ still move u(N) by more than 1e-3 of their size (singular values above 1e-3).",
        _check_survivors,
        _solution_survivors,
    ),
)
