"""Exercises for the notebooks: a learner writes a few lines, the package checks them and says what is off.

    from amaml_lab import exercises
    print(exercises.task("adjoint_euler_step"))        # what to write
    exercises.check("adjoint_euler_step", my_step)     # True, or False with one sentence on what is off

Each exercise compares the answer with a reference computed here (on random
inputs for functions), so an answer is checked, not matched to a string.
The solutions live in this module (:func:`solution`); the notebooks hold only
the learner's stub, and ``tests/test_exercises.py`` runs every exercise with
its solution and with typical wrong answers.
"""
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


def _random_spd(n: int, gen: torch.Generator, low: float = 0.1, high: float = 5.0) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    eig = low + (high - low) * torch.rand(n, generator=gen, dtype=torch.float64)
    return q @ torch.diag(eig) @ q.T


def _call(fn, *args):
    out = fn(*args)
    return torch.as_tensor(out, dtype=torch.float64)


def _close(a, b, tol: float = 1e-10) -> bool:
    return a.shape == b.shape and bool(torch.linalg.vector_norm(a - b) <= tol * max(1.0, float(b.norm())))


# ---------------------------------------------------------------- 01: the largest stable step
def _bowl_lam_max() -> float:
    from .explore import surface

    H = torch.func.hessian(surface("quadratic").loss)(torch.zeros(2, dtype=torch.float64))
    return float(torch.linalg.eigvalsh(H)[-1])


def _check_stable_step(answer) -> tuple[bool, str]:
    lam = _bowl_lam_max()
    right = 2.0 / lam
    h = float(answer)
    if abs(h - right) <= 0.01 * right:
        return True, f"h < 2/λmax = {right:.4f}: each step multiplies the stiff direction by 1 − h·λmax, in (−1, 1)."
    if abs(h - 1.0 / lam) <= 0.01 / lam:
        return False, ("that is 1/λmax, where the stiff direction is removed in one step; past it the iterates "
                       "oscillate but still shrink, up to 2/λmax.")
    lam_min = 2.0 / h if h > 0 else float("nan")
    if h > right and abs(lam_min - 0.5) < 0.05:
        return False, "that step is set by the smallest eigenvalue; the largest one (the stiff direction) limits it."
    return False, (f"{h:.4g} is {'too large: gradient descent diverges there' if h > right else 'stable but not the largest'}"
                   f"; the bound comes from 1 − h·λmax staying above −1.")


def _solution_stable_step():
    return 2.0 / _bowl_lam_max()


# ---------------------------------------------------------------- 02: one Euler step of the adjoint
def _check_adjoint_euler_step(step) -> tuple[bool, str]:
    gen = torch.Generator().manual_seed(2)
    cases = [(torch.randn(5, generator=gen, dtype=torch.float64), _random_spd(5, gen), h) for h in (0.01, 0.1, 0.3)]
    for a, H, h in cases:
        got = _call(step, a.clone(), H.clone(), h)
        if _close(got, a - h * H @ a):
            continue
        if _close(got, a + h * H @ a):
            return False, ("a + h·H·a runs the adjoint forward in time; going back from t to t − h, "
                           "a(t − h) ≈ a(t) − h·da/dt = a(t) − h·H·a(t).")
        if _close(got, a - H @ a) or _close(got, a + H @ a):
            return False, "the step size h is missing: an Euler step moves by h times the derivative."
        if _close(got, a - h * a) or _close(got, a + h * a):
            return False, "the Hessian is missing: the adjoint's derivative is H·a, not a."
        if _close(got, a):
            return False, "that leaves a unchanged: an Euler step moves it by h times its time derivative."
        return False, (f"at h = {h} the answer is off by {float((got - (a - h * H @ a)).norm()):.3g}: write the "
                       "adjoint's time derivative at t, then step by h against the direction of time.")
    return True, "a(t − h) = a(t) − h·H·a(t): the continuous adjoint's Euler step backward in time."


def _solution_adjoint_euler_step():
    def step(a, H, h):
        return a - h * H @ a
    return step


# ---------------------------------------------------------------- 03: where back-solving breaks
def measured_breaking_point(tol: float = 1e-6, horizon: float = 2.0, steps: int = 200) -> float:
    """The smallest λmax·T on a grid where the state rebuilt backward misses θ by more than ``tol`` (relative)."""
    from .explore import reconstruction_sweep

    lam_values = [2.0 * 1.1 ** i for i in range(40)]
    for row in reconstruction_sweep(lam_values, horizon=horizon, steps=steps):
        if not row["error"] <= tol:
            return row["lam_T"]
    return float("inf")


def _check_breaking_point(answer) -> tuple[bool, str]:
    guess = float(answer)
    measured = measured_breaking_point()
    if abs(guess - measured) <= 0.15 * measured:
        return True, (f"measured: the rebuilt u(0) misses θ by more than 1e-6 from λmax·T ≈ {measured:.0f}; "
                      f"e^(λmax·T) × 1e-16 = 1e-6 gives λmax·T = ln(1e10) ≈ 23.")
    if abs(guess - math.log(1e16)) < 3:
        return False, ("that is where the error reaches order one (ln 1e16 ≈ 37); the question asks for 1e-6, "
                       "ten orders of magnitude earlier.")
    return False, (f"measured {measured:.0f}, you said {guess:.3g}: rounding of 1e-16 grows like e^(λmax·T); "
                   "solve e^(λmax·T) × 1e-16 = 1e-6.")


def _solution_breaking_point():
    return math.log(1e-6 / 1e-16)


# ---------------------------------------------------------------- 04: iMAML's linear system by hand
def _check_imaml_system(solve) -> tuple[bool, str]:
    gen = torch.Generator().manual_seed(4)
    for lam in (0.5, 2.0, 20.0):
        H, g = _random_spd(6, gen), torch.randn(6, generator=gen, dtype=torch.float64)
        I = torch.eye(6, dtype=torch.float64)
        right = torch.linalg.solve(I + H / lam, g)
        got = _call(solve, H.clone(), g.clone(), lam)
        if _close(got, right, 1e-8):
            continue
        if _close(got, torch.linalg.solve(I + lam * H, g), 1e-8):
            return False, "that solves (I + λH) v = g; the proximal weight divides the Hessian: (I + H/λ) v = g."
        if _close(got, (I + H / lam) @ g, 1e-8):
            return False, "that multiplies g by (I + H/λ); iMAML needs its inverse applied to g (solve the system)."
        if _close(got, torch.linalg.solve(H / lam, g), 1e-8) or _close(got, torch.linalg.solve(H, g), 1e-8):
            return False, "the identity is missing: the implicit Jacobian of the proximal optimum is (I + H/λ)⁻¹."
        return False, f"at λ = {lam} the answer is {float((got - right).norm() / right.norm()):.2g} away (relative)."
    return True, "v = (I + H/λ)⁻¹ g: what conjugate gradient approaches, one HVP a step, without forming H."


def _solution_imaml_system():
    def solve(H, g, lam):
        return torch.linalg.solve(torch.eye(len(g), dtype=g.dtype) + H / lam, g)
    return solve


# ---------------------------------------------------------------- 07: a confidence interval over episodes
def _check_confidence_interval(ci95) -> tuple[bool, str]:
    gen = torch.Generator().manual_seed(7)
    for n in (20, 100, 600):
        acc = torch.rand(n, generator=gen, dtype=torch.float64)
        std = float(acc.std())
        right = 1.96 * std / math.sqrt(n)
        got = float(ci95(acc.clone()))
        if abs(got - right) <= 1e-9 * max(1.0, right):
            continue
        if abs(got - 1.96 * std) <= 1e-9:
            return False, "that is the spread of one episode's accuracy; the mean's is √n times smaller: divide by √n."
        if abs(got - 1.96 * float(acc.std(correction=0)) / math.sqrt(n)) <= 1e-9:
            return False, "almost: use the sample standard deviation (n − 1 in the denominator, torch's default)."
        if abs(got - std / math.sqrt(n)) <= 1e-9:
            return False, "that is one standard error; a 95% interval is 1.96 of them."
        return False, f"over {n} episodes expected {right:.4g}, got {got:.4g}."
    return True, "1.96 × s/√n: with 600 test episodes an accuracy is known to about ±1.5 points at most."


def _solution_confidence_interval():
    def ci95(accuracies):
        return 1.96 * float(accuracies.std()) / math.sqrt(len(accuracies))
    return ci95


EXERCISES = {e.name: e for e in (
    Exercise("stable_step", "01",
             "The bowl has loss ½ uᵀAu. What is the largest step size h for which gradient descent "
             "u ← u − h∇L(u) still converges? Answer with a number (hint: torch.func.hessian and "
             "torch.linalg.eigvalsh).", _check_stable_step, _solution_stable_step),
    Exercise("adjoint_euler_step", "02",
             "On a quadratic support loss the adjoint obeys da/dt = H·a, integrated backward from a(T) = ∇L_Q. "
             "Write step(a, H, h) returning a(t − h) after one Euler step from a(t).",
             _check_adjoint_euler_step, _solution_adjoint_euler_step),
    Exercise("breaking_point", "03",
             "Rounding leaves about 1e-16 (relative) in u(T), and running the flow backward multiplies it by about "
             "e^(λmax·T). Predict the λmax·T at which the rebuilt u(0) misses θ by more than 1e-6. Answer with a "
             "number; the check measures it.", _check_breaking_point, _solution_breaking_point),
    Exercise("imaml_system", "04",
             "iMAML's meta-gradient is v with (I + H/λ) v = g, g = ∇L_Q at the inner solution. Write "
             "solve(H, g, lam) returning v for a dense Hessian H.", _check_imaml_system, _solution_imaml_system),
    Exercise("confidence_interval", "07",
             "A few-shot accuracy is the mean over test episodes. Write ci95(accuracies) returning the half-width "
             "of its 95% confidence interval (the ± in the tables).",
             _check_confidence_interval, _solution_confidence_interval),
)}


def _exercise(name: str) -> Exercise:
    if name not in EXERCISES:
        raise ValueError(f"exercise {name!r} is not known; allowed values: {', '.join(EXERCISES)}")
    return EXERCISES[name]


def task(name: str) -> str:
    """What the exercise asks."""
    return _exercise(name).task


def solution(name: str):
    """The package's own answer (a number or a function)."""
    return _exercise(name).solution()


def check(name: str, answer, quiet: bool = False) -> bool:
    """Check ``answer``; print ✓ and why, or ✗ and one sentence on what is off. Returns whether it is right.

    An answer that raises counts as wrong (its error is the sentence).
    """
    ex = _exercise(name)
    try:
        ok, sentence = ex.checker(answer)
    except Exception as err:  # a learner's code may fail in any way: say so, do not stop the notebook
        ok, sentence = False, f"the answer raised {type(err).__name__}: {err}"
    if not quiet:
        print(("✓ " if ok else "✗ ") + f"{name}: {sentence}")
    return ok


__all__ = ["EXERCISES", "check", "solution", "task", "measured_breaking_point"]
