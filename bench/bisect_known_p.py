#!/usr/bin/env python3
"""Benchmark: what not knowing p costs the bisection search, on the simulated oracle of
bench/bisection.py (the same seeded worlds, 64 commits after the good end by default).

For one row (p, stray reports), the search as labrunner runs it beside three that are told more or
less than it can know:
- p known: the posterior of every choice and of the stop is the one with p given, not integrated out;
- p known to the stop only: it chooses as labrunner does, and stops on the posterior with p given;
- p's estimate plugged in: it chooses as labrunner does, and stops on the posterior with p fixed at its
  posterior mean, what a stop that ignored p's uncertainty would do (it is overconfident).
The first two are not possible in a real bisection; they say where the runs go. Writes nothing.
Usage: .venv/bin/python bench/bisect_known_p.py [--p 0.3] [--stray 0.02] [--trials 300] [--confidence C]
"""

import argparse
import dataclasses
import random
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labrunner.lab import bisect_sim  # noqa: E402
from labrunner.lab.bisect_search import CONFIDENCE, Search  # noqa: E402

SURE = 1e5  # a Beta prior this strong is p given


def given(search: Search, p: float) -> Search:
    """SEARCH's evidence, with p given: a plain Search, whatever SEARCH's own class."""
    p = min(max(p, 1e-3), 1 - 1e-3)
    return Search(search.states, search.testable, prior=(SURE * p, SURE * (1 - p)), crashes=search.crashes,
                  runs=search.runs)


@dataclasses.dataclass
class StopKnowing(Search):
    """Chooses as labrunner's search does; stops on the posterior with p = TRUE_P."""
    true_p: float = 0.5

    def done(self, confidence: float) -> bool:
        return given(self, self.true_p).done(confidence)


@dataclasses.dataclass
class StopPluggedIn(Search):
    """Chooses as labrunner's search does; stops on the posterior with p fixed at its posterior mean."""

    def done(self, confidence: float) -> bool:
        # a run of the bad end has the bug whatever the culprit: its crash chance is p's posterior mean
        return given(self, self.crash_chance(self.states - 1)).done(confidence)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--p", type=float, default=0.3, help="the bug shows in this share of runs (default 0.3)")
    ap.add_argument("--stray", type=float, default=0.02, help="stray reports on good commits (default 0.02)")
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--states", type=int, default=65, help="states, the good end included (default 65)")
    ap.add_argument("--confidence", type=float, default=CONFIDENCE,
                    help=f"the stopping confidence (default {CONFIDENCE}, bisect's own)")
    args = ap.parse_args()
    p = args.p
    sides = [
        ("labrunner (p integrated out)", Search),
        ("p known", lambda n, testable: given(Search(n, testable), p)),
        ("p known to the stop only", lambda n, testable: StopKnowing(n, testable, true_p=p)),
        ("p's estimate plugged in to the stop", StopPluggedIn),
    ]
    print(f"p {p}, stray reports {args.stray}, confidence {args.confidence}, {args.trials} trials, "
          f"{args.states - 1} commits after the good end")
    for name, search_of in sides:
        out = [bisect_sim.trial(random.Random(f"{p}-{args.stray}-{i}"), args.states, p, args.stray,
                                confidence=args.confidence, search_of=search_of) for i in range(args.trials)]
        print(f"{name:36} {statistics.mean(o.runs for o in out):6.1f} runs  "
              f"{sum(o.correct for o in out) / len(out):6.1%} correct", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
