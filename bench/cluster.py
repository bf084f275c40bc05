#!/usr/bin/env python3
"""Benchmark: one small nightly through the local executor and through a dask cluster of two workers on
this machine, in one run.

The cluster is real: a `dask scheduler` and two `labrunner worker` processes on 127.0.0.1, each with a
cache of its own (cold: it builds its image and receives the kernel), one guest slot each. The local
nightly has one slot (what `auto` gives a 2-core host). Reported: wall times; each worker's start-up
(host check and image build); the kernel's first shipment (bytes, time); and per run, what the
executor adds (the worker's time before and after `labrunner run`, the folder's trip back and landing;
goal under 2 s) and the bytes it moves (goal: under the run folder's own size).
Writes bench/out/cluster.json. Usage: .venv/bin/python bench/cluster.py [--repeats N]
"""

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labrunner import config  # noqa: E402
from labrunner.lab import nightly  # noqa: E402
from labrunner.lab.dask_executor import DaskExecutor  # noqa: E402
from labrunner.lab.executor import LocalExecutor  # noqa: E402
from labrunner.tests.test_e2e_dask import Cluster  # noqa: E402

OUT = REPO / "bench" / "out"
SUITE = """suites:
  bench:
    - kernels: [debian-6.12]
      tests: [kvm-smoke]
      repeats: {repeats}
      duration: 20
"""


class Recording:
    """An executor that keeps every record its inner executor gives back."""

    def __init__(self, inner):
        self.inner, self.slots, self.records = inner, inner.slots, []

    def submit(self, job):
        future = self.inner.submit(job)
        future.add_done_callback(lambda f: self.records.append(f.result()) if not f.exception() else None)
        return future

    def shutdown(self):
        self.inner.shutdown()


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def timed_nightly(lab, executor, results: Path):
    rec = Recording(executor)
    t0 = time.monotonic()
    try:
        doc = nightly.run_nightly(lab, "bench", rec, results=results)
    finally:
        rec.shutdown()
    return time.monotonic() - t0, doc, rec.records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=4)
    args = ap.parse_args()
    work = OUT / "cluster"
    shutil.rmtree(work, ignore_errors=True)
    (work / "lab").mkdir(parents=True)
    lab_path = work / "lab" / "lab.yaml"
    lab_path.write_text(SUITE.format(repeats=args.repeats) + "defaults:\n  suite: bench\n")
    lab = config.load(lab_path)

    local_wall, local_doc, local_runs = timed_nightly(lab, LocalExecutor(1), work / "local")
    cluster = Cluster(work, lab_path)  # the end-to-end tests' own: real processes on 127.0.0.1
    try:
        dask_wall, dask_doc, dask_runs = timed_nightly(lab, DaskExecutor(lab, cluster.address), work / "dask")
    finally:
        cluster.close()
    joined = cluster.joined

    def own(runs):
        return sum(r.get("duration_s") or 0 for r in runs)
    ex = [r["executor"] for r in dask_runs if r.get("executor")]
    run_sizes = [folder_bytes(Path(r["run_dir"])) for r in dask_runs if r.get("run_dir")]
    shipped = [e for e in ex if e["kernel_fetch_s"] > 0.5]
    kernel_bytes = sum(p.stat().st_size for p in (work / "w1" / "cache" / "kernels" / "shipped").rglob("*")
                       if p.is_file())
    result = {
        "date": time.strftime("%Y-%m-%d"), "repeats": args.repeats,
        "local": {"slots": 1, "wall_s": round(local_wall, 1), "runs": len(local_runs), "runs_own_s": round(own(local_runs), 1),
                  "verdicts": sorted(r["verdict"] for r in local_runs)},
        "dask": {"workers": 2, "slots": 2, "wall_s": round(dask_wall, 1), "runs": len(dask_runs),
                 "runs_own_s": round(own(dask_runs), 1), "verdicts": sorted(r["verdict"] for r in dask_runs),
                 "worker_join_s": joined,
                 "kernel_first_shipment": {"bytes": kernel_bytes, "fetch_s": [e["kernel_fetch_s"] for e in shipped]},
                 "overhead_s": {"median": round(statistics.median(e["overhead_s"] for e in ex), 3),
                                "max": round(max(e["overhead_s"] for e in ex), 3)},
                 "bytes_per_run": {"median": int(statistics.median(e["bytes"] for e in ex)),
                                   "run_folder_median": int(statistics.median(run_sizes))},
                 "runs_per_worker": {w: sum(e["worker"] == w for e in ex) for w in sorted({e["worker"] for e in ex})}},
        "same_outcome": sorted((c["kernel"], c["test"], c["attempts"][-1]["verdict"]) for c in local_doc["cells"].values())
        == sorted((c["kernel"], c["test"], c["attempts"][-1]["verdict"]) for c in dask_doc["cells"].values()),
    }
    (OUT / "cluster.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
