#!/usr/bin/env python3
"""Benchmark: `labrunner bisect` on real kernels, too long for CI. A synthetic history of COMMITS small
commits on the Debian 6.12 source the lab imports for stable-debug, the BUG_AT-th an injected bug, is
bisected as commits, or with --series as an mbox of its patches (git format-patch) on its base.

- --bug rare-race (default): a GPF in the CPU-online callback that shows in only part of the runs,
  with vm-churn-hotplug runs of 60 s (tens of minutes);
- --bug kvm-lock-order: a lockdep report that always shows, with 15 s churn runs and no host hotplug,
  as the e2e test has it (which bisects commits; this is where a series is bisected for real).

Every run ends at its first report. Records the answer, runs, builds and wall time in
bench/out/bisect_real-BUG[-series].json; the kernels its states built are removed afterwards.
With --jobs N, N guests at once (each run its own `labrunner run`).
Usage: .venv/bin/python bench/bisect_real.py [--bug rare-race|kvm-lock-order] [--series] [--commits 8] [--bug-at 5]
                                             [--jobs N]
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
from labrunner.build import kbuild  # noqa: E402
from labrunner.tests.test_e2e_bisect import GIT_ID, history  # noqa: E402

TEST = """tests:
  bench-churn:
    command: /lab/tests/vm-churn-hotplug/run.sh
    duration: {duration}
    cmdline: kvm.enable_virt_at_load=0
    env: {{LAB_THREADS: 2, LAB_VCPUS: 2, LAB_TOGGLE_MS: 300}}
    ignore_splats: ["^possible deadlock in __kernfs_remove$"]
{hotplug}    timeouts: {{boot: 90, ssh: 30, hang: 60}}
"""
BUGS = {  # the test each bug is bisected with
    "rare-race": TEST.format(duration=60, hotplug="    hotplug: {period: 3, slots: 2}\n"),
    "kvm-lock-order": TEST.format(duration=15, hotplug=""),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bug", choices=sorted(BUGS), default="rare-race")
    ap.add_argument("--series", action="store_true", help="bisect the history as a patch series on its base")
    ap.add_argument("--commits", type=int, default=8)
    ap.add_argument("--bug-at", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args()
    lab = config.load(REPO / "lab.yaml")
    built = lab.cache_dir / "kernels" / "built"
    before = set(built.glob("stable-debug-bisect-*"))
    branch = f"labrunner-bench-bisect-{args.bug}"
    with tempfile.TemporaryDirectory(prefix="labrunner-bench-bisect-") as tmp:
        tmp = Path(tmp)
        base = history(tmp, args.commits, args.bug_at, args.bug, branch)
        (tmp / "lab.yaml").write_text(BUGS[args.bug])
        repo, _ = kbuild.source_commit(lab.kernels["stable-debug"].source, lab.cache_dir, lambda s: None)

        def git(*argv: str) -> str:
            return subprocess.run(["git", *GIT_ID, "-C", str(repo), *argv], check=True, capture_output=True,
                                  text=True, timeout=600).stdout
        injected = git("log", "-1", "--format=%s", f"{branch}~{args.commits - args.bug_at}").strip()
        if args.series:
            mbox = git("format-patch", "--stdout", f"{base}..{branch}")
            (tmp / "series.mbox").write_text(mbox)
            what = ["--series", str(tmp / "series.mbox"), "--base", base]
        else:
            what = ["--good", base, "--bad", branch]
        t0 = time.monotonic()
        try:
            p = subprocess.run([str(REPO / ".venv" / "bin" / "labrunner"), "--lab", str(tmp / "lab.yaml"), "bisect",
                                "--kernel", "stable-debug", *what, "--test", "bench-churn",
                                "--results", str(tmp / "results"), "--jobs", str(args.jobs)],
                               text=True, stdout=subprocess.PIPE, timeout=4 * 3600)
            wall = time.monotonic() - t0
            (folder,) = (tmp / "results").glob("bisect-*")
            doc = json.loads((folder / "bisect.json").read_text())
        finally:
            for path in set(built.glob("stable-debug-bisect-*")) - before:
                subprocess.run(["rm", "-rf", str(path)], check=False, timeout=120)
    answer = doc.get("answer") or {}
    culprits = answer.get("culprits", [])
    right = len(culprits) == 1 and culprits[0].get("subject") == injected
    result = {"date": time.strftime("%Y-%m-%d"), "bug": args.bug, "series": args.series, "commits": args.commits,
              "bug_at": args.bug_at, "jobs": args.jobs, "exit": p.returncode, "wall_s": round(wall), "right": right,
              "answer": answer,
              "runs": sum(s["runs"] for s in doc["states"]), "told_nothing": sum(s["excluded"] for s in doc["states"]),
              "builds": sum(bool(s["built"]) for s in doc["states"]), "stdout": p.stdout[-4000:]}
    out = REPO / "bench" / "out" / f"bisect_real-{args.bug}{'-series' if args.series else ''}" \
        f"{f'-jobs{args.jobs}' if args.jobs > 1 else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(p.stdout)
    print(f"exit {p.returncode}, {wall / 60:.1f} min, culprit {'right' if right else 'NOT right'}")
    return 0 if right else 1


if __name__ == "__main__":
    sys.exit(main())
