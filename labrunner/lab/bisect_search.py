"""The search of a bisection, as pure arithmetic: which state to test next, and when to stop.

States 0..N are ordered (0: the good end, N: the bad end; commits, or a base plus the first patches of a
series). The culprit c is the first state with the bug: states s >= c have it, states s < c do not.
c = 0 means the good end has the bug too (a wrong premise, said as such).

A run of state s reports the bug (a "crash") with probability p when s has it, and with a small
epsilon when it does not: a stray report on a good state is then evidence, not a verdict. p is not
known: it is integrated out under a Beta(a, b) prior, so the runs at the bad end both confirm the bug
and teach how flaky it is. The posterior over c is exact (a sum over N + 1 hypotheses).

States that cannot be tested (they do not build, a patch does not apply) keep their share: culprits
between two testable states cannot be told apart, so the posterior is over those classes, and the
answer is a class, a range when it holds untestable states, as `git bisect skip` gives.

Next state: the testable state nearest the posterior median (Horstein's rule, as in probabilistic
bisection), fewer runs first on ties; the bad end first until it has shown the bug CONFIRM times.
"""

import dataclasses
import math
from typing import Dict, List, Optional, Sequence, Tuple


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


@dataclasses.dataclass
class Search:
    states: int  # N + 1
    testable: Sequence[bool]
    epsilon: float = 0.02
    prior: Tuple[float, float] = (1.0, 1.5)  # Beta prior of p: mean 0.4, races are more often flaky than not
    good_end_prior: float = 0.01  # prior mass of "the good end has the bug too"
    confirm: int = 3  # bug reports at the bad end before the search starts: they also teach p
    crashes: List[int] = dataclasses.field(default_factory=list)
    runs: List[int] = dataclasses.field(default_factory=list)

    def __post_init__(self):
        if self.states < 2:
            raise ValueError("a bisection needs a good and a bad end")
        self.crashes = self.crashes or [0] * self.states
        self.runs = self.runs or [0] * self.states

    def record(self, state: int, crashed: bool) -> None:
        self.runs[state] += 1
        self.crashes[state] += bool(crashed)

    def posterior(self) -> List[float]:
        """P(culprit = c | runs), c = 0..N."""
        n, a, b, eps = self.states, self.prior[0], self.prior[1], self.epsilon
        log_eps, log_not = math.log(eps), math.log1p(-eps)
        # Prefix sums: for culprit c, states < c are clean (epsilon), states >= c share one p.
        clean = [0.0] * (n + 1)
        for s in range(n):
            clean[s + 1] = clean[s] + self.crashes[s] * log_eps + (self.runs[s] - self.crashes[s]) * log_not
        k_tail, r_tail = [0] * (n + 1), [0] * (n + 1)
        for s in range(n - 1, -1, -1):
            k_tail[s], r_tail[s] = k_tail[s + 1] + self.crashes[s], r_tail[s + 1] + self.runs[s]
        uniform = (1 - self.good_end_prior) / (n - 1)
        logs = []
        for c in range(n):
            prior = self.good_end_prior if c == 0 else uniform
            bug = _log_beta(a + k_tail[c], b + r_tail[c] - k_tail[c]) - _log_beta(a, b)
            logs.append(math.log(prior) + clean[c] + bug)
        top = max(logs)
        weights = [math.exp(x - top) for x in logs]
        total = sum(weights)
        return [w / total for w in weights]

    def classes(self) -> List[Tuple[int, int]]:
        """Culprits that the testable states cannot tell apart, as (first, last) ranges: c = 0 alone,
        then each testable state t > 0 with the untestable states just before it."""
        out, start = [(0, 0)], 1
        for s in range(1, self.states):
            if self.testable[s]:
                out.append((start, s))
                start = s + 1
        if start < self.states:  # untestable states at the bad end itself: the bad end is tested anyway
            out[-1] = (out[-1][0], self.states - 1)
        return out

    def ranked(self) -> List[Dict[str, float]]:
        """Classes with their probability, most likely first."""
        post = self.posterior()
        rows = [{"first": lo, "last": hi, "p": sum(post[lo:hi + 1])} for lo, hi in self.classes()]
        return sorted(rows, key=lambda r: -r["p"])

    def p_estimate(self) -> float:
        """The posterior mean of p, given the most likely culprit."""
        c = max(range(self.states), key=self.posterior().__getitem__)
        k, r = sum(self.crashes[c:]), sum(self.runs[c:])
        return (self.prior[0] + k) / (self.prior[0] + self.prior[1] + r)

    def done(self, confidence: float) -> bool:
        return self.crashes[-1] >= self.confirm and self.ranked()[0]["p"] >= confidence

    def next_state(self) -> int:
        """The state to run next."""
        bad = self.states - 1
        if self.crashes[bad] < self.confirm:
            return bad
        post = self.posterior()
        cumulative, below = [], 0.0
        for p in post:  # P(culprit <= s) = P(state s has the bug)
            below += p
            cumulative.append(below)
        candidates = [s for s in range(self.states) if self.testable[s]]
        return min(candidates, key=lambda s: (abs(cumulative[s] - 0.5), self.runs[s], -s))

    def reproduced(self, max_runs: int) -> Optional[bool]:
        """At the bad end: True once confirmed, False when MAX_RUNS runs there never showed the bug."""
        bad = self.states - 1
        if self.crashes[bad] >= self.confirm:
            return True
        if self.runs[bad] >= max_runs and self.crashes[bad] == 0:
            return False
        return None
