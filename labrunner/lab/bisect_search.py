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

Next state: the testable state whose run leaves the least expected entropy of the posterior over c,
with each hypothesis' own predictive chance of a crash, fewer runs first on ties; the bad end first until
it has shown the bug CONFIRM times. Where a run is a fair coin, one run ahead, this is the posterior
median (probabilistic bisection); for a flaky bug a clean run says little, so it probes nearer the bad
end than the median, where a crash is likelier. It looks two runs ahead, over the LOOKAHEAD states best
one run ahead: a run that mostly teaches p (a crash where the bug surely is) makes the next clean run
say more, which one run ahead cannot see.

With several runs under way at once (guest slots), the next state is chosen as if each of those had
given its likelier outcome (with_pending): beside a run at the median that will likely pass, the next
goes where the culprit is if it does.
"""

import dataclasses
import math
from typing import Dict, List, Optional, Sequence, Tuple

# The stopping confidence by default. For one flaky bug the posterior is a little overconfident (the
# search stops when the evidence happens to look strong): at 0.96, bugs that show in 30% of runs were
# named right in as few as 92.3% of 300 simulated bisections, at 0.97 in 96.7-98.7% (test_bisect.py,
# bench/bisection.py, README).
CONFIDENCE = 0.97
# States whose run is looked at two runs ahead: the best ones by one run ahead (3 did as well as 6).
LOOKAHEAD = 3


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
        w, q, eps = self.posterior(), self._predictive(), self.epsilon
        (a, b), (k_tail, r_tail) = self.prior, self._tails()
        first = sorted(self._entropies(w, q), key=lambda t: (round(t[0], 12), self.runs[t[1]], -t[1]))
        best = None
        for _, s, crash in first[:LOOKAHEAD]:
            ahead = 0.0
            for crashed, chance in ((True, crash), (False, 1 - crash)):
                # After that run: each culprit's weight times its chance of this outcome, and for the
                # culprits c <= s (s has the bug), p's posterior with one more run. Neither outcome
                # is certain: 0 < epsilon, q < 1.
                w2 = [w[c] * ((q[c] if crashed else 1 - q[c]) if c <= s else (eps if crashed else 1 - eps))
                      for c in range(self.states)]
                total = sum(w2)
                q2 = [(a + k_tail[c] + crashed) / (a + b + r_tail[c] + 1) if c <= s else q[c]
                      for c in range(self.states)]
                ahead += chance * min(e for e, _, _ in self._entropies([x / total for x in w2], q2))
            key = (round(ahead, 12), self.runs[s], -s)
            if best is None or key < best[0]:
                best = (key, s)
        return best[1]

    def _entropies(self, w: Sequence[float], q: Sequence[float]) -> List[Tuple[float, int, float]]:
        """(expected entropy after the run, s, its chance of a crash) for each testable state s, given
        the posterior W over c and each culprit's chance Q of a crash where the bug is."""
        eps, log = self.epsilon, math.log
        # Probing s: culprits c <= s crash with q[c], the others with epsilon. The expected entropy after
        # the run is H(W) + sum over c of W[c] H(its chance) - H(the run's outcome); prefix sums over
        # c <= s give it for every s in one pass.
        h_w = -sum(x * log(x) for x in w if x > 0)
        h_eps = -_xlogx(eps) - _xlogx(1 - eps)
        out, bug_crash, bug_h, bug_mass = [], 0.0, 0.0, 0.0
        for s, (ws, qs) in enumerate(zip(w, q)):
            bug_crash += ws * qs
            bug_h -= ws * (qs * log(qs) + (1 - qs) * log(1 - qs))
            bug_mass += ws
            if self.testable[s]:
                good = 1 - bug_mass
                crash = bug_crash + eps * good
                out.append((h_w + bug_h + h_eps * good + _xlogx(crash) + _xlogx(1 - crash), s, crash))
        return out

    def crash_chance(self, state: int) -> float:
        """The chance that the next run of STATE reports the bug."""
        w, q = self.posterior(), self._predictive()
        return sum(w[c] * q[c] for c in range(state + 1)) + self.epsilon * sum(w[state + 1:])

    def with_pending(self, states: Sequence[int]) -> "Search":
        """This search as if the runs under way at STATES had each ended as they likelier will; itself
        when none are."""
        if not states:
            return self
        out = dataclasses.replace(self, crashes=list(self.crashes), runs=list(self.runs))
        for s in states:
            out.record(s, out.crash_chance(s) >= 0.5)
        return out

    def reproduced(self, max_runs: int) -> Optional[bool]:
        """At the bad end: True once confirmed, False when MAX_RUNS runs there never showed the bug."""
        bad = self.states - 1
        if self.crashes[bad] >= self.confirm:
            return True
        if self.runs[bad] >= max_runs and self.crashes[bad] == 0:
            return False
        return None
