#!/usr/bin/env python3
"""Benchmark: vCPU hotplug cycles per minute and VM cycles per second under the lab's main test.

Runs vm-churn-hotplug on the default kernel and machine twice: with the schedule in lab.yaml (what a
user gets), and with a 0.5 s period (how fast the controller, QEMU and the guest can go). A hotplug
cycle is one confirmed unplug plus one confirmed plug. Writes bench/out/hotplug.json.
Usage: .venv/bin/python bench/hotplug.py [--duration S]
"""

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labrunner import config  # noqa: E402
from labrunner.run import runner as runs  # noqa: E402

OUT = REPO / "bench" / "out"


def measure(lab, period, duration):
    test = lab.tests["vm-churn-hotplug"]
    test = dataclasses.replace(test, hotplug=dataclasses.replace(test.hotplug, period_s=period))
    lab = dataclasses.replace(lab, tests={**lab.tests, test.name: test})
    with tempfile.TemporaryDirectory() as results:
        record = runs.run_test(lab, test.name, results=Path(results), duration=duration)
    if record["verdict"] != "pass":
        raise SystemExit(f"run did not pass: {record['reason']}")
    hp, work, secs = record["hotplug"], record["workload"], record["phases"]["workload_s"]
    return {
        "period_s": period, "workload_s": secs,
        "hotplug_cycles_per_min": round(min(hp["plugged"], hp["unplugged"]) / secs * 60, 1),
        "plugged": hp["plugged"], "unplugged": hp["unplugged"],
        "plug_failures": hp["plug_failures"], "unplug_timeouts": hp["unplug_timeouts"],
        "vm_cycles_per_s": round(work["vm_cycles"] / work["elapsed_s"], 1),
        "vcpu_runs_per_s": round(work["vcpu_runs"] / work["elapsed_s"], 1),
        "emulation_failures": work.get("emulation_failures", 0),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=60)
    args = ap.parse_args()
    lab = config.load(REPO / "lab.yaml")
    default_period = lab.tests["vm-churn-hotplug"].hotplug.period_s
    result = {"date": time.strftime("%Y-%m-%d"), "duration_s": args.duration,
              "runs": [measure(lab, p, args.duration) for p in (default_period, 0.5)]}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "hotplug.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"vm-churn-hotplug, {args.duration} s per run ({result['date']})")
    for r in result["runs"]:
        print(f"  period {r['period_s']:4.1f} s: {r['hotplug_cycles_per_min']:5.1f} hotplug cycles/min, "
              f"{r['vm_cycles_per_s']:5.1f} VM cycles/s, {r['vcpu_runs_per_s']:6.1f} vCPU runs/s, "
              f"failures {r['plug_failures']}+{r['unplug_timeouts']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
