"""What the reports read: a run folder and a nightly folder, as plain data, whatever state they are in.

A folder written by an older labrunner, or half-written by a killed run, still loads: what is missing
is None (or listed in "missing"), never an exception. The nightly's comparison is comparison.json
when the nightly finished, else computed from what ran; its history is the suite's earlier nightlies
in the results index.
"""

import json
import re
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..config import Lab
from ..lab import compare as compare_mod
from ..lab import nightly as nightly_mod
from ..lab.store import Store

TEXT_LIMIT = 4 * 1024 * 1024  # a runaway console is cut for the page, never read whole into it


def read_json(path: Path) -> Optional[Dict[str, Any]]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_text(path: Path) -> Optional[str]:
    try:
        with open(path, "rb") as f:
            return f.read(TEXT_LIMIT).decode("utf-8", "replace")
    except OSError:
        return None


def load_run(folder: Path) -> Dict[str, Any]:
    """run.json (or what can be said without it), and the names of the files beside it."""
    record = read_json(folder / "run.json")
    files = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.name not in ("run.json", "report.html")) if folder.is_dir() else []
    missing = [] if record is not None else ["run.json"]
    record = record or {"id": folder.name, "verdict": "error", "reason": "run.json is missing or unreadable: "
                                                                          "the run was killed before writing it"}
    record.setdefault("splats", [])
    for name in ("console.log", "qmp.jsonl"):
        if name not in files:
            missing.append(name)
    return {"record": record, "files": files, "missing": missing, "folder": folder}


def run_texts(folder: Path) -> Dict[str, Optional[str]]:
    return {name: read_text(folder / name) for name in ("console.log", "qmp.jsonl", "progress.jsonl")}


def load_nightly(folder: Path, lab: Optional[Lab] = None) -> Dict[str, Any]:
    """nightly.json, its comparison, the history of each cell, and every attempt's run.json."""
    doc = read_json(folder / "nightly.json")
    if doc is None:
        raise FileNotFoundError(f"{folder / 'nightly.json'} is missing or unreadable")
    doc.setdefault("cells", {})
    history: List[Dict[str, Any]] = []
    db = folder.parent / "lab.db"
    if db.is_file() and doc.get("suite") and doc.get("started_at"):
        store = Store(db)
        try:
            history = nightly_mod.earlier(doc, store)
        finally:
            store.close()
    comparison = read_json(folder / "comparison.json")
    if comparison is None:
        comparison = compare_mod.compare(history[-1] if history else None, doc, history)
    runs: Dict[str, Dict[str, Any]] = {}
    for cell in doc["cells"].values():
        for attempt in cell.get("attempts", []):
            if attempt.get("run"):
                run_dir = folder / "runs" / attempt["run"]
                runs[attempt["run"]] = load_run(run_dir)
    return {"doc": doc, "comparison": comparison, "history": history, "runs": runs, "folder": folder,
            "known": list(lab.known_issues) if lab else []}


def cell_history(key: str, history: List[Dict[str, Any]], doc: Dict[str, Any]) -> List[str]:
    """kernel/test's outcome on each of the last nights, oldest first, this one last: fail, pass,
    known, infra or none (not in that night's suite)."""
    out = []
    for n in [*history[-(compare_mod.HISTORY - 1):], doc]:
        g = compare_mod.groups(n).get(key)
        if g is None:
            out.append("none")
        elif g["runs"] == 0:
            out.append("infra")
        else:
            out.append("fail" if g["fails"] else "known" if g["known"] else "pass")
    return out


def known_issue(lab_known, title: str):
    """The first known_issues entry whose title matches, or None."""
    return next((k for k in lab_known if re.search(k.title, title)), None)
