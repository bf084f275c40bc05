"""The splat parser on a run's live console, plus dmesg at the end: each distinct report once."""

import re
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..analysis import splats


class SplatCollector:
    """The splat parser on the live console (fed from the console thread), plus dmesg at the end.

    A report still open when the console has been silent for QUIET_S seconds is closed then: a guest
    that deadlocks right after printing a splat prints nothing more to end it.

    The parser failing must not pass a run silently, nor stop the console: a failure is kept in
    ERRORS (for the verdict), and a fresh parser carries on with the next line."""

    QUIET_S = 5.0

    def __init__(self, ignore: Sequence[str]):
        self._parser = splats.Parser()
        self._lock = threading.Lock()
        self._ignore = [re.compile(p) for p in ignore]
        self._last_line = time.monotonic()
        self.reports: List[Tuple[str, splats.Report]] = []  # (source, report), in order of appearance
        self._keys = set()
        self.errors: List[str] = []

    def _parse(self, source: str, step) -> None:
        """Run STEP() (a parser call; the lock held) and add its reports; record a failure instead."""
        try:
            self._add(source, step())
        except Exception as e:
            if len(self.errors) < 10:
                self.errors.append(f"splat parser ({source}, line {self._parser.line_no}): {type(e).__name__}: {e}")
            self._parser = splats.Parser()

    def feed(self, line: str) -> None:
        with self._lock:
            self._last_line = time.monotonic()
            self._parse("console", lambda: self._parser.feed(line))

    def poll(self) -> None:
        with self._lock:
            if self._parser.in_report and time.monotonic() - self._last_line > self.QUIET_S:
                self._parse("console", self._parser.flush)

    def finish_console(self) -> None:
        with self._lock:
            self._parse("console", self._parser.flush)

    def add_dmesg(self, text: str) -> None:
        """Reports the console dropped (a slow or lossy console); those it saw are not counted again."""
        with self._lock:
            self._parse("dmesg", lambda: splats.parse_lines(text.splitlines()))

    def _add(self, source: str, reports: List[splats.Report]) -> None:
        for report in reports:
            if report.key not in self._keys:
                self._keys.add(report.key)
                self.reports.append((source, report))
        # A report can end after one that started later (two printed at once): keep the order they began.
        self.reports.sort(key=lambda sr: (sr[0] != "console", sr[1].start_line))

    def printing(self) -> bool:
        """A report is still being printed (the parser has one open)."""
        with self._lock:
            return self._parser.in_report

    def ignored(self, report: splats.Report) -> bool:
        return any(rx.search(report.title) for rx in self._ignore)

    def lockdep_off(self) -> Optional[str]:
        """The title of an ignored report after which lockdep was off, if there is one: a lock bug that
        came later could not be reported."""
        with self._lock:
            return next((r.title for _, r in self.reports
                         if r.format in splats.LOCKDEP_OFF_FORMATS and self.ignored(r)), None)

    def failures(self) -> List[splats.Report]:
        with self._lock:
            return [r for _, r in self.reports if not self.ignored(r)]

    def summary(self) -> List[Dict[str, Any]]:
        """One entry per distinct bug (signature), in order of first appearance, with its count."""
        with self._lock:
            by_sig: Dict[str, Dict[str, Any]] = {}
            for source, r in self.reports:
                entry = by_sig.get(r.signature)
                if entry is None:
                    entry = by_sig[r.signature] = {**r.to_dict(), "source": source, "ignored": self.ignored(r),
                                                   "occurrences": 0}
                entry["occurrences"] += 1
            return list(by_sig.values())
