"""What is new since last night: one nightly against the one before it, as pure functions of their
nightly.json documents.

Per kernel x test, its repeats count as `fail:runs` on both sides (LKP's form), and get a state:
- new regression: failing now, not before (and not flipping back and forth lately: then unstable);
- fixed, still failing, pass;
- unstable: pass and fail alternated more than once over the recent history (KernelCI's word);
- known: it fails only with reports that known_issues lists (a hang after them included: a guest
  falls silent after its last report, and a known oops that kills a task holding CPU-hotplug's lock
  wedges the guest as surely as a new one would);
- infra-only: no run reached a verdict (infrastructure errors);
- canary ok / canary lost: a canary must fail with its expected report every time; if it does not,
  the lab has lost its power to detect, which is reported apart from kernel regressions.
Per report signature: new / still / gone, with occurrence counts; known reports are never new, and a
report only canaries gave, as they were meant to, is "expected".
"""

import re
from typing import Any, Dict, List, Optional, Tuple

HISTORY = 10  # nights looked back at for flips
NEW, FIXED, STILL, PASS, UNSTABLE, KNOWN, INFRA = ("new regression", "fixed", "still failing", "pass", "unstable",
                                                   "known", "infra-only")
CANARY_OK, CANARY_LOST = "canary ok", "canary lost"


def outcome(attempt: Dict[str, Any]) -> str:
    """A run's outcome for counting: pass, fail, known (fails only with known reports) or infra."""
    if attempt["verdict"] == "error":
        return "infra"
    if attempt["verdict"] == "pass":
        return "pass"
    reports = attempt.get("reports", [])
    if reports and all(r.get("known") for r in reports):
        return "known"
    return "fail"


def groups(nightly: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """kernel/test -> {fails, runs, infra, known, expect, outcomes, canary_misses}, from each repeat's last attempt."""
    out: Dict[str, Dict[str, Any]] = {}
    for cell in nightly["cells"].values():
        if not cell["attempts"]:
            continue  # not run (an incomplete nightly)
        g = out.setdefault(f"{cell['kernel']}/{cell['test']}", {
            "kernel": cell["kernel"], "test": cell["test"], "expect": cell.get("expect"),
            "fails": 0, "runs": 0, "infra": 0, "known": 0, "canary_misses": 0})
        last = cell["attempts"][-1]
        o = outcome(last)
        if o == "infra":
            g["infra"] += 1
            continue
        g["runs"] += 1
        g["fails"] += o == "fail"
        g["known"] += o == "known"
        if cell.get("expect"):
            titles = [r["title"] for r in last.get("reports", [])]
            g["canary_misses"] += not (last["verdict"] == "fail" and any(re.search(cell["expect"], t) for t in titles))
    return out


def _flips(sequence: List[bool]) -> int:
    return sum(a != b for a, b in zip(sequence, sequence[1:]))


def cell_state(before: Optional[Dict[str, Any]], after: Dict[str, Any], history: List[bool]) -> str:
    """AFTER's state against BEFORE (None: no such cell last night); HISTORY: failing or not on each
    earlier night with a verdict, oldest first."""
    if after["runs"] == 0:
        return INFRA
    if after.get("expect"):
        return CANARY_LOST if after["canary_misses"] else CANARY_OK
    failing, failed = after["fails"] > 0, bool(before and before["fails"] > 0)
    if failing and _flips([*history[-HISTORY:], True]) > 1:
        return UNSTABLE
    if failing:
        return STILL if failed else NEW
    if after["known"]:
        return KNOWN
    return FIXED if failed else PASS


def _signatures(nightly: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """signature -> title, count, known, and whether only canaries expecting it reported it."""
    out: Dict[str, Dict[str, Any]] = {}
    for cell in nightly["cells"].values():
        for attempt in cell["attempts"]:
            for r in attempt.get("reports", []):
                s = out.setdefault(r["signature"], {"title": r["title"], "count": 0, "known": bool(r.get("known")),
                                                    "expected": True})
                s["count"] += r.get("occurrences", 1)
                s["expected"] &= bool(cell.get("expect") and re.search(cell["expect"], r["title"]))
    return out


def compare(before: Optional[Dict[str, Any]], after: Dict[str, Any],
            history: List[Dict[str, Any]] = ()) -> Dict[str, Any]:
    """AFTER against BEFORE (the previous nightly of the suite, or None). HISTORY: older nightlies of
    the suite, oldest first, BEFORE included."""
    g_before = groups(before) if before else {}
    g_hist = [groups(n) for n in history]
    cells = []
    for name, g in groups(after).items():
        seq = [h[name]["fails"] > 0 for h in g_hist if name in h and h[name]["runs"]]
        b = g_before.get(name)
        cells.append({"cell": name, "kernel": g["kernel"], "test": g["test"], "expect": g["expect"],
                      "before": f"{b['fails']}:{b['runs']}" if b else None, "after": f"{g['fails']}:{g['runs']}",
                      "infra": g["infra"], "state": cell_state(b, g, seq)})
    s_before, s_after = _signatures(before) if before else {}, _signatures(after)
    splats = []
    for sig in sorted(set(s_before) | set(s_after)):
        a, b = s_before.get(sig), s_after.get(sig)
        state = "gone" if b is None else ("expected" if b["expected"] else "still" if a else
                                          "known" if b["known"] else "new")
        splats.append({"signature": sig, "title": (b or a)["title"], "state": state,
                       "before": a["count"] if a else 0, "after": b["count"] if b else 0})
    states = [c["state"] for c in cells]
    return {"before": before["id"] if before else None, "after": after["id"], "suite": after["suite"],
            "cells": cells, "splats": splats, "new_regressions": states.count(NEW),
            "canaries_lost": states.count(CANARY_LOST), "infra_only": states.count(INFRA)}


def exit_status(comparison: Dict[str, Any]) -> Tuple[int, str]:
    """1: a new regression or a lost canary; 3: some cells reached no verdict, nothing else is wrong; 0."""
    if comparison["new_regressions"] or comparison["canaries_lost"]:
        return 1, f"{comparison['new_regressions']} new regressions, {comparison['canaries_lost']} canaries lost"
    if comparison["infra_only"]:
        return 3, f"{comparison['infra_only']} cells reached no verdict (infrastructure errors)"
    return 0, "nothing new"
