#!/usr/bin/env python3
"""Benchmark: the bisection search against syzkaller pkg/bisect's published rules, on a simulated
oracle (labrunner/lab/bisect_sim.py), in one run: 64 commits after the good end, the culprit uniform,
a bug that shows in p of the runs, stray reports on good commits in 0% or 2% of runs.

Goal (64 commits): at most 15 runs at p = 1, 40 at p = 0.5 and 75 at p = 0.3, at 95% or more correct.
Both sides get the same seeded worlds. Then the search with SLOTS guests at once (rounds of SLOTS runs
started together): runs spent, and rounds, the wall time in runs' lengths. Writes bench/out/bisection.json.
With --confidence C the search stops at C instead of its default, to trace how runs trade against
correct answers. Usage: .venv/bin/python bench/bisection.py [--trials 1000] [--slots 4] [--confidence C]
"""

import argparse
import functools
import json
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labrunner.lab import bisect_sim  # noqa: E402
from labrunner.lab.bisect_search import CONFIDENCE  # noqa: E402

GOAL_RUNS = {1.0: 15, 0.5: 40, 0.3: 75}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--states", type=int, default=65, help="states, the good end included (default 65)")
    ap.add_argument("--slots", type=int, default=4, help="guests at once for the last columns (0: none)")
    ap.add_argument("--confidence", type=float, default=CONFIDENCE,
                    help=f"the search's stopping confidence (default {CONFIDENCE}, bisect's own)")
    args = ap.parse_args()
    rows = []
    print(f"confidence {args.confidence}, {args.trials} trials a row, {args.states - 1} commits after the good end")
    print(f"{'p':>4} {'stray':>5}  {'labrunner runs':>14} {'correct':>8}  {'pkg/bisect runs':>15} {'correct':>8}  "
          f"{'goal':23}" + (f"  {args.slots} slots: runs rounds correct" if args.slots else ""))
    for p in (1.0, 0.5, 0.3):
        for stray in (0.0, 0.02):
            row = {"p": p, "stray": stray}
            ours = functools.partial(bisect_sim.trial, confidence=args.confidence)
            sides = [("labrunner", ours), ("pkg_bisect", bisect_sim.baseline)]
            if args.slots:
                sides.append(("slots", functools.partial(ours, slots=args.slots)))
            for name, search in sides:
                t0 = time.process_time()
                # a generator per trial: both sides draw the same culprit first, whatever their runs drew
                out = [search(random.Random(f"{p}-{stray}-{i}"), args.states, p, stray) for i in range(args.trials)]
                row[name] = {"mean_runs": round(statistics.mean(o.runs for o in out), 1),
                             "correct": round(sum(o.correct for o in out) / len(out), 3),
                             "cpu_s": round(time.process_time() - t0, 1)}
                if name == "slots":
                    row[name].update(slots=args.slots, mean_rounds=round(statistics.mean(o.rounds for o in out), 1))
            ours, base = row["labrunner"], row["pkg_bisect"]
            met = ours["mean_runs"] <= GOAL_RUNS[p] and ours["correct"] >= 0.95
            line = (f"{p:4} {stray:5}  {ours['mean_runs']:14} {ours['correct']:8.1%}  {base['mean_runs']:15} "
                    f"{base['correct']:8.1%}  <= {GOAL_RUNS[p]:2} runs: {'met' if met else 'NOT met':7}")
            if args.slots:
                par = row["slots"]
                width = len(str(args.slots)) + 12
                line += f"  {par['mean_runs']:>{width}} {par['mean_rounds']:6} {par['correct']:7.1%}"
            print(line, flush=True)
            rows.append(row)
    result = {"date": time.strftime("%Y-%m-%d"), "trials": args.trials, "states": args.states,
              "confidence": args.confidence, "rows": rows}
    (REPO / "bench" / "out").mkdir(parents=True, exist_ok=True)
    (REPO / "bench" / "out" / "bisection.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
