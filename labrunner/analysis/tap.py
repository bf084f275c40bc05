"""Selftest results from a workload's output: the lab's markers around each selftest, and the
KTAP/TAP lines of kselftest's harness inside. A pure, line-fed parser; nothing of the lab's machinery.

The guest's run.sh (tests/kvm-selftests) prints, around each selftest's own output:
    lab-selftest: begin NAME round N uptime T
    lab-selftest: end NAME exit STATUS uptime T

What a selftest's exit status means is kselftest's (tools/testing/selftests/kselftest.h), as the
STATUS table says; a selftest killed at its time limit exits 137 (SIGKILL, from `timeout -s KILL`).
TAP lines ("ok 1 name", "not ok 2 name # SKIP why", KTAP's indented subtests) count at their top level
only: an indented subtest is already summed up by its parent's line.
"""

import dataclasses
import re
from typing import Dict, List, Optional, Sequence

# kselftest's exit codes: KSFT_PASS, KSFT_FAIL, KSFT_XFAIL, KSFT_XPASS, KSFT_SKIP.
STATUS = {0: "pass", 1: "fail", 2: "xfail", 3: "pass", 4: "skip"}
KILLED = 137  # timeout -s KILL
MAX_LOG_LINES = 5000  # kept per selftest; a chatty one keeps its first lines

_BEGIN = re.compile(r"^lab-selftest: begin (\S+) round (\d+) uptime (\d+(?:\.\d+)?)\s*$")
_END = re.compile(r"^lab-selftest: end (\S+) exit (\d+) uptime (\d+(?:\.\d+)?)\s*$")
_RESULT = re.compile(r"^(\s*)(not ok|ok)\b(?:\s+\d+)?(?:\s+-)?\s*([^#]*?)\s*(?:#\s*(\w+)\b.*)?$")


@dataclasses.dataclass
class Result:
    """One run of one selftest."""
    name: str
    round: int
    exit: Optional[int] = None  # None: its output ended before its end marker
    duration_s: Optional[float] = None
    lines: List[str] = dataclasses.field(default_factory=list)
    tap: Dict[str, int] = dataclasses.field(default_factory=lambda: {"ok": 0, "not ok": 0, "skip": 0, "xfail": 0})
    first_failure: Optional[str] = None  # the first top-level "not ok" line's test name
    _start: float = 0.0


class Parser:
    """Feed the workload's output line by line; feed() returns a Result at each end marker, flush() the
    one cut off, if any."""

    def __init__(self):
        self._open: Optional[Result] = None

    def feed(self, line: str) -> Optional[Result]:
        line = line.rstrip("\r\n")
        if line.startswith("lab-selftest: "):
            begin, end = _BEGIN.match(line), _END.match(line)
            if begin:
                cut = self.flush()
                self._open = Result(begin.group(1), int(begin.group(2)), _start=float(begin.group(3)))
                return cut
            if end and self._open is not None and end.group(1) == self._open.name:
                done, self._open = self._open, None
                done.exit = int(end.group(2))
                done.duration_s = round(float(end.group(3)) - done._start, 2)
                return done
        if self._open is not None:
            self._take(line)
        return None

    def flush(self) -> Optional[Result]:
        done, self._open = self._open, None
        return done

    def _take(self, line: str) -> None:
        r = self._open
        if len(r.lines) < MAX_LOG_LINES:
            r.lines.append(line)
        m = _RESULT.match(line)
        if m is None or m.group(1):  # not a result, or an indented (nested) one
            return
        directive = (m.group(4) or "").lower()
        if directive == "skip":
            r.tap["skip"] += 1
        elif directive in ("xfail", "todo"):
            r.tap["xfail"] += 1
        else:
            r.tap[m.group(2)] += 1
            if m.group(2) == "not ok" and r.first_failure is None:
                r.first_failure = m.group(3) or "(unnamed)"


def parse(lines: Sequence[str]) -> List[Result]:
    parser = Parser()
    out = [r for r in map(parser.feed, lines) if r is not None]
    last = parser.flush()
    return out + ([last] if last is not None else [])


def status(r: Result, expect_fail: Optional[str] = None) -> str:
    """pass, fail, skip, xfail, timeout, or incomplete (its output ended first: the run stopped)."""
    if r.exit is None:
        return "incomplete"
    if r.exit == KILLED:
        return "timeout"
    s = STATUS.get(r.exit, "fail")
    if s == "pass" and r.tap["not ok"]:
        s = "fail"  # the harness's own summary disagrees with its exit status
    if s == "fail" and expect_fail:
        return "xfail"
    return s


def describe(r: Result, st: str) -> str:
    """A failure's one line, for a verdict's reason."""
    if st == "timeout":
        return f"selftest {r.name} timed out (killed after {r.duration_s:.0f} s)"
    sub = f", first: not ok {r.first_failure}" if r.first_failure else ""
    return f"selftest {r.name} failed (exit {r.exit}{sub})"
