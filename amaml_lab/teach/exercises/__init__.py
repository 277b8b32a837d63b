"""Exercises for the notebooks: a learner writes a few lines, the package checks them and says what is off.

    from amaml_lab.teach import exercises
    print(exercises.task("adjoint_euler_step"))        # what to write
    exercises.check("adjoint_euler_step", my_step)     # True, or False with one sentence on what is off

Each exercise compares the answer with a reference computed in float64 (on random or fixed inputs for functions),
so an answer is checked, not matched to a string.  The exercises live by subject: :mod:`.steps` (the inner loop's
steps: 01, 03, 09), :mod:`.gradients` (meta-gradients and the inner problem: 00, 02, 04, 05) and
:mod:`.evaluation` (reading results: 06, 07, 08); the judging they share is private to this package.  The
solutions live here too (:func:`solution`); the notebooks hold only the learner's stub, and
``tests/teach/test_exercises.py`` runs every exercise with its solution and with typical wrong answers.
"""

from __future__ import annotations

from . import evaluation, gradients, steps
from ._judging import STUB, Exercise, NoAnswer
from .steps import measured_breaking_point

EXERCISES = {
    e.name: e for e in sorted(steps.EXERCISES + gradients.EXERCISES + evaluation.EXERCISES, key=lambda e: e.notebook)
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
    except NoAnswer:
        ok, sentence = False, "the answer is None: fill in the stub (a function needs a `return`)."
    except Exception as err:  # a learner's code may fail in any way: say so, do not stop the notebook
        ok, sentence = False, f"the answer raised {type(err).__name__}: {err}"
    if not quiet:
        unanswered = not ok and (STUB in sentence or sentence.startswith(("the stub", "the answer is None")))
        mark = "✓ " if ok else "… " if unanswered else "✗ "
        print(mark + f"{name}: " + (f"not answered yet ({sentence})" if unanswered else sentence))
    return ok


__all__ = ["EXERCISES", "check", "solution", "task", "measured_breaking_point"]
