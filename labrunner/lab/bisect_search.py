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

Next state: the testable state whose run leaves the least expected entropy of the posterior over c
(one step ahead, with each hypothesis' own predictive chance of a crash), fewer runs first on ties; the
bad end first until it has shown the bug CONFIRM times. Where a run is a fair coin this is the posterior
median (probabilistic bisection); for a flaky bug a clean run says little, so it probes nearer the bad
end than the median, where a crash is likelier.
"""

import dataclasses
import math
from typing import Dict, List, Optional, Sequence, Tuple

# The stopping confidence by default. For one flaky bug the posterior is a little overconfident (the
# search stops when the evidence happens to look strong): at 0.95, every prior of p tried named bugs
# that show in 30% of runs right in under 95% of simulated bisections at one stray rate or another;
# this prior at 0.965 in as few as 94.8%, at 0.97 in 95.8-97.1% (bench/bisection.py, README).
CONFIDENCE = 0.97


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _xlogx(x: float) -> float:
    return x * math.log(x) if x > 0 else 0.0


@dataclasses.dataclass
class Search:
    states: int  # N + 1
    testable: Sequence[bool]
    epsilon: float = 0.02
    # Beta prior of p: U-shaped (bugs mostly either always show or are rare races), mean 0.4; chosen on
    # bench/bisection.py with CONFIDENCE, as the README says.
    prior: Tuple[float, float] = (0.6, 0.9)
    good_end_prior: float = 0.01  # prior mass of "the good end has the bug too"
    confirm: int = 1  # bug reports at the bad end before the search starts
    crashes: List[int] = dataclasses.field(default_factory=list)
    runs: List[int] = dataclasses.field(default_factory=list)
    _memo: Optional[Tuple[tuple, List[float]]] = dataclasses.field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.states < 2:
            raise ValueError("a bisection needs a good and a bad end")
        self.crashes = self.crashes or [0] * self.states
        self.runs = self.runs or [0] * self.states

    def record(self, state: int, crashed: bool) -> None:
        self.runs[state] += 1
        self.crashes[state] += bool(crashed)

    def _tails(self) -> Tuple[List[int], List[int]]:
        """Crashes and runs of the states s..N, for each s (and 0 past the bad end)."""
        k_tail, r_tail = [0] * (self.states + 1), [0] * (self.states + 1)
        for s in range(self.states - 1, -1, -1):
            k_tail[s], r_tail[s] = k_tail[s + 1] + self.crashes[s], r_tail[s + 1] + self.runs[s]
        return k_tail, r_tail

    def posterior(self) -> List[float]:
        """P(culprit = c | runs), c = 0..N."""
        # done() and next_state() both want it after each run, on the same evidence
        key = (tuple(self.runs), tuple(self.crashes), self.prior, self.epsilon, self.good_end_prior)
        if self._memo is None or self._memo[0] != key:
            self._memo = (key, self._posterior())
        return list(self._memo[1])

    def _posterior(self) -> List[float]:
        n, a, b, eps = self.states, self.prior[0], self.prior[1], self.epsilon
        log_eps, log_not = math.log(eps), math.log1p(-eps)
        # Prefix sums: for culprit c, states < c are clean (epsilon), states >= c share one p.
        clean = [0.0] * (n + 1)
        for s in range(n):
            clean[s + 1] = clean[s] + self.crashes[s] * log_eps + (self.runs[s] - self.crashes[s]) * log_not
        k_tail, r_tail = self._tails()
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

    def _predictive(self) -> List[float]:
        """For each culprit c, the chance that a run of a state with the bug crashes: p's posterior mean
        given the states c..N."""
        (a, b), (k_tail, r_tail) = self.prior, self._tails()
        return [(a + k_tail[c]) / (a + b + r_tail[c]) for c in range(self.states)]

    def next_state(self) -> int:
        """The state to run next."""
        bad = self.states - 1
        if self.crashes[bad] < self.confirm:
            return bad
        w, q, eps, n = self.posterior(), self._predictive(), self.epsilon, self.states
        # Probing s: culprits c <= s crash with q[c], the others with epsilon. The expected entropy after
        # the run is P(crash) log P(crash) + P(clean) log P(clean) - sum over c of the terms below, which
        # prefix (c <= s) and suffix (c > s) sums give for every s in one pass.
        good_mass, good_terms = [0.0] * (n + 1), [0.0] * (n + 1)
        for c in range(n - 1, -1, -1):
            good_mass[c] = good_mass[c + 1] + w[c]
            good_terms[c] = good_terms[c + 1] + _xlogx(w[c] * eps) + _xlogx(w[c] * (1 - eps))
        best, bug_crash, bug_terms = None, 0.0, 0.0
        for s in range(n):
            bug_crash += w[s] * q[s]
            bug_terms += _xlogx(w[s] * q[s]) + _xlogx(w[s] * (1 - q[s]))
            if not self.testable[s]:
                continue
            crash = bug_crash + eps * good_mass[s + 1]
            entropy = _xlogx(crash) + _xlogx(1 - crash) - bug_terms - good_terms[s + 1]
            key = (round(entropy, 12), self.runs[s], -s)
            if best is None or key < best[0]:
                best = (key, s)
        return best[1]

    def reproduced(self, max_runs: int) -> Optional[bool]:
        """At the bad end: True once confirmed, False when MAX_RUNS runs there never showed the bug."""
        bad = self.states - 1
        if self.crashes[bad] >= self.confirm:
            return True
        if self.runs[bad] >= max_runs and self.crashes[bad] == 0:
            return False
        return None
