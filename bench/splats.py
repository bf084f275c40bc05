#!/usr/bin/env python3
"""Benchmark: splat-parser throughput, in MB of console text per second on one core.

The syzkaller corpus's logs are concatenated and repeated to about 20 MB, then fed line by line to one
Parser, as a live run does. Best of 3. Writes bench/out/splats.json.
Usage: .venv/bin/python bench/splats.py [--mb 20]
"""

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labrunner.analysis import splats  # noqa: E402
from labrunner.tests import corpus  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=20)
    args = ap.parse_args()
    one = [line for case in corpus.cases() for line in case.log]
    size = sum(len(line.encode()) + 1 for line in one)
    lines = one * max(1, int(args.mb * 1e6 / size))
    total = sum(len(line.encode()) + 1 for line in lines)
    best, reports = None, 0
    for _ in range(3):
        parser = splats.Parser()
        t0 = time.process_time()
        reports = sum(len(parser.feed(line)) for line in lines) + len(parser.flush())
        elapsed = time.process_time() - t0
        best = elapsed if best is None else min(best, elapsed)
    result = {"date": time.strftime("%Y-%m-%d"), "mb": round(total / 1e6, 1), "lines": len(lines),
              "reports": reports, "cpu_s": round(best, 2), "mb_per_s": round(total / 1e6 / best, 1)}
    (REPO / "bench" / "out").mkdir(parents=True, exist_ok=True)
    (REPO / "bench" / "out" / "splats.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['mb']} MB, {result['lines']} lines, {reports} reports: {result['cpu_s']} s CPU, "
          f"{result['mb_per_s']} MB/s ({result['date']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
