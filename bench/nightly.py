#!/usr/bin/env python3
"""Benchmark: a nightly suite through the local executor, 1 slot against auto, and a machine shape that
fits two guests on a small host (single-threaded TCG: one host thread per guest).

For each configuration: wall time, the executor's overhead over the sum of its runs' own durations
(goal: under 5%), spurious hangs and errors (goal: 0), and whether the canary was caught. The suite
lives in a lab of its own in bench/out/, so the checkout's lab.yaml is not touched; kernels and images
come from the cache. Writes bench/out/nightly.json.
Usage: .venv/bin/python bench/nightly.py
"""

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
SUITE = """suites:
  bench:
    - kernels: [debian-6.12]
      tests: [kvm-smoke]
      repeats: 4
      duration: 20
    - kernels: [inject-sleep-in-atomic]
      tests: [vm-churn-hotplug]
      repeats: 2
      duration: 30
      expect: "^BUG: sleeping function called from invalid context in "

"""
CONFIGS = [("1 slot", "multi", ["--jobs", "1"]), ("auto", "multi", []),
           ("single-threaded TCG, auto", "single", [])]


SINGLE = """machines:
  single:   # the built-in default machine, with all vCPUs on one host thread
    machine_type: q35
    cpus: 2
    max_cpus: 4
    memory: 2G
    lpj: 5000000
    tcg_plug_budget: 64
    tcg_threads: single
"""


def lab_copy(threads: str) -> Path:
    """A lab of its own in bench/out/: the built-in lab plus the bench suite (and machine)."""
    lab = OUT / f"nightly-lab-{threads}"
    shutil.rmtree(lab, ignore_errors=True)
    lab.mkdir(parents=True)
    text = SUITE + (SINGLE if threads == "single" else "")
    text += "defaults:\n  suite: bench\n" + ("  machine: single\n" if threads == "single" else "")
    (lab / "lab.yaml").write_text(text)
    return lab / "lab.yaml"


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, threads, args in CONFIGS:
        lab = lab_copy(threads)
        t0 = time.monotonic()
        p = subprocess.run([sys.executable, "-m", "labrunner.cli", "--lab", str(lab), "nightly", *args],
                           capture_output=True, text=True, timeout=3600, cwd=REPO)
        wall = time.monotonic() - t0
        (folder,) = (lab.parent / "results").glob("nightly-*")
        doc = json.loads((folder / "nightly.json").read_text())
        attempts = [a for c in doc["cells"].values() for a in c["attempts"]]
        runs = [json.loads((Path(a["dir"]) / "run.json").read_text()) for a in attempts if a["dir"]]
        canary = [c["attempts"][-1] for c in doc["cells"].values() if c["expect"]]
        spurious = [a["reason"] for c in doc["cells"].values() if not c["expect"] for a in c["attempts"]
                    if a["verdict"] != "pass"]
        slots = re.search(r"\((\d+) slots?\)", p.stdout)
        rows.append({"config": name, "slots": int(slots.group(1)) if slots else None, "wall_s": round(wall, 1),
                     "runs": len(runs), "sum_of_runs_s": round(sum(r["duration_s"] for r in runs), 1),
                     "spurious": spurious, "canary_caught": all(a["verdict"] == "fail" and a["reports"] for a in canary),
                     "exit": p.returncode})
        r = rows[-1]
        overhead = (r["wall_s"] * r["slots"] - r["sum_of_runs_s"]) / r["sum_of_runs_s"] if r["slots"] else None
        r["overhead"] = round(overhead, 3) if overhead is not None else None
        print(f"{name:28} {r['slots']} slots  {wall:6.1f} s wall  {r['runs']} runs ({r['sum_of_runs_s']:.1f} s)  "
              f"overhead {overhead:.1%}  spurious {len(spurious)}  canary {'caught' if r['canary_caught'] else 'LOST'}",
              flush=True)
    base = rows[0]["wall_s"]
    for r in rows:
        r["speedup"] = round(base / r["wall_s"], 2)
    (OUT / "nightly.json").write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
