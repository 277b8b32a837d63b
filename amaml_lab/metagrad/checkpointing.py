"""The forward states in reverse, holding at most a given number: binomial checkpointing (revolve's schedule).

:class:`Reverse` hands the states u_n, ..., u_0 of a problem's forward solve back in decreasing order, by the
fewest forward steps any schedule holding that many states can take (:func:`forward_steps`); the adjoint's
backward sweeps consume them.  ``tests/engine/test_checkpointing.py`` checks the closed form against an exhaustive
search over all schedules and the states against one forward solve.
"""

from __future__ import annotations

import math

from .core import Problem


def repetitions(length: int, slots: int) -> int:
    """How often the busiest step is advanced to give ``length`` states in reverse from ``slots`` stored ones.

    The smallest r with C(slots + r, slots) >= length (Griewank's binomial bound).
    """
    r = 0
    while math.comb(slots + r, slots) < length:
        r += 1
    return r


def forward_steps(length: int, slots: int) -> int:
    """The fewest forward steps that give ``length`` states in reverse holding ``slots`` stored states (the first
    among them) and one working state: r * length - C(slots + r, slots + 1), r = :func:`repetitions`."""
    if length <= 1:
        return 0
    r = repetitions(length, slots)
    return r * length - math.comb(slots + r, slots + 1)


def split_point(length: int, slots: int) -> int:
    """Where to store the next state (steps from the first) so that the schedule takes :func:`forward_steps`.

    The part to the right is reversed with one slot fewer, the part to the left with the same slots again; both
    at their fewest steps when the right part needs r repetitions or fewer and the left one r - 1 (with r
    :func:`repetitions`).  Of the optimal places, the farthest: the longest stretch kept by one forward solve.
    """
    r = repetitions(length, slots)
    return max(1, min(math.comb(slots + r - 1, slots), length - math.comb(slots + r - 2, slots - 1)))


class Reverse:
    """The forward states u_n, ..., u_0 in reverse, in blocks of consecutive states, holding at most ``budget``.

    Every state is produced once, in decreasing order, by the fewest forward steps any schedule holding
    ``budget`` states can take (binomial checkpointing: revolve's optimal schedule).  ``extra`` states are held by
    the consumer besides; they count towards ``budget``.  ``peak`` is the most states held at any time: this
    schedule's, plus the consumer's: the larger of ``extra`` and what it counts itself holding at that moment
    (``consumer_holds()``), so a consumer holding more than it declared shows in ``peak`` instead of hiding behind
    the plan.
    """

    def __init__(self, p: Problem, budget: int, extra: int = 0, consumer_holds=None):
        self.p, self.extra = p, extra
        self.consumer_holds = consumer_holds or (lambda: extra)
        self.forward = p.flow()
        self.slots = budget - 1 - extra  # stored states besides the one being advanced
        self.peak = 0

    def _note(self, held: int):
        self.peak = max(self.peak, held + max(self.extra, self.consumer_holds()))

    def blocks(self):
        """Yields ``(i, rows)``: the states i, i + 1, ... as the rows of a tensor, the blocks in decreasing order.

        A stack of pieces still to reverse, the latest first; each holds the stored state it starts from (so
        the states held are the stack's and the current piece's).  A piece whose states all fit is one forward
        solve; with one slot each state is advanced afresh from the first; otherwise it is split at
        :func:`split_point` and the right part, from the newly stored state, goes first.
        """
        solve, f = self.p.solve, self.forward
        stack = [(0, self.p.steps + 1, self.slots, self.p.theta)]
        while stack:
            i0, length, slots, u0 = stack.pop()
            if length <= slots + 1:  # all of them fit: one forward solve keeps every one
                rows = solve(f, u0, range(i0, i0 + length)) if length > 1 else u0[None]
                del u0
                self._note(len(stack) + length)
                yield i0, rows
                del rows
            elif slots == 1:  # nothing left to store: each state from the first, afresh
                for j in range(length - 1, 0, -1):
                    u = solve(f, u0, [i0, i0 + j])[-1:].clone()
                    self._note(len(stack) + 2)
                    yield i0 + j, u
                    del u
                yield i0, u0[None]
                del u0
            else:
                m = split_point(length, slots)
                stack.append((i0, m, slots, u0))
                stack.append((i0 + m, length - m, slots - 1, solve(f, u0, [i0, i0 + m])[-1].clone()))
                del u0
                self._note(len(stack))
