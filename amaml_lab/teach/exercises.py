"""Exercises for the notebooks: a learner writes a few lines, the package checks them and says what is off.

    from amaml_lab import exercises
    print(exercises.task("adjoint_euler_step"))        # what to write
    exercises.check("adjoint_euler_step", my_step)     # True, or False with one sentence on what is off

Each exercise compares the answer with a reference computed here (on random
inputs for functions), so an answer is checked, not matched to a string.
The solutions live in this module (:func:`solution`); the notebooks hold only
the learner's stub, and ``tests/teach/test_exercises.py`` runs every exercise with
its solution and with typical wrong answers.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from ..functional import load_forward_ad

# notebook 01's exercise (its check and its hint) uses torch.func.hessian: load forward mode now, quietly, so that
# neither the check nor the learner's own call prints PyTorch's internal torch.jit.script deprecation warning
load_forward_ad()


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


STUB = "the notebook's stub"  # how a checker's sentence names the untouched stub (printed as not answered yet)
SINGLE = 1e-5  # relative: how close a float32 answer can be to the float64 reference after a few operations
_AT_SINGLE = " (a float32 answer, judged at float32 precision: relative 1e-5)"


class _NoAnswer(ValueError):
    """The answer is None: a stub left as it is, or a function without ``return``."""


def _number(answer) -> float:
    if answer is None:
        raise _NoAnswer
    return float(answer)


def _answer(out, tol: float = 1e-10) -> tuple[torch.Tensor, float]:
    """The answer in float64 and the tolerance its precision allows: ``tol``, or :data:`SINGLE` for float32."""
    if out is None:
        raise _NoAnswer
    single = str(getattr(out, "dtype", "")) in ("torch.float32", "float32")  # a torch or numpy float32
    return torch.as_tensor(out, dtype=torch.float64), max(tol, SINGLE) if single else tol


def _close(a, b, tol: float = 1e-10) -> bool:
    """Whether ``a`` is ``b`` up to ``tol`` relative (no reference here is near zero)."""
    return a.shape == b.shape and bool(torch.linalg.vector_norm(a - b) <= tol * float(b.norm()))


def _judge(results, sentences: dict, right: str, far: str) -> tuple[bool, str]:
    """Judge a function's answers on several inputs.

    ``results``: one (answer, tol, refs) per input, refs["right"] the reference and refs[key] what the mistake
    ``key`` of ``sentences`` returns (or a tuple of variants). Right on every input: True and ``right``; else the
    first mistake that explains every answer (one input can make two mistakes coincide); else, as a last resort,
    ``far`` formatted with the first wrong input's plain refs, ``off`` (the distance), ``rel`` (relative), and
    for a number ``got`` and ``expected``.
    """
    wrong = [(got, refs) for got, tol, refs in results if not _close(got, refs["right"], tol)]
    if not wrong:
        return True, right + (_AT_SINGLE if any(tol == SINGLE for _, tol, _ in results) else "") + "."
    for key, sentence in sentences.items():
        if all(_matches(got, refs[key], tol) for got, tol, refs in results):
            return False, sentence
    got, refs = wrong[0]
    if got.shape != refs["right"].shape:
        return False, f"the answer has shape {tuple(got.shape)}; the right one has {tuple(refs['right'].shape)}."
    off = float((got - refs["right"]).norm())
    plain = {key: value for key, value in refs.items() if not isinstance(value, (torch.Tensor, tuple))}
    if got.numel() == 1:
        plain.update(got=float(got), expected=float(refs["right"]))
    return False, far.format(off=off, rel=off / float(refs["right"].norm()), **plain)


def _matches(got, ref, tol: float) -> bool:
    """Whether ``got`` is ``ref``, or one of them when ``ref`` is a tuple of variants of one mistake."""
    return any(_close(got, r, tol) for r in (ref if isinstance(ref, tuple) else (ref,)))


def _two_figures(x: float) -> float:
    """Half a unit in the second significant figure of ``x``: how far an answer rounded to 2 figures can be."""
    return 0.5 * 10.0 ** (math.floor(math.log10(abs(x))) - 1) + 1e-12


# ---------------------------------------------------------------- 01: the largest stable step
def _bowl_lam_max() -> float:
    from .surfaces import surface

    H = torch.func.hessian(surface("quadratic").loss)(torch.zeros(2, dtype=torch.float64))
    return float(torch.linalg.eigvalsh(H)[-1])


STABLE_STEP_STUB = 0.5  # what notebook 01 ships in my_answer


def _check_stable_step(answer) -> tuple[bool, str]:
    lam = _bowl_lam_max()
    right, h = 2.0 / lam, _number(answer)
    tol = _two_figures(right)
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
        if abs(h - value) <= _two_figures(value):
            return False, sentence
    if h > right and abs(2.0 / h - 0.5) < 0.05:
        return False, "that step is set by the smallest eigenvalue; the largest one (the stiff direction) limits it."
    if right - 2 * tol <= h < right:
        return False, f"close, but truncated: round 2/λmax to 2 significant figures (±{tol:.2g} is accepted)."
    verdict = "too large: gradient descent diverges there" if h > right else "stable but not the largest"
    return False, f"{h:.4g} is {verdict}; the bound comes from 1 − h·λmax staying above −1."


def _solution_stable_step():
    return 2.0 / _bowl_lam_max()


# ---------------------------------------------------------------- 02: one Euler step of the adjoint
_EULER = {  # what a typical wrong step returns is named by one of these
    "stub": (
        "that leaves a unchanged, which is what the notebook's stub returns: fill in one Euler step, moving a "
        "by h times its time derivative."
    ),
    "forward": (
        "a + h·H·a runs the adjoint forward in time; going back from t to t − h, "
        "a(t − h) ≈ a(t) − h·da/dt = a(t) − h·H·a(t)."
    ),
    "no h": "the step size h is missing: an Euler step moves by h times the derivative.",
    "no H": "the Hessian is missing: the adjoint's derivative is H·a, not a.",
    "negated": (
        "negated: your answer is the right one with the opposite sign; check the sign of a(t) in it "
        "(the step starts from +a(t))."
    ),
    "doubled": (
        "doubled: your answer is twice the right one; a(t) enters once, so look for a term counted twice "
        "or a stray factor 2."
    ),
}


def _check_adjoint_euler_step(step) -> tuple[bool, str]:
    gen = torch.Generator().manual_seed(2)
    results = []
    for h in (0.01, 0.1, 0.3):
        a, H = torch.randn(5, generator=gen, dtype=torch.float64), _random_spd(5, gen)
        right = a - h * H @ a
        refs = {
            "right": right,
            "h": h,
            "stub": a,
            "forward": a + h * H @ a,
            "no h": (a - H @ a, a + H @ a),
            "no H": (a - h * a, a + h * a),
            "negated": -right,
            "doubled": 2 * right,
        }
        results.append((*_answer(step(a.clone(), H.clone(), h)), refs))
    return _judge(
        results,
        _EULER,
        "a(t − h) = a(t) − h·H·a(t): the continuous adjoint's Euler step backward in time",
        "at h = {h} the answer is off by {off:.3g}: write the adjoint's time derivative at t, then step by h "
        "against the direction of time.",
    )


def _solution_adjoint_euler_step():
    def step(a, H, h):
        return a - h * H @ a

    return step


# ---------------------------------------------------------------- 03: where back-solving breaks
@functools.cache
def measured_breaking_point(tol: float = 1e-6, horizon: float = 2.0, steps: int = 200) -> float:
    """The smallest λmax·T on a grid where the state rebuilt backward misses θ by more than ``tol`` (relative).

    Measured once per process and arguments (cached): the sweep rebuilds 40 states and takes seconds.
    """
    from .backward import reconstruction_sweep

    lam_values = [2.0 * 1.1**i for i in range(40)]
    for row in reconstruction_sweep(lam_values, horizon=horizon, steps=steps):
        if not row["error"] <= tol:
            return row["lam_T"]
    return float("inf")


BREAKING_POINT_STUB = 10.0  # what notebook 03 ships in my_answer


def _check_breaking_point(answer) -> tuple[bool, str]:
    guess = _number(answer)
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


# ---------------------------------------------------------------- 04: iMAML's linear system by hand
_IMAML = {
    "stub": "v = g is what the notebook's stub returns: fill in the solve of (I + H/λ) v = g.",
    "λI + H": (
        "you solved (λI + H) v = g, whose v is the right one divided by λ: divide H by λ and keep I, (I + H/λ) v = g."
    ),
    "I + λH": "that solves (I + λH) v = g; the proximal weight divides the Hessian: (I + H/λ) v = g.",
    "product": "that multiplies g by (I + H/λ); iMAML needs its inverse applied to g (solve the system).",
    "no I": "the identity is missing: the implicit Jacobian of the proximal optimum is (I + H/λ)⁻¹.",
    "negated": (
        "negated: your v is the right one with the opposite sign; check the sign of g (the system's "
        "right-hand side is +g)."
    ),
    "doubled": "doubled: your v is twice the right one; look for a stray factor 2 in the system or in g.",
}


def _check_imaml_system(solve) -> tuple[bool, str]:
    gen = torch.Generator().manual_seed(4)
    results = []
    for lam in (0.5, 2.0, 20.0):
        H, g = _random_spd(6, gen), torch.randn(6, generator=gen, dtype=torch.float64)
        eye = torch.eye(6, dtype=torch.float64)
        right = torch.linalg.solve(eye + H / lam, g)
        refs = {
            "right": right,
            "lam": lam,
            "stub": g,
            "λI + H": torch.linalg.solve(lam * eye + H, g),
            "I + λH": torch.linalg.solve(eye + lam * H, g),
            "product": (eye + H / lam) @ g,
            "no I": (torch.linalg.solve(H / lam, g), torch.linalg.solve(H, g)),
            "negated": -right,
            "doubled": 2 * right,
        }
        results.append((*_answer(solve(H.clone(), g.clone(), lam), 1e-8), refs))
    return _judge(
        results,
        _IMAML,
        "v = (I + H/λ)⁻¹ g: what conjugate gradient approaches, one HVP a step, without forming H",
        "at λ = {lam} the answer is {rel:.2g} away (relative).",
    )


def _solution_imaml_system():
    def solve(H, g, lam):
        return torch.linalg.solve(torch.eye(len(g), dtype=g.dtype) + H / lam, g)

    return solve


# ---------------------------------------------------------------- 07: a confidence interval over episodes
_CI = {
    "stub": (
        "that is s, the standard deviation of one episode's accuracy, which is what the notebook's stub returns: "
        "fill in the half-width of the mean's 95% interval."
    ),
    "z = 2": "1.96, not 2, for a 95% interval: 2·s/√n is the rounded rule of thumb (a 95.4% interval).",
    "percent": (
        "give it as a fraction, not percent: the accuracies are fractions in [0, 1], so is the half-width "
        "(multiply by 100 only to print it)."
    ),
    "no √n": "that is the spread of one episode's accuracy; the mean's is √n times smaller: divide by √n.",
    "by n": "that divides by n; the mean's standard error is s/√n.",
    "n − 1": "almost: use the sample standard deviation (n − 1 in the denominator, torch's default).",
    "one se": "that is one standard error; a 95% interval is 1.96 of them.",
    "negated": "negated: a half-width is positive, yours is below zero; check the sign.",
    "doubled": "doubled: that is the interval's full width; the ± in the tables is half of it.",
}


def _check_confidence_interval(ci95) -> tuple[bool, str]:
    gen = torch.Generator().manual_seed(7)
    results = []
    for n in (20, 100, 600):
        acc = torch.rand(n, generator=gen, dtype=torch.float64)
        s, s0, root = float(acc.std()), float(acc.std(correction=0)), math.sqrt(n)
        right = 1.96 * s / root
        got, tol = _answer(ci95(acc.clone()), 1e-9)
        if got.numel() != 1:
            return False, f"return one number, the half-width, not {got.numel()} of them."
        refs = {
            "right": right,
            "episodes": n,
            "stub": s,
            "z = 2": 2 * s / root,
            "percent": 100 * right,
            "no √n": 1.96 * s,
            "by n": 1.96 * s / n,
            "n − 1": 1.96 * s0 / root,
            "one se": s / root,
            "negated": -right,
            "doubled": 2 * right,
        }
        refs = {key: torch.tensor(v, dtype=torch.float64) if isinstance(v, float) else v for key, v in refs.items()}
        results.append((got.reshape(()), tol, refs))
    return _judge(
        results,
        _CI,
        "1.96 × s/√n: with 600 test episodes an accuracy is known to about ±1.5 points at most",
        "over {episodes} episodes expected {expected:.4g}, got {got:.4g}.",
    )


def _solution_confidence_interval():
    def ci95(accuracies):
        return 1.96 * float(accuracies.std()) / math.sqrt(len(accuracies))

    return ci95


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
        got, tol = _answer(survivors(lam.clone(), h, n), 1e-9)
        if got.numel() != 1:
            return False, f"return one number, the count, not {got.numel()} of them."
        refs = {key: torch.tensor(v, dtype=torch.float64) if isinstance(v, float) else v for key, v in refs.items()}
        results.append((got.reshape(()), tol, refs))
    return _judge(
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


EXERCISES = {
    e.name: e
    for e in (
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
            "adjoint_euler_step",
            "02",
            "On a quadratic support loss the adjoint obeys da/dt = H·a, integrated backward from a(T) = ∇L_Q. "
            "Write step(a, H, h) returning a(t − h) after one Euler step from a(t).",
            _check_adjoint_euler_step,
            _solution_adjoint_euler_step,
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
            "imaml_system",
            "04",
            "iMAML's meta-gradient is v with (I + H/λ) v = g, g = ∇L_Q at the inner solution. Write "
            "solve(H, g, lam) returning v for a dense Hessian H.",
            _check_imaml_system,
            _solution_imaml_system,
        ),
        Exercise(
            "confidence_interval",
            "07",
            "A few-shot accuracy is the mean over test episodes. Write ci95(accuracies) returning the half-width "
            "of its 95% confidence interval (the ± in the tables).",
            _check_confidence_interval,
            _solution_confidence_interval,
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
}


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
    """Check ``answer``; print ✓ and why, ✗ and one sentence on what is off, or, for the notebook's untouched stub,
    a neutral "… not answered yet" (it is no mistake yet). Returns whether it is right.

    An answer that raises counts as wrong (its error is the sentence).
    """
    ex = _exercise(name)
    try:
        ok, sentence = ex.checker(answer)
    except NotImplementedError:
        ok, sentence = False, "the stub is untouched (it raises NotImplementedError): fill in your answer."
    except _NoAnswer:
        ok, sentence = False, "the answer is None: fill in the stub (a function needs a `return`)."
    except Exception as err:  # a learner's code may fail in any way: say so, do not stop the notebook
        ok, sentence = False, f"the answer raised {type(err).__name__}: {err}"
    if not quiet:
        unanswered = not ok and (STUB in sentence or sentence.startswith(("the stub", "the answer is None")))
        mark = "✓ " if ok else "… " if unanswered else "✗ "
        print(mark + f"{name}: " + (f"not answered yet ({sentence})" if unanswered else sentence))
    return ok


__all__ = ["EXERCISES", "check", "solution", "task", "measured_breaking_point"]
