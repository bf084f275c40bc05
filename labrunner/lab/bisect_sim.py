"""A simulated bisection oracle, and syzkaller pkg/bisect's published rules as a baseline: what the
search is measured against (tests and bench/bisection.py), with no kernel and no QEMU.

A trial: a linear history of STATES states, the culprit uniform over 1..N, a bug that reproduces with
probability P on states at or after it, stray crashes with probability STRAY on states before it, and
optionally one state (not an end) that cannot be built. With SLOTS guests at once, a trial goes in
rounds of SLOTS runs started together; the runs of a round still under way when the answer is reached
are stopped, and count as runs spent.
"""

import dataclasses
import random
from typing import Callable, Sequence

from .bisect_search import CONFIDENCE, Search


@dataclasses.dataclass(frozen=True)
class Outcome:
    runs: int
    correct: bool  # the culprit is in the answer, and the answer is a single state only when it can be
    answer: tuple  # (first, last)
    rounds: int = 0  # the wall time, in runs' lengths, with several slots


def _world(rng: random.Random, states: int, untestable: bool):
    culprit = rng.randrange(1, states)
    testable = [True] * states
    if untestable:
        testable[rng.randrange(1, states - 1)] = False
    return culprit, testable


def _correct(first: int, last: int, culprit: int, testable) -> bool:
    # A single state is right only when it is the culprit; a range must hold it and be needed: a range
    # that spans testable states only would be a vague answer.
    return first <= culprit <= last and (first == last or not all(testable[first:last]))


def trial(rng: random.Random, states: int, p: float, stray: float, untestable: bool = False,
          confidence: float = CONFIDENCE, max_runs: int = 1000, slots: int = 1,
          search_of: Callable[[int, Sequence[bool]], Search] = Search) -> Outcome:
    """One bisection by SEARCH_OF(states, testable), Search by default, against a simulated kernel."""
    culprit, testable = _world(rng, states, untestable)
    search = search_of(states, testable)
    runs = rounds = 0
    while runs < max_runs and not search.done(confidence):
        batch: list = []
        for _ in range(slots):
            batch.append(search.with_pending(batch).next_state())
        runs, rounds = runs + len(batch), rounds + 1
        for state in batch:
            search.record(state, rng.random() < (p if state >= culprit else stray))
            if search.done(confidence):
                break  # the rest of the round is stopped
    top = search.ranked()[0]
    return Outcome(runs, _correct(top["first"], top["last"], culprit, testable), (top["first"], top["last"]),
                   rounds)


def baseline(rng: random.Random, states: int, p: float, stray: float, untestable: bool = False) -> Outcome:
    """A binary search with pkg/bisect's per-commit rules: 10 runs a commit, 20 once the bug proved
    flaky (it both crashed and did not in one test); bad at 2 of 10 or 3 of 20 crashes, good below
    that. An untestable commit is skipped to a neighbour, as git bisect skip does."""
    culprit, testable = _world(rng, states, untestable)
    runs = [0]
    flaky = [False]

    def test(state: int) -> bool:
        n = 20 if flaky[0] else 10
        results = [rng.random() < (p if state >= culprit else stray) for _ in range(n)]
        runs[0] += n
        if any(results) and not all(results):
            flaky[0] = True
        return sum(results) >= (3 if n == 20 else 2)
    good, bad = 0, states - 1
    if not test(bad):
        return Outcome(runs[0], False, (bad, bad))
    while bad - good > 1:
        mid = (good + bad) // 2
        probe = next((s for s in range(mid, bad) if testable[s]), None) or \
            next((s for s in range(mid - 1, good, -1) if testable[s]), None)
        if probe is None:
            break  # only untestable states between: the answer is the range
        if test(probe):
            bad = probe
        else:
            good = probe
    first = good + 1
    return Outcome(runs[0], _correct(first, bad, culprit, testable), (first, bad))
