"""A selftest workload's results for run.json's `subtests`: one entry per selftest run, each with its
output in the run folder (selftests/ROUND/NAME.log), and the failures the verdict names.
Parsing and what each exit status means are analysis.tap's."""

from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from ..analysis import tap
from ..config.tests import Selftest


def collect(selftests: Sequence[Selftest], output: str, outdir: Path) -> Tuple[List[Dict[str, Any]], Tuple[str, ...]]:
    """(subtests, failures): what the workload's OUTPUT says of each selftest run, its log written."""
    expect = {t.name: t.expect_fail for t in selftests}
    entries: List[Dict[str, Any]] = []
    failures: List[str] = []
    for r in tap.parse(output.splitlines()):
        status = tap.status(r, expect.get(r.name))
        log = Path("selftests", str(r.round), r.name + ".log")
        (outdir / log).parent.mkdir(parents=True, exist_ok=True)
        (outdir / log).write_text("".join(line + "\n" for line in r.lines))
        entry = {"name": r.name, "round": r.round, "status": status, "duration_s": r.duration_s, "exit": r.exit,
                 "log": str(log), "tap": r.tap}
        if status == "xfail" and expect.get(r.name):
            entry["reason"] = expect[r.name]
        entries.append(entry)
        if status in ("fail", "timeout"):
            failures.append(tap.describe(r, status))
    entries += [{"name": t.name, "round": None, "status": "skip", "reason": t.skip} for t in selftests if t.skip]
    return entries, tuple(failures)
