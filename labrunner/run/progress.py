"""Workload progress: the counters a workload prints, and how long since any of them advanced.

A workload reports progress as lines "progress NAME=N NAME=N ..." on its stdout (vm-churn prints
one every 5 s). Output is not progress: a main thread that keeps printing while every worker is
blocked in the kernel prints the same counters. So the run's hang watch asks this module, not the
output's timing. A workload that prints no progress line is judged by its output alone.
"""

import re
from typing import Dict, Optional

_LINE = re.compile(r"^progress((?:\s+\w+=-?\d+)+)\s*$")
_PAIR = re.compile(r"(\w+)=(-?\d+)")


class Progress:
    """Feed it the workload's stdout lines with the time they came; ask stalled_for()."""

    def __init__(self):
        self.counters: Dict[str, int] = {}
        self.last_advance: Optional[float] = None

    def feed(self, line: str, now: float) -> Optional[Dict[str, int]]:
        """The counters of a progress line, else None."""
        m = _LINE.match(line.strip())
        if not m:
            return None
        counters = {k: int(v) for k, v in _PAIR.findall(m.group(1))}
        if self.last_advance is None or any(v > self.counters.get(k, v - 1) for k, v in counters.items()):
            self.last_advance = now
        self.counters = counters
        return counters

    def stalled_for(self, now: float) -> Optional[float]:
        """Seconds since a counter last went up; None before the first progress line."""
        return None if self.last_advance is None else now - self.last_advance

    def describe(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.counters.items())
