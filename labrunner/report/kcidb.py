"""kcidb.json: a nightly in KernelCI's KCIDB I/O schema 5.3, validated with kcidb-io before it is written.

- checkouts: one per kernel source: a source recipe's base commit and the patchset hash of its patches,
  a Debian package by its name and version, a bzImage by its release;
- builds: one per kernel (its content key: the same build in two nightlies is one object); a kernel
  that did not build is a build with status FAIL (ERROR when the host was to blame);
- tests: one per run, path "labrunner.<test>": PASS; FAIL for a kernel failure (report, hang, CPU that
  would not come or go); ERROR when only the workload failed; MISS for infrastructure errors and
  interrupted runs; SKIP for cells a cut-short nightly never ran;
- issues: one per report signature, and one per known_issues entry of lab.yaml that matched;
- incidents: one per report in a run (present: true), to its signature's issue and, when known, to
  the known issue too.
log_url and output_files are set only with lab.yaml's reports.results_url (KCIDB wants https URLs).
Submitting is out of scope; the README has the curl line.
"""

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from kcidb_io.schema import V5_3

from ..cache import write_atomic
from ..config import KnownIssue, Lab, Reports
from . import folders

_PATH_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def test_path(test: str) -> str:
    return "labrunner." + _PATH_UNSAFE.sub("_", test)


def status(attempt: Dict[str, Any]) -> str:
    verdict, flags = attempt.get("verdict"), set(attempt.get("flags", []))
    if verdict == "pass":
        return "PASS"
    if verdict == "error":
        return "MISS"
    if attempt.get("reports") or flags & {"splat", "hang", "unresponsive", "hotplug-failure", "selftest-failed", "clock-stopped"}:
        return "FAIL"
    return "ERROR"  # the workload failed or timed out with nothing from the kernel


def _checkout(origin: str, kernel: Dict[str, Any], started: Optional[str]) -> Dict[str, Any]:
    commit, patches = kernel.get("commit"), kernel.get("patchset_hash", "")
    c: Dict[str, Any] = {"origin": origin, "misc": {"labrunner_kernel": kernel.get("name"),
                                                    "source": kernel.get("source")}}
    if commit and re.fullmatch(r"[0-9a-f]{40}", commit):
        c.update(id=f"{origin}:{commit}" + (f"+{patches}" if patches else ""), git_commit_hash=commit,
                 patchset_hash=patches or "", valid=True)
    else:
        c.update(id=f"{origin}:{kernel.get('source') or kernel.get('name')}")
    if kernel.get("release"):
        c["git_commit_name"] = kernel["release"]
    if started:
        c["start_time"] = started
    return c


def _known_id(origin: str, regex: str) -> str:
    return f"{origin}:known-{hashlib.sha256(regex.encode()).hexdigest()[:12]}"


def document(nightly: Dict[str, Any], reports: Reports = Reports(), known: Sequence[KnownIssue] = ()) -> Dict[str, Any]:
    """The KCIDB document of a loaded nightly (folders.load_nightly); validated. KNOWN: lab.yaml's
    known_issues, for the issues the known reports belong to."""
    origin, doc = reports.origin, nightly["doc"]
    nid, started = doc.get("id", "nightly"), doc.get("started_at")
    checkouts: Dict[str, Dict[str, Any]] = {}
    builds: Dict[str, Dict[str, Any]] = {}
    by_kernel: Dict[str, str] = {}  # kernel name -> build id
    for run in nightly["runs"].values():
        k = run["record"].get("kernel") or {}
        if not k.get("name"):
            continue
        c = _checkout(origin, k, started)
        checkouts.setdefault(c["id"], c)
        bid = f"{origin}:{k['name']}-{k.get('source') or k.get('release')}"
        builds.setdefault(bid, {"id": bid, "origin": origin, "checkout_id": c["id"], "architecture": "x86_64",
                                "config_name": k["name"], "status": "PASS"})
        by_kernel.setdefault(k["name"], bid)
    for cell in doc["cells"].values():  # kernels that never booted: no build, or a failed one
        name = cell["kernel"]
        if name in by_kernel:
            continue
        cid, bid = f"{origin}:{nid}.{name}", f"{origin}:{nid}.{name}"
        checkouts.setdefault(cid, {"id": cid, "origin": origin, "misc": {"labrunner_kernel": name}})
        build = {"id": bid, "origin": origin, "checkout_id": cid, "architecture": "x86_64", "config_name": name}
        broken = next((a for a in cell.get("attempts", []) if "kernel" in a.get("flags", [])), None)
        if broken:
            build.update(status="FAIL" if broken["verdict"] == "fail" else "ERROR",
                         log_excerpt=broken.get("reason", "")[:16000])
        builds[bid] = build
        by_kernel[name] = bid
    tests: List[Dict[str, Any]] = []
    issues: Dict[str, Dict[str, Any]] = {}
    incidents: List[Dict[str, Any]] = []
    for key, cell in doc["cells"].items():
        bid = by_kernel[cell["kernel"]]
        attempts = [a for a in cell.get("attempts", []) if a.get("run")]
        if not cell.get("attempts"):
            tests.append({"id": f"{origin}:{nid}.{_PATH_UNSAFE.sub('_', key)}", "origin": origin, "build_id": bid,
                          "path": test_path(cell["test"]), "status": "SKIP",
                          "comment": "not run: the nightly ended before this cell"})
        for number, attempt in enumerate(attempts, start=1):
            run = nightly["runs"].get(attempt["run"], {})
            record = run.get("record", {})
            tid = f"{origin}:{attempt['run']}"
            test = {"id": tid, "origin": origin, "build_id": bid, "path": test_path(cell["test"]),
                    "status": status(attempt), "comment": attempt.get("reason", "")[:1000],
                    "misc": {"nightly": nid, "cell": key, "attempt": number, "verdict": attempt.get("verdict"),
                             "flags": attempt.get("flags", []), "expect": cell.get("expect")}}
            if record.get("started_at"):
                test["start_time"] = record["started_at"]
            if isinstance(record.get("duration_s"), (int, float)):
                test["duration"] = record["duration_s"]
            qemu = record.get("qemu") or {}
            if qemu or doc.get("host"):
                test["environment"] = {"comment": f"QEMU {qemu.get('version', '?')} ({qemu.get('accel', '?')})"
                                                  + (f" on {doc['host']}" if doc.get("host") else "")}
            if reports.results_url:
                base = f"{reports.results_url}/{nid}/runs/{attempt['run']}"
                test["log_url"] = f"{base}/console.log"
                test["output_files"] = [{"name": f, "url": f"{base}/{f}"} for f in run.get("files", [])
                                        if f != "console.log"]
            tests.append(test)
            for r in attempt.get("reports", []):
                iid = f"{origin}:{r['signature']}"
                issues.setdefault(iid, {"id": iid, "version": 1, "origin": origin, "comment": r["title"],
                                        "culprit": {"code": True}, "misc": {"title": r["title"]}})
                links = [iid]
                k = folders.known_issue(known, r["title"]) if r.get("known") else None
                if k is not None:
                    kid = _known_id(origin, k.title)
                    issue = {"id": kid, "version": 1, "origin": origin, "comment": k.note or k.title,
                             "misc": {"known_issue": k.title}}
                    if k.link and k.link.startswith("https://"):
                        issue["report_url"] = k.link
                    issues.setdefault(kid, issue)
                    links.append(kid)
                for link in links:
                    incidents.append({"id": f"{tid}.{link.split(':', 1)[1]}", "origin": origin, "issue_id": link,
                                      "issue_version": 1, "build_id": bid, "test_id": tid, "present": True,
                                      "misc": {"occurrences": r.get("occurrences", 1)}})
    out = {"version": {"major": V5_3.major, "minor": V5_3.minor}, "checkouts": list(checkouts.values()),
           "builds": list(builds.values()), "tests": tests, "issues": list(issues.values()), "incidents": incidents}
    V5_3.validate_exactly(out)  # an invalid document is a bug here, never written
    return out


def write(folder: Path, nightly: Optional[Dict[str, Any]] = None, lab: Optional[Lab] = None) -> Path:
    """FOLDER/kcidb.json for the nightly in FOLDER; its path."""
    nightly = nightly or folders.load_nightly(folder, lab)
    data = document(nightly, lab.reports if lab else Reports(), lab.known_issues if lab else ())
    path = folder / "kcidb.json"
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode(), mode=0o644)
    return path
