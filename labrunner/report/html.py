"""The HTML pages: report.html in a run's folder and in a nightly's folder, from Jinja2 templates.

The templates (templates/*.html) hold all the markup and the inline CSS; this module only gathers
the data they show. Pages are self-contained: no script, no font or style from anywhere else, links
relative to the page, so a results folder reads the same copied to a laptop or served over http.
"""

import datetime
from pathlib import Path
from typing import Any, Dict, List, Optional

import jinja2

from ..cache import write_atomic
from ..config import Lab
from ..lab import compare as compare_mod
from . import folders, timeline

STATE_CLASS = {compare_mod.NEW: "new", compare_mod.FIXED: "fixed", compare_mod.STILL: "still",
               compare_mod.PASS: "pass", compare_mod.UNSTABLE: "unstable", compare_mod.KNOWN: "known",
               compare_mod.INFRA: "infra", compare_mod.CANARY_OK: "canary-ok", compare_mod.CANARY_LOST: "canary-lost"}
STATE_ORDER = [compare_mod.NEW, compare_mod.CANARY_LOST, compare_mod.UNSTABLE, compare_mod.INFRA, compare_mod.STILL,
               compare_mod.FIXED, compare_mod.KNOWN, compare_mod.CANARY_OK, compare_mod.PASS]

# Chainable: a field an older or half-written folder lacks renders empty, never an exception.
_ENV = jinja2.Environment(loader=jinja2.PackageLoader("labrunner.report", "templates"),
                          autoescape=True, undefined=jinja2.ChainableUndefined, trim_blocks=True, lstrip_blocks=True)


def _duration(start: Optional[str], end: Optional[str]) -> Optional[str]:
    try:
        s = datetime.datetime.fromisoformat(start) if start else None
        e = datetime.datetime.fromisoformat(end) if end else None
    except ValueError:
        return None
    if not (s and e):
        return None
    seconds = int((e - s).total_seconds())
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min" if seconds >= 3600 else \
        f"{seconds // 60} min {seconds % 60:02d} s"


def run_page(folder: Path, lab: Optional[Lab] = None) -> str:
    run = folders.load_run(folder)
    record = run["record"]
    texts = folders.run_texts(folder)
    tl = timeline.build(record, texts["console.log"], texts["qmp.jsonl"], texts["progress.jsonl"])
    known = list(lab.known_issues) if lab else []
    splats = [{**s, "known_issue": folders.known_issue(known, s.get("title", ""))} for s in record["splats"]]
    return _ENV.get_template("run.html").render(
        r=record, kernel=record.get("kernel") or {}, qemu=record.get("qemu") or {}, splats=splats,
        files=run["files"], missing=run["missing"], timeline=timeline.layout(tl),
        duration=_duration(record.get("started_at"), record.get("finished_at")))


def _matrix(n: Dict[str, Any]) -> Dict[str, Any]:
    doc, comparison = n["doc"], n["comparison"]
    by_cell = {c["cell"]: c for c in comparison.get("cells", [])}
    kernels: List[str] = []
    tests: List[str] = []
    attempts: Dict[str, List[Dict[str, Any]]] = {}
    for key, cell in doc["cells"].items():
        name = f"{cell['kernel']}/{cell['test']}"
        kernels += [cell["kernel"]] if cell["kernel"] not in kernels else []
        tests += [cell["test"]] if cell["test"] not in tests else []
        for i, a in enumerate(cell.get("attempts", []), start=1):
            attempts.setdefault(name, []).append({
                "label": f"#{cell.get('repeat', '?')}" + (f".{i}" if i > 1 else ""), "verdict": a.get("verdict"),
                "reason": a.get("reason", ""), "href": f"runs/{a['run']}/report.html" if a.get("run") else None})
    rows = []
    for k in kernels:
        row = []
        for t in tests:
            name = f"{k}/{t}"
            in_suite = any(c["kernel"] == k and c["test"] == t for c in doc["cells"].values())
            c = by_cell.get(name)
            state = c["state"] if c else ("not run" if in_suite else None)
            row.append({"name": name, "in_suite": in_suite, "state": state,
                        "cls": STATE_CLASS.get(state, "none"), "after": c["after"] if c else None,
                        "before": c["before"] if c else None, "infra": c["infra"] if c else 0,
                        "history": folders.cell_history(name, n["history"], doc) if in_suite else [],
                        "attempts": attempts.get(name, [])})
        rows.append({"kernel": k, "cells": row})
    return {"tests": tests, "rows": rows}


def _splats(n: Dict[str, Any]) -> List[Dict[str, Any]]:
    where: Dict[str, Dict[str, Any]] = {}
    for cell in n["doc"]["cells"].values():
        for a in cell.get("attempts", []):
            for r in a.get("reports", []):
                w = where.setdefault(r["signature"], {"cells": [], "runs": []})
                name = f"{cell['kernel']}/{cell['test']}"
                w["cells"] += [name] if name not in w["cells"] else []
                if a.get("run"):
                    w["runs"].append({"id": a["run"], "href": f"runs/{a['run']}/report.html"})
    order = {"new": 0, "still": 1, "known": 2, "expected": 3, "gone": 4}
    out = []
    for s in sorted(n["comparison"].get("splats", []), key=lambda s: (order.get(s["state"], 9), s["title"])):
        w = where.get(s["signature"], {"cells": [], "runs": []})
        out.append({**s, **w, "known_issue": folders.known_issue(n["known"], s["title"])})
    return out


def nightly_page(folder: Path, lab: Optional[Lab] = None, n: Optional[Dict[str, Any]] = None) -> str:
    n = n or folders.load_nightly(folder, lab)
    doc = n["doc"]
    first = next((r["record"] for r in n["runs"].values() if r["record"].get("qemu")), {})
    counts = {}
    for c in n["comparison"].get("cells", []):
        counts[c["state"]] = counts.get(c["state"], 0) + 1
    summary = [{"state": s, "cls": STATE_CLASS[s], "count": counts[s]} for s in STATE_ORDER if s in counts]
    return _ENV.get_template("nightly.html").render(
        doc=doc, comparison=n["comparison"], matrix=_matrix(n), splats=_splats(n), summary=summary,
        qemu=first.get("qemu") or {}, nights=len(n["history"]) + 1,
        duration=_duration(doc.get("started_at"), doc.get("finished_at")))


def write(folder: Path, lab: Optional[Lab] = None, nightly: Optional[Dict[str, Any]] = None) -> Path:
    """Write FOLDER/report.html for a nightly folder (NIGHTLY: it loaded) or a run folder; its path."""
    page = nightly_page(folder, lab, nightly) if (folder / "nightly.json").is_file() else run_page(folder, lab)
    path = folder / "report.html"
    write_atomic(path, page.encode(), mode=0o644)
    return path
