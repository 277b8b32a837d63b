"""Exercises on reading results: when to stop fine-tuning (notebook 06), a confidence interval over episodes (07)
and a paired difference over the same tasks (08)."""

from __future__ import annotations

import math

import torch

from ._judging import Exercise, as_answer, judge, scalars

# ---------------------------------------------------------------- 06: when to stop fine-tuning
STOP_STUB = 100  # what notebook 06's stub returns: a placeholder, no curve's answer below
_STOP = {
    "stub": (
        "100 is the placeholder the notebook's stub returns: fill in the iteration at which to stop, read from the "
        "curves."
    ),
    "support": (
        "that is where the support error is lowest; the support error keeps falling (fine-tuning fits exactly those "
        "ratings), so it cannot tell overfitting: stop where the held-out error is lowest."
    ),
    "last": (
        "that is the last iteration: fine-tuning to the end keeps fitting the support ratings' noise after the "
        "held-out error has turned up; stop at its lowest point."
    ),
    "first": (
        "that is the first iteration, before any fine-tuning: the held-out error falls at first, so some "
        "fine-tuning helps; stop at its lowest point."
    ),
    "highest": "that is where the held-out error is highest; stop where it is lowest.",
    "index": "that is the held-out minimum's position in the list, not its iteration: return iterations[i].",
    "later tie": "on a tie, stop at the first of the equal minima: the later one costs iterations and gains nothing.",
}
STOP_CURVES = (  # (iterations, support error, held-out error): the answers of every mistake above differ
    (
        [0, 10, 20, 50, 100, 200, 500, 1000],
        [1.00, 0.80, 0.70, 0.55, 0.45, 0.35, 0.25, 0.20],
        [0.95, 0.88, 0.86, 0.87, 0.90, 0.92, 0.94, 0.96],
    ),
    (  # a tie at the lowest point, and Adam's support error ticking up at the end
        list(range(0, 301, 30)),
        [1.00, 0.90, 0.80, 0.70, 0.60, 0.50, 0.45, 0.40, 0.36, 0.33, 0.34],
        [1.00, 0.90, 0.85, 0.80, 0.82, 0.81, 0.80, 0.83, 0.90, 0.95, 0.93],
    ),
    (  # a noisy held-out curve, highest in the middle
        [0, 1, 2, 5, 10, 20, 50, 100, 200],
        [1.00, 0.95, 0.90, 0.80, 0.70, 0.60, 0.50, 0.40, 0.30],
        [0.90, 0.89, 0.93, 0.88, 0.85, 0.86, 0.95, 0.92, 0.91],
    ),
)


def _check_stop_fine_tuning(stop_at) -> tuple[bool, str]:
    results = []
    for iterations, support, heldout in STOP_CURVES:
        s, h = (torch.tensor(v, dtype=torch.float64) for v in (support, heldout))
        best = int(h.argmin())  # the first of equal minima
        refs = {
            "right": iterations[best],
            "lowest": float(h[best]),
            "stub": STOP_STUB,
            "support": iterations[int(s.argmin())],
            "last": iterations[-1],
            "first": iterations[0],
            "highest": iterations[int(h.argmax())],
            "index": best,
            "later tie": iterations[max(i for i, v in enumerate(heldout) if v == heldout[best])],
        }
        got, tol = as_answer(stop_at(list(iterations), s.clone(), h.clone()))
        if got.numel() != 1:
            return False, f"return one number, the iteration, not {got.numel()} of them."
        results.append((got.reshape(()), tol, scalars(refs, plain=("lowest",))))
    return judge(
        results,
        _STOP,
        "the iteration of the lowest held-out error: past it, fine-tuning fits the support ratings' noise (the "
        "support error still falls, the held-out error rises)",
        "expected iteration {expected:.0f}, where the held-out error is lowest ({lowest:.3g}), got {got:.4g}.",
    )


def _solution_stop_fine_tuning():
    def stop_at(iterations, support_error, heldout_error):
        return iterations[int(heldout_error.argmin())]

    return stop_at


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
        got, tol = as_answer(ci95(acc.clone()), 1e-9)
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
        refs = scalars(refs, plain=("episodes",))
        results.append((got.reshape(()), tol, refs))
    return judge(
        results,
        _CI,
        "1.96 × s/√n: with 600 test episodes an accuracy is known to about ±1.5 points at most",
        "over {episodes} episodes expected {expected:.4g}, got {got:.4g}.",
    )


def _solution_confidence_interval():
    def ci95(accuracies):
        return 1.96 * float(accuracies.std()) / math.sqrt(len(accuracies))

    return ci95


# ---------------------------------------------------------------- 08: a paired difference over the same tasks
_PAIRED = {
    "stub": (
        "that is (0, 0), which is what the notebook's stub returns: fill in the mean of b − a and the half-width of "
        "its 95% interval."
    ),
    "unpaired": (
        "that half-width, 1.96·√(s_a²/n + s_b²/n), ignores that the tasks are the same: pairing removes what the "
        "tasks share (each one's difficulty), so take the standard deviation of the differences b − a."
    ),
    "reversed": (
        "a − b: the difference is b − a, the N = 300 error minus the N = 10 one (negative where the long loop "
        "does better)."
    ),
    "one se": "that half-width is one standard error of the mean difference; a 95% interval is 1.96 of them.",
    "no √n": "that half-width is the spread of one task's difference; the mean's is √n times smaller: divide by √n.",
    "by n": "almost: use the sample standard deviation of b − a (n − 1 in the denominator, torch's default).",
    "doubled": "doubled: that half-width is the interval's full width; the ± in the tables is half of it.",
}


def _check_paired_difference(paired) -> tuple[bool, str]:
    gen = torch.Generator().manual_seed(8)
    results = []
    for n in (10, 40, 100):
        difficulty = torch.exp(0.5 * torch.randn(n, generator=gen, dtype=torch.float64))  # what the tasks share
        a = difficulty + 0.05 * torch.randn(n, generator=gen, dtype=torch.float64)
        b = 0.9 * difficulty + 0.05 * torch.randn(n, generator=gen, dtype=torch.float64)
        d, root = b - a, math.sqrt(n)
        mean, s, s0 = float(d.mean()), float(d.std()), float(d.std(correction=0))
        spread = [math.sqrt((float(a.var(correction=k)) + float(b.var(correction=k))) / n) for k in (1, 0)]

        def pair(difference, half_width):
            return torch.tensor([difference, half_width], dtype=torch.float64)

        refs = {
            "right": pair(mean, 1.96 * s / root),
            "tasks": n,
            "stub": pair(0.0, 0.0),
            "unpaired": tuple(pair(mean, 1.96 * v) for v in spread),
            "reversed": pair(-mean, 1.96 * s / root),
            "one se": pair(mean, s / root),
            "no √n": pair(mean, 1.96 * s),
            "by n": pair(mean, 1.96 * s0 / root),
            "doubled": pair(mean, 2 * 1.96 * s / root),
        }
        out = paired(a.clone(), b.clone())
        if isinstance(out, dict):
            return False, "return the pair (mean difference, half-width) as a tuple, not a dict."
        got, tol = as_answer(out, 1e-9)
        if got.numel() != 2:
            return False, (
                "return a pair, (the mean of b − a, the half-width of its 95% interval), not "
                + ("a single number." if got.numel() == 1 else f"{got.numel()} numbers.")
            )
        results.append((got.reshape(2), tol, refs))
    return judge(
        results,
        _PAIRED,
        "the mean of b − a ± 1.96·s/√n, s the standard deviation of the differences: each task's difficulty "
        "cancels in its difference, so the interval is far narrower than the two means' side by side",
        "over {tasks} tasks expected {expected}, got {got}.",
    )


def _solution_paired_difference():
    def paired(a, b):
        d = b - a
        return float(d.mean()), 1.96 * float(d.std()) / math.sqrt(len(d))

    return paired


EXERCISES = (
    Exercise(
        "stop_fine_tuning",
        "06",
        "Fine-tuning θ on a new user's few ratings is logged at `iterations` (increasing ints): support_error on "
        "those ratings and heldout_error on ratings it never sees (tensors, one entry per logged iteration). "
        "Write stop_at(iterations, support_error, heldout_error) returning the iteration at which to stop "
        "fine-tuning, before it overfits (the first one on ties).",
        _check_stop_fine_tuning,
        _solution_stop_fine_tuning,
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
        "paired_difference",
        "08",
        "θ trained through N = 10 and θ trained through N = 300 are tested on the same n meta-test tasks under the "
        "same test loop: a[i] and b[i] are their errors on task i (tensors). Write paired(a, b) returning the pair "
        "(the mean of b − a, the half-width of its 95% interval): the tables' paired columns.",
        _check_paired_difference,
        _solution_paired_difference,
    ),
)
