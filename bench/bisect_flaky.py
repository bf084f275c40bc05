#!/usr/bin/env python3
"""Benchmark: `labrunner bisect` on a real flaky bug. A synthetic history of COMMITS small commits on
the Debian 6.12 source the lab imports for stable-debug, one of them the inject-rare-race patch (a GPF
in the CPU-online callback that shows in only part of the runs), bisected with vm-churn-hotplug runs
of 60 s, each ended at its first report. Records the answer, runs, builds and wall time.

Too long for CI (tens of minutes): the e2e test bisects a bug that always shows. Writes
bench/out/bisect_flaky.json; the kernels its states built are removed afterwards.
Usage: .venv/bin/python bench/bisect_flaky.py [--commits 8] [--bug-at 5]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labrunner import config  # noqa: E402
from labrunner.tests.test_e2e_bisect import history  # noqa: E402

BRANCH = "labrunner-bench-bisect-flaky"
LAB = """tests:
  flaky-churn:
    command: /lab/tests/vm-churn-hotplug/run.sh
    duration: 60
    cmdline: kvm.enable_virt_at_load=0
    env: {LAB_THREADS: 2, LAB_VCPUS: 2, LAB_TOGGLE_MS: 300}
    ignore_splats: ["^possible deadlock in __kernfs_remove$"]
    hotplug: {period: 3, slots: 2}
    timeouts: {boot: 90, ssh: 30, hang: 60}
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--commits", type=int, default=8)
    ap.add_argument("--bug-at", type=int, default=5)
    args = ap.parse_args()
    built = config.load(REPO / "lab.yaml").cache_dir / "kernels" / "built"
    before = set(built.glob("stable-debug-bisect-*"))
    with tempfile.TemporaryDirectory(prefix="labrunner-bench-bisect-") as tmp:
        tmp = Path(tmp)
        base = history(tmp, args.commits, args.bug_at, "rare-race", BRANCH)
        (tmp / "lab.yaml").write_text(LAB)
        t0 = time.monotonic()
        try:
            p = subprocess.run([str(REPO / ".venv" / "bin" / "labrunner"), "--lab", str(tmp / "lab.yaml"), "bisect",
                                "--kernel", "stable-debug", "--good", base, "--bad", BRANCH, "--test", "flaky-churn",
                                "--results", str(tmp / "results")], text=True, stdout=subprocess.PIPE, timeout=4 * 3600)
            wall = time.monotonic() - t0
            (folder,) = (tmp / "results").glob("bisect-*")
            doc = json.loads((folder / "bisect.json").read_text())
        finally:
            for path in set(built.glob("stable-debug-bisect-*")) - before:
                subprocess.run(["rm", "-rf", str(path)], check=False, timeout=120)
    answer = doc.get("answer") or {}
    culprits = answer.get("culprits", [])
    right = len(culprits) == 1 and culprits[0].get("subject", "").startswith("inject: widen the unlocked walk")
    result = {"date": time.strftime("%Y-%m-%d"), "commits": args.commits, "bug_at": args.bug_at,
              "exit": p.returncode, "wall_s": round(wall), "right": right, "answer": answer,
              "runs": sum(s["runs"] for s in doc["states"]), "told_nothing": sum(s["excluded"] for s in doc["states"]),
              "builds": sum(bool(s["built"]) for s in doc["states"]), "stdout": p.stdout[-4000:]}
    (REPO / "bench" / "out").mkdir(parents=True, exist_ok=True)
    (REPO / "bench" / "out" / "bisect_flaky.json").write_text(json.dumps(result, indent=2) + "\n")
    print(p.stdout)
    print(f"exit {p.returncode}, {wall / 60:.1f} min, culprit {'right' if right else 'NOT right'}")
    return 0 if right else 1


if __name__ == "__main__":
    sys.exit(main())
