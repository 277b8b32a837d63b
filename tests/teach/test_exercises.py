"""Every exercise with the package's solution (right) and with the wrong answers a learner is likely to give."""

import math

import numpy as np
import pytest
import torch

from amaml_lab.studies import stats
from amaml_lab.teach import exercises


def test_every_exercise_accepts_its_solution(capsys):
    for name in exercises.EXERCISES:
        assert exercises.check(name, exercises.solution(name)), name
        out = capsys.readouterr().out
        assert out.startswith(f"✓ {name}:") and "float32" not in out, out


def _eye(g):
    return torch.eye(len(g), dtype=g.dtype)


def _stub_not_written(*args):
    raise NotImplementedError


def _euler(a, H, h):
    return exercises.solution("adjoint_euler_step")(a, H, h)


def _imaml(H, g, lam):
    return exercises.solution("imaml_system")(H, g, lam)


def _ci(acc):
    return exercises.solution("confidence_interval")(acc)


def _loop_end(theta, A, b, h, n):
    u = theta
    for _ in range(n):
        u = u - h * (A @ u - b)
    return u


def _step_power(A, h, n, sign=-1):
    return torch.linalg.matrix_power(_eye(A) + sign * h * A, n)


def _meta(theta, A, b, c, h, n):
    return exercises.solution("loop_metagradient")(theta, A, b, c, h, n)


def _limit(theta, A, b, reg):
    return exercises.solution("proximal_limit")(theta, A, b, reg)


def _paired(a, b):
    return exercises.solution("paired_difference")(a, b)


def _half_width(d, correction=1):
    return 1.96 * float(d.std(correction=correction)) / math.sqrt(len(d))


WRONG = {  # exercise -> (wrong answer, a phrase of the sentence that must name what is off)
    "loop_metagradient": [
        (lambda theta, A, b, c, h, n: theta - c, "what the notebook's stub returns"),
        (lambda theta, A, b, c, h, n: None, "is None"),
        (lambda theta, A, b, c, h, n: _loop_end(theta, A, b, h, n) - c, "drops the loop's Jacobian"),
        (lambda theta, A, b, c, h, n: (_eye(A) - h * A) @ (_loop_end(theta, A, b, h, n) - c), "one step only"),
        (lambda theta, A, b, c, h, n: _step_power(A, h, n - 1) @ (_loop_end(theta, A, b, h, n) - c), "one step short"),
        (
            lambda theta, A, b, c, h, n: torch.linalg.matrix_exp(-A * h * n) @ (_loop_end(theta, A, b, h, n) - c),
            "the gradient flow's Jacobian",
        ),
        (lambda theta, A, b, c, h, n: _step_power(A, h, n, +1) @ (_loop_end(theta, A, b, h, n) - c), "not I + hA"),
        (lambda theta, A, b, c, h, n: _step_power(A, h, n) @ (theta - c), "taken at θ"),
        (lambda theta, A, b, c, h, n: -_meta(theta, A, b, c, h, n), "negated: "),
        (lambda theta, A, b, c, h, n: 2 * _meta(theta, A, b, c, h, n), "doubled: "),
        (lambda theta, A, b, c, h, n: (_loop_end(theta, A, b, h, n) - c).float(), "drops the loop's Jacobian"),
        (lambda theta, A, b, c, h, n: _meta(theta, A, b, c, h, n)[:3], "has shape (3,)"),
        (lambda theta, A, b, c, h, n: 1.5 * _meta(theta, A, b, c, h, n), "at h = 0.1, N = 5 expected ("),  # last resort
    ],
    "proximal_limit": [
        (lambda theta, A, b, reg: torch.zeros_like(theta), "what the notebook's stub returns"),
        (lambda theta, A, b, reg: None, "is None"),
        (lambda theta, A, b, reg: torch.linalg.solve(A, b), "reg pulls u back toward θ"),
        (lambda theta, A, b, reg: theta, "θ itself"),
        (lambda theta, A, b, reg: theta.numpy().astype("float32"), "θ itself"),
        (lambda theta, A, b, reg: torch.linalg.solve(A + reg * _eye(A), b), "θ is missing"),
        (lambda theta, A, b, reg: torch.linalg.solve(A, b + reg * theta), "misses reg·I"),
        (lambda theta, A, b, reg: torch.linalg.solve(A - reg * _eye(A), b - reg * theta), "sign error"),
        (lambda theta, A, b, reg: torch.linalg.solve(A - reg * _eye(A), b + reg * theta), "sign error"),
        (lambda theta, A, b, reg: -_limit(theta, A, b, reg), "negated: "),
        (lambda theta, A, b, reg: 1.01 * _limit(theta, A, b, reg), "at reg = 1 expected ("),  # last resort
    ],
    "stop_fine_tuning": [
        (lambda its, support, heldout: 100, "placeholder the notebook's stub"),
        (lambda its, support, heldout: None, "is None"),
        (lambda its, support, heldout: its[int(support.argmin())], "cannot tell overfitting"),
        (lambda its, support, heldout: its[-1], "the last iteration"),
        (lambda its, support, heldout: its[0], "before any fine-tuning"),
        (lambda its, support, heldout: its[int(heldout.argmax())], "highest"),
        (lambda its, support, heldout: heldout.argmin(), "not its iteration"),
        (
            lambda its, support, heldout: max(i for i, e in zip(its, heldout) if e == heldout.min()),
            "first of the equal",
        ),
        (lambda its, support, heldout: torch.tensor(its), "one number"),
        (lambda its, support, heldout: 7, "expected iteration 20, where the held-out error is lowest (0.86)"),
    ],
    "paired_difference": [
        (lambda a, b: (0.0, 0.0), "what the notebook's stub returns"),
        (lambda a, b: None, "is None"),
        (
            lambda a, b: (float((b - a).mean()), 1.96 * math.sqrt((float(a.var()) + float(b.var())) / len(a))),
            "ignores that the tasks are the same",
        ),
        (
            lambda a, b: ((b.mean() - a.mean()), 1.96 * ((a.var(correction=0) + b.var(correction=0)) / len(a)).sqrt()),
            "pairing removes what the tasks share",
        ),
        (lambda a, b: (float((a - b).mean()), _half_width(b - a)), "the difference is b − a"),
        (lambda a, b: (float((b - a).mean()), float((b - a).std()) / math.sqrt(len(a))), "1.96 of them"),
        (lambda a, b: (float((b - a).mean()), 1.96 * float((b - a).std())), "divide by √n"),
        (lambda a, b: (float((b - a).mean()), _half_width(b - a, correction=0)), "sample standard deviation"),
        (lambda a, b: (float((b - a).mean()), 2 * _half_width(b - a)), "full width"),
        (lambda a, b: float((b - a).mean()), "not a single number"),
        (lambda a, b: stats.paired(a.tolist(), b.tolist()), "not a dict"),
        (lambda a, b: (float((b - a).mean()), 3 * _half_width(b - a)), "over 10 tasks expected ("),  # last resort
        (lambda a, b: _paired(a.float(), b.float()), "keep the inputs' float64 precision"),  # float32 as Python floats
    ],
    "stable_step": [
        (0.5, "placeholder the notebook's stub"),
        (None, "is None"),
        (1 / 7.5, "1/λmax"),
        (0.13, "1/λmax"),
        (7.5, "λmax itself"),
        (4.0, "smallest eigenvalue"),
        (0.1, "stable but not the largest"),
        (-2 / 7.5, "negated"),
        (4 / 7.5, "doubled"),
        (0.26, "truncated"),
        (0.3, "too large"),
    ],
    "adjoint_euler_step": [
        (lambda a, H, h: a, "what the notebook's stub returns"),
        (_stub_not_written, "raises NotImplementedError"),
        (lambda a, H, h: None, "is None"),
        (lambda a, H, h: a + h * H @ a, "forward in time"),
        (lambda a, H, h: a - H @ a, "step size h is missing"),
        (lambda a, H, h: a - h * a, "Hessian is missing"),
        (lambda a, H, h: -_euler(a, H, h), "negated: "),
        (lambda a, H, h: 2 * _euler(a, H, h), "doubled: "),
        (lambda a, H, h: a[:3], "has shape (3,)"),
        (lambda a, H, h: a - 2 * h * H @ a, "against the direction of time"),  # last resort
        # float32 is judged at float32 precision, which still tells mistakes apart ...
        (lambda a, H, h: (a + h * H @ a).float(), "forward in time"),
        (lambda a, H, h: _euler(a, H, h).float() * (1 + 1e-3), "off by"),
        # ... and float64 keeps its own precision
        (lambda a, H, h: _euler(a, H, h) * (1 + 1e-6), "off by"),
    ],
    "breaking_point": [
        (10.0, "placeholder the notebook's stub"),
        (None, "is None"),
        (math.log(1e16), "order one"),
        (5.0, "measured"),
        (-exercises.measured_breaking_point(), "negated: you said -"),
    ],
    "imaml_system": [
        (lambda H, g, lam: g, "what the notebook's stub returns"),
        (lambda H, g, lam: torch.linalg.solve(lam * _eye(g) + H, g), "you solved (λI + H) v = g"),
        (lambda H, g, lam: torch.linalg.solve(H + lam * _eye(g), g), "divide H by λ and keep I"),
        (lambda H, g, lam: torch.linalg.solve(_eye(g) + lam * H, g), "(I + λH)"),
        (lambda H, g, lam: (_eye(g) + H / lam) @ g, "inverse"),
        (lambda H, g, lam: torch.linalg.solve(H / lam, g), "identity is missing"),
        (lambda H, g, lam: -_imaml(H, g, lam), "negated: "),
        (lambda H, g, lam: 2 * _imaml(H, g, lam), "doubled: "),  # at λ = 0.5 it is also (λI + H)'s
        (lambda H, g, lam: 0.5 * _imaml(H, g, lam), "away (relative)"),
    ],  # last resort
    "survivors": [
        (lambda lam, h, n: len(lam), "what the notebook's stub returns"),
        (lambda lam, h, n: int((torch.exp(-lam * h * n) > 1e-3).sum()), "the flow's e^(−λT)"),
        (lambda lam, h, n: int(((1 - h * lam) ** n > 1e-3).sum()), "flips the sign"),
        (lambda lam, h, n: int(((1 - h * lam).abs() ** n > 1).sum()), "the loop stretches"),
        (lambda lam, h, n: int(((1 + h * lam).abs() ** n > 1e-3).sum()), "not 1 + hλ"),
        (lambda lam, h, n: int(((1 - h * lam).abs() ** n <= 1e-3).sum()), "the others survive"),
        (lambda lam, h, n: int(((1 - h * lam).abs() > 1e-3).sum()), "applies it N times"),
        (lambda lam, h, n: (1 - h * lam).abs() ** n, "one number"),
        (lambda lam, h, n: None, "is None"),
        (lambda lam, h, n: 3, "expected 7 to survive, got 3"),  # last resort
    ],
    "confidence_interval": [
        (lambda acc: float(acc.std()), "what the notebook's stub returns"),
        (lambda acc: 2 * float(acc.std()) / math.sqrt(len(acc)), "1.96, not 2"),
        (lambda acc: 100 * _ci(acc), "fraction, not percent"),
        (lambda acc: -_ci(acc), "negated: "),
        (lambda acc: 2 * _ci(acc), "full width"),
        (lambda acc: 1.96 * float(acc.std()), "divide by √n"),
        (lambda acc: 1.96 * float(acc.std()) / len(acc), "divides by n"),
        (lambda acc: 1.96 * float(acc.std(correction=0)) / math.sqrt(len(acc)), "n − 1"),
        (lambda acc: float(acc.std()) / math.sqrt(len(acc)), "1.96 of them"),
        (lambda acc: acc, "one number"),
        (lambda acc: 3 * _ci(acc), "expected"),  # last resort
        (lambda acc: 1 / 0, "raised ZeroDivisionError"),
    ],
}


@pytest.mark.parametrize("name", list(WRONG))
def test_wrong_answers_are_told_what_is_off(name, capsys):
    for answer, phrase in WRONG[name]:
        assert not exercises.check(name, answer), (name, phrase)
        out = capsys.readouterr().out
        unanswered = any(m in out for m in ("the notebook's stub", "the stub is untouched", "the answer is None"))
        assert out.startswith(f"… {name}: not answered yet (" if unanswered else f"✗ {name}:") and phrase in out, out
        assert out.count("\n") == 1, "one sentence, one line"


def test_every_exercise_has_wrong_answers_tested_and_a_task():
    assert set(WRONG) == set(exercises.EXERCISES)
    assert {e.notebook for e in exercises.EXERCISES.values()} >= {f"{i:02d}" for i in range(10)}  # every notebook
    for name in exercises.EXERCISES:
        assert len(exercises.task(name)) > 40


@pytest.mark.integration  # starts other processes
def test_the_breaking_point_is_measured_not_assumed():
    measured = exercises.measured_breaking_point()
    assert 18 < measured < 30  # e^(λT) × 1e-16 reaches 1e-6 near ln(1e10) ≈ 23
    assert exercises.measured_breaking_point(tol=1e-9) < measured < exercises.measured_breaking_point(tol=1e-3)


def test_unknown_exercise_is_named():
    with pytest.raises(ValueError, match="exercise 'nope' is not known"):
        exercises.check("nope", 1)


ACCEPTED = {  # right answers that are not the package's solution -> a phrase of the sentence that says why
    "stable_step": [(0.27, "2 significant figures"), (0.267, "2 significant figures")],  # notebook 01 rounds to 0.27
    "adjoint_euler_step": [
        (lambda a, H, h: _euler(a, H, h).float(), "judged at float32 precision"),
        (lambda a, H, h: a.float() - h * H.float() @ a.float(), "judged at float32 precision"),
        (lambda a, H, h: _euler(a, H, h).numpy().astype("float32"), "judged at float32 precision"),
    ],
    "imaml_system": [(lambda H, g, lam: _imaml(H.float(), g.float(), lam), "judged at float32 precision")],
    "confidence_interval": [
        (lambda acc: 1.96 * acc.float().std() / math.sqrt(len(acc)), "judged at float32 precision")
    ],
    "loop_metagradient": [  # back-propagation through the steps (what maml does), in float64, float32 or numpy
        (lambda theta, A, b, c, h, n: _by_autograd(theta, A, b, c, h, n), "what back-propagation (maml)"),
        (lambda theta, A, b, c, h, n: _by_autograd(theta.float(), A.float(), b.float(), c.float(), h, n), "float32"),
        (lambda theta, A, b, c, h, n: _meta(theta, A, b, c, h, n).numpy(), "the chain rule through every step"),
    ],
    "proximal_limit": [  # solved in numpy, or the flow's own Euler steps run until they settle
        (lambda theta, A, b, reg: np.linalg.solve(A.numpy() + reg * np.eye(len(b)), (b + reg * theta).numpy()), "λmin"),
        (lambda theta, A, b, reg: _limit(theta.float(), A.float(), b.float(), reg), "judged at float32 precision"),
        (lambda theta, A, b, reg: _settled(theta, A, b, reg), "between the support loss's minimum and θ"),
    ],
    "stop_fine_tuning": [  # numpy, a tensor, or plain Python (each the first of equal minima)
        (lambda its, support, heldout: its[int(np.argmin(heldout.numpy()))], "lowest held-out error"),
        (lambda its, support, heldout: torch.tensor(its)[heldout.argmin()], "lowest held-out error"),
        (lambda its, support, heldout: min(zip(heldout.tolist(), its))[1], "lowest held-out error"),
    ],
    "paired_difference": [  # the kit's own paired statistics, a tensor pair, float32
        (lambda a, b: (lambda p: (p["difference"], p["ci95"]))(stats.paired(a.tolist(), b.tolist())), "cancels"),
        (lambda a, b: torch.stack([(b - a).mean(), 1.96 * (b - a).std() / math.sqrt(len(a))]), "cancels"),
        (lambda a, b: ((b - a).float().mean(), 1.96 * (b - a).float().std() / math.sqrt(len(a))), "float32"),
    ],
    "survivors": [  # a tensor count, or the factor's size taken through its logarithm
        (lambda lam, h, n: ((1 - h * lam).abs() ** n > 1e-3).sum(), "flat directions"),
        (lambda lam, h, n: int((n * torch.log((1 - h * lam).abs()) > math.log(1e-3)).sum()), "flat directions"),
    ],
}


def _by_autograd(theta, A, b, c, h, n):
    """The meta-gradient as maml computes it: back-propagation through the N steps."""
    theta = theta.clone().requires_grad_(True)
    u = _loop_end(theta, A, b, h, n)
    (grad,) = torch.autograd.grad(0.5 * ((u - c) ** 2).sum(), theta)
    return grad


def _settled(theta, A, b, reg, h=0.05, steps=3000):
    """The proximal flow's Euler steps from θ, run until they settle (h·(λ + reg) < 1 for every λ checked)."""
    u = theta
    for _ in range(steps):
        u = u - h * (A @ u - b + reg * (u - theta))
    return u


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_right_answers_in_other_forms_are_accepted(name, capsys):
    for answer, phrase in ACCEPTED[name]:
        assert exercises.check(name, answer), capsys.readouterr().out
        out = capsys.readouterr().out
        assert out.startswith(f"✓ {name}:") and phrase in out, out


def _notebook_stub(name):
    """The learner's answer exactly as the notebook ships it: its exercise cell, run without printing or checking."""
    import json
    import pathlib
    import re

    notebook = next(pathlib.Path(__file__).parents[2].glob(f"notebooks/{exercises.EXERCISES[name].notebook}_*.ipynb"))
    for cell in json.loads(notebook.read_text())["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and f'exercises.check("{name}", exercises.solution' in source:
            assert source.rstrip().endswith(";"), f"{notebook.name}: end the check with ';' (no bare False shown)"
            answer = re.search(r"if SOLVE else (\w+)\)", source).group(1)
            namespace = {}
            lines = [line for line in source.splitlines() if not line.startswith(("print(", "exercises."))]
            exec("\n".join(lines), namespace)  # noqa: S102 - the notebook's own cell, to get its stub exactly
            return namespace[answer]
    raise AssertionError(f"no exercise cell for {name} in {notebook}")


@pytest.mark.parametrize("name", list(WRONG))
def test_the_notebooks_untouched_stub_is_named_as_such(name, capsys):
    """The stub as shipped is no mistake yet: a neutral "not answered yet", never a ✗ (which reads as a failure),
    and the notebook's cell shows no bare False after it (the call ends with ';')."""
    assert not exercises.check(name, _notebook_stub(name))
    out = capsys.readouterr().out
    assert "the notebook's stub" in out, out
    assert out.startswith(f"… {name}: not answered yet (") and "✗" not in out, out


def test_a_wrong_answer_is_still_marked_wrong(capsys):
    assert not exercises.check("imaml_system", lambda H, g, lam: -g)
    assert capsys.readouterr().out.startswith("✗ imaml_system:")
    assert not exercises.check("stable_step", None)
    assert capsys.readouterr().out.startswith("… stable_step: not answered yet (the answer is None")


@pytest.fixture
def fresh_measurement():
    exercises.measured_breaking_point.cache_clear()
    yield
    exercises.measured_breaking_point.cache_clear()  # forget what the counting sweep below measured


def test_the_breaking_point_is_measured_once_per_process(monkeypatch, fresh_measurement):
    from amaml_lab.teach import backward as explore_backward

    calls = []

    def sweep(lam_values, **kwargs):  # stands in for the 40 reconstructions: cheap, and counted
        calls.append(kwargs)
        return [{"lam_T": 4.0, "error": 1e-12}, {"lam_T": 23.0, "error": 1e-5}]

    monkeypatch.setattr(explore_backward, "reconstruction_sweep", sweep)
    verdicts = [exercises.check("breaking_point", answer, quiet=True) for answer in (23.0, 10.0, 5.0, 23.0)]
    assert verdicts == [True, False, False, True]
    assert len(calls) == 1, "every check re-measured the breaking point"


def test_the_loop_check_tells_every_mistake_apart_on_every_input():
    """On each of the check's inputs, every named mistake is far from the right answer (not only on one of them),
    and the package's closed form is back-propagation through the steps."""
    for case in range(len(exercises.gradients.LOOP_CASES)):
        p = exercises.gradients.loop_problem(case)
        theta, A, b, c, h, n = p.values()
        right = _by_autograd(theta, A, b, c, h, n)
        assert torch.allclose(_meta(theta, A, b, c, h, n), right, rtol=1e-12, atol=0)
        for answer, phrase in WRONG["loop_metagradient"][2:10]:
            wrong = torch.as_tensor(answer(theta, A, b, c, h, n), dtype=torch.float64)
            assert float((wrong - right).norm()) > 1e-3 * float(right.norm()), (case, phrase)


def test_every_mistake_of_a_scalar_check_gives_its_own_answer():
    """The fine-tuning curves part every named mistake from the right iteration and from each other."""
    answers = {}
    for answer, phrase in WRONG["stop_fine_tuning"][2:8] + [(exercises.solution("stop_fine_tuning"), "right")]:
        answers[phrase] = tuple(
            float(answer(its, torch.tensor(s), torch.tensor(h))) for its, s, h in exercises.evaluation.STOP_CURVES
        )
    assert len(set(answers.values())) == len(answers), answers
    assert all(exercises.evaluation.STOP_STUB not in v for v in answers.values()), answers


def test_the_paired_solution_is_the_kits_own_paired_statistics():
    gen = torch.Generator().manual_seed(0)
    difficulty = torch.rand(50, generator=gen, dtype=torch.float64)
    a, b = difficulty + 0.1 * torch.rand(50, generator=gen), difficulty + 0.1 * torch.rand(50, generator=gen)
    mine, kit = _paired(a, b), stats.paired(a.tolist(), b.tolist())
    assert mine == pytest.approx((kit["difference"], kit["ci95"]), rel=1e-12)
    unpaired = 1.96 * math.sqrt((float(a.var()) + float(b.var())) / 50)
    assert kit["ci95"] < unpaired / 2, "pairing removes the tasks' shared difficulty"
