"""Every exercise with the package's solution (right) and with the wrong answers a learner is likely to give."""
import math

import pytest
import torch

from amaml_lab import exercises


def test_every_exercise_accepts_its_solution(capsys):
    for name in exercises.EXERCISES:
        assert exercises.check(name, exercises.solution(name)), name
        assert capsys.readouterr().out.startswith(f"✓ {name}:")


WRONG = {  # exercise -> (wrong answer, a phrase of the sentence that must say what is off)
    "stable_step": [(1 / 7.5, "1/λmax"), (4.0, "smallest eigenvalue"), (0.1, "stable but not the largest"),
                    (-2 / 7.5, "1 − h·λmax"), (4 / 7.5, "too large")],
    "adjoint_euler_step": [(lambda a, H, h: a + h * H @ a, "forward in time"),
                           (lambda a, H, h: a - H @ a, "step size h is missing"),
                           (lambda a, H, h: a - h * a, "Hessian is missing"),
                           (lambda a, H, h: a, "leaves a unchanged"),
                           (lambda a, H, h: a - 2 * h * H @ a, "against the direction of time"),
                           (lambda a, H, h: -(a - h * H @ a), "off by"),  # negated: as long, opposite
                           (lambda a, H, h: 2 * (a - h * H @ a), "off by")],
    "breaking_point": [(math.log(1e16), "order one"), (5.0, "measured"),
                       (-exercises.measured_breaking_point(), "you said -")],
    "imaml_system": [(lambda H, g, lam: torch.linalg.solve(torch.eye(len(g), dtype=g.dtype) + lam * H, g), "(I + λH)"),
                     (lambda H, g, lam: (torch.eye(len(g), dtype=g.dtype) + H / lam) @ g, "inverse"),
                     (lambda H, g, lam: torch.linalg.solve(H / lam, g), "identity is missing"),
                     (lambda H, g, lam: g, "away"),
                     (lambda H, g, lam: -exercises.solution("imaml_system")(H, g, lam), "away (relative)"),
                     (lambda H, g, lam: 2 * exercises.solution("imaml_system")(H, g, lam), "away (relative)")],
    "confidence_interval": [(lambda acc: -exercises.solution("confidence_interval")(acc), "got -"),
                            (lambda acc: 2 * exercises.solution("confidence_interval")(acc), "expected"),
                            (lambda acc: 1.96 * float(acc.std()), "divide by √n"),
                            (lambda acc: 1.96 * float(acc.std(correction=0)) / math.sqrt(len(acc)), "n − 1"),
                            (lambda acc: float(acc.std()) / math.sqrt(len(acc)), "1.96"),
                            (lambda acc: 1 / 0, "raised ZeroDivisionError")],
}


@pytest.mark.parametrize("name", list(WRONG))
def test_wrong_answers_are_told_what_is_off(name, capsys):
    for answer, phrase in WRONG[name]:
        assert not exercises.check(name, answer), (name, phrase)
        out = capsys.readouterr().out
        assert out.startswith(f"✗ {name}:") and phrase in out, out
        assert out.count("\n") == 1, "one sentence, one line"


def test_every_exercise_has_wrong_answers_tested_and_a_task():
    assert set(WRONG) == set(exercises.EXERCISES)
    assert {e.notebook for e in exercises.EXERCISES.values()} >= {"01", "02", "03", "04", "07"}
    for name in exercises.EXERCISES:
        assert len(exercises.task(name)) > 40


def test_the_breaking_point_is_measured_not_assumed():
    measured = exercises.measured_breaking_point()
    assert 18 < measured < 30  # e^(λT) × 1e-16 reaches 1e-6 near ln(1e10) ≈ 23
    assert exercises.measured_breaking_point(tol=1e-9) < measured < exercises.measured_breaking_point(tol=1e-3)


def test_unknown_exercise_is_named():
    with pytest.raises(ValueError, match="exercise 'nope' is not known"):
        exercises.check("nope", 1)
