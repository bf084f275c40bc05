"""junit.xml for a CI system (Jenkins, GitLab), written with junitparser.

One testsuite per test, one testcase per (kernel, repeat) cell, named "<kernel> #<repeat>" (unique:
GitLab keeps only the first of duplicates), with classname "labrunner.<test>" (what GitLab shows).
A cell's last attempt decides, as in the nightly's comparison:
- a kernel report: <failure>, the title as message, the report as text; a report that known_issues
  lists: a failure whose message starts "known issue:";
- another kernel failure (a hang, a CPU that would not come or go, the workload failing): <failure>;
- an infrastructure error (or a kernel that did not build for lack of a host tool): <error>;
- not run (the nightly was cut short): <skipped>;
- a canary passes when its expected report came, and fails ("canary lost") when it did not.
Earlier attempts that were retried are named in the testcase's system-out.
"""

import re
from pathlib import Path
from typing import Any, Dict, Optional

from junitparser import Error, Failure, JUnitXml, Skipped, TestCase, TestSuite

from ..cache import write_atomic
from . import folders


def _case(cell: Dict[str, Any], runs: Dict[str, Dict[str, Any]]) -> TestCase:
    case = TestCase(f"{cell['kernel']} #{cell.get('repeat', 1)}", f"labrunner.{cell['test']}")
    attempts = cell.get("attempts", [])
    if not attempts:
        case.result = [Skipped("not run: the nightly ended before this cell")]
        return case
    last = attempts[-1]
    run = runs.get(last.get("run") or "", {}).get("record", {})
    case.time = run.get("duration_s") or 0
    texts = {s.get("signature"): s.get("text", "") for s in run.get("splats", [])}
    reports = last.get("reports", [])
    out = [f"run: runs/{last['run']}/report.html" if last.get("run") else "run: none (see the reason)",
           f"verdict: {last['verdict']}: {last.get('reason', '')}"]
    out += [f"attempt {i}: {a['verdict']}: {a.get('reason', '')}" for i, a in enumerate(attempts[:-1], start=1)]
    case.system_out = "\n".join(out)
    expect = cell.get("expect")
    if expect:
        if last["verdict"] == "fail" and any(re.search(expect, r["title"]) for r in reports):
            return case  # the lab can still see what it must
        case.result = [Failure(f"canary lost: no report matching {expect!r}: {last.get('reason', '')}",
                               "canary-lost")]
        return case
    if last["verdict"] == "error":
        case.result = [Error(last.get("reason", ""), "infrastructure")]
    elif last["verdict"] == "fail" and reports:
        first = next((r for r in reports if not r.get("known")), reports[0])
        known = all(r.get("known") for r in reports)
        failure = Failure(("known issue: " if known else "") + first["title"],
                          "known-issue" if known else "kernel-report")
        failure.text = texts.get(first["signature"]) or last.get("reason", "")
        case.result = [failure]
    elif last["verdict"] == "fail":
        case.result = [Failure(last.get("reason", ""), "kernel-failure")]
    return case


def document(nightly: Dict[str, Any]) -> JUnitXml:
    """The JUnit XML of a loaded nightly (folders.load_nightly)."""
    xml = JUnitXml("labrunner " + str(nightly["doc"].get("suite", "")))
    suites: Dict[str, TestSuite] = {}
    for cell in nightly["doc"]["cells"].values():
        suite = suites.get(cell["test"])
        if suite is None:
            suite = suites[cell["test"]] = TestSuite(cell["test"])
            suite.timestamp = nightly["doc"].get("started_at")
        suite.add_testcase(_case(cell, nightly["runs"]))
    for suite in suites.values():
        suite.update_statistics()
        xml.add_testsuite(suite)
    xml.update_statistics()
    return xml


def write(folder: Path, nightly: Optional[Dict[str, Any]] = None) -> Path:
    """FOLDER/junit.xml for the nightly in FOLDER; its path."""
    nightly = nightly or folders.load_nightly(folder)
    xml = document(nightly)
    path = folder / "junit.xml"
    write_atomic(path, b'<?xml version="1.0" encoding="utf-8"?>\n' + xml.tostring() + b"\n", mode=0o644)
    return path
