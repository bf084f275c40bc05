"""One nightly: a suite's cells run on an executor, recorded in a folder of its own, compared with the
previous nightly of the suite.

results/nightly-<UTC time>-<suite>/ holds nightly.json and runs/, one ordinary run folder per run.
nightly.json (the suite, lab.yaml's hash, start and end, every cell's attempts) is rewritten after each
run, so a nightly killed halfway says how far it got, and --resume runs only what is missing. Kernels
are built or fetched before any guest starts; a kernel that does not build fails its cells with the
build's error, and the rest runs. A run that ends in an infrastructure error, or as a hang or a stopped
vCPU clock without a report, runs again (lab.yaml's retries); a kernel report is never retried away.
"""

import concurrent.futures
import json
import logging
import socket
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from .. import process
from ..build import kernel as kernel_mod
from ..config import Lab
from ..errors import BuildError, InfraError, LabError, UserError
from ..run.record import fresh_dir, now, utc_stamp, write_json_atomic
from . import compare as compare_mod
from .executor import Executor, Job, LocalExecutor, local_slots, run_bound
from .matrix import Cell, cells
from .store import Store

log = logging.getLogger(__name__)


def wants_retry(attempt: Dict[str, Any]) -> bool:
    """An infrastructure error, or a hang or a stopped vCPU clock with no kernel report: the host (TCG)
    may be to blame."""
    flags = attempt.get("flags", [])
    if "interrupted" in flags:
        return False
    return attempt["verdict"] == "error" or (bool({"hang", "clock-stopped"} & set(flags)) and "splat" not in flags)


def needs_run(cell: Dict[str, Any], retries: int) -> bool:
    """A cell never run, or one whose last run may have been the host's fault and has retries left.
    An interrupted attempt stays recorded but does not count: --resume runs that cell again."""
    attempts = [a for a in cell["attempts"] if "interrupted" not in a.get("flags", [])]
    return not attempts or (wants_retry(attempts[-1]) and len(attempts) <= retries)


def attempt_of(record: Dict[str, Any], lab: Lab, cell: Cell) -> Dict[str, Any]:
    """What a nightly keeps of a run: its verdict, and its reports that are not ignored, each marked
    known when known_issues lists it for this kernel and test."""
    def known(title: str) -> bool:
        return any(k.matches(title, cell.kernel, cell.test) for k in lab.known_issues)
    return {"run": record.get("id"), "dir": record.get("run_dir"), "verdict": record["verdict"],
            "reason": record["reason"], "flags": record.get("flags", []),
            "reports": [{"signature": s["signature"], "title": s["title"], "occurrences": s.get("occurrences", 1),
                         "known": known(s["title"])} for s in record.get("splats", []) if not s.get("ignored")]}


def job_of(lab: Lab, cell: Cell, runs: Path) -> Job:
    return Job(lab=lab.path, test=cell.test, kernel=cell.kernel, results=runs, duration=cell.duration,
               stop_on_first_splat=cell.expect is not None,  # a canary's point is its verdict
               timeout=run_bound(lab.tests[cell.test], cell.duration))


def open_executor(lab: Lab, address: Optional[str] = None, jobs: Optional[int] = None) -> Executor:
    """Where the nightly's runs go: ADDRESS (a dask scheduler, or "local"), else lab.yaml's executor;
    locally JOBS guests at once, else lab.yaml's slots, else as many as the host carries."""
    address = address or lab.scheduler
    if address and address != "local":
        from .dask_executor import DaskExecutor  # distributed takes a second to import: only when used
        return DaskExecutor(lab, address)
    return LocalExecutor(local_slots(lab, jobs))


def _start(lab: Lab, suite_name: Optional[str], results: Path, resume: Optional[str]) -> Path:
    if resume is not None:
        folder = results / resume
        if not (folder / "nightly.json").is_file():
            raise UserError(f"no nightly '{resume}' under {results} (labrunner results ls)")
        return folder
    name = suite_name or lab.defaults.suite
    if name not in lab.suites:
        raise UserError(f"no suite '{name}' in {lab.path}; known: {', '.join(sorted(lab.suites)) or 'none'}")
    folder = fresh_dir(results, f"nightly-{utc_stamp()}-{name}")
    # Microseconds: nightlies are ordered by their start, and two may start within one second.
    doc = {"id": folder.name, "suite": name, "lab_hash": lab.file_hash(), "host": socket.gethostname(),
           "started_at": now("microseconds"), "finished_at": None,
           "complete": False, "cells": {c.key: {"kernel": c.kernel, "test": c.test, "repeat": c.repeat,
                                               "duration": c.duration, "expect": c.expect, "attempts": []}
                                        for c in cells(lab.suites[name])}}
    write_json_atomic(folder / "nightly.json", doc)
    return folder


def run_nightly(lab: Lab, suite_name: Optional[str], executor: Executor, *, results: Path,
                resume: Optional[str] = None, progress: Callable[[str], None] = lambda s: None) -> Dict[str, Any]:
    """Run (or resume) a nightly to its end; its nightly.json, with "comparison" and "exit"."""
    folder = _start(lab, suite_name, results, resume)
    doc = json.loads((folder / "nightly.json").read_text())
    store = Store(results / "lab.db")
    save = lambda: write_json_atomic(folder / "nightly.json", doc)  # noqa: E731
    todo = [Cell(c["kernel"], c["test"], c["repeat"], c["duration"], c["expect"]) for c in doc["cells"].values()
            if needs_run(c, lab.retries)]
    broken = _kernels(lab, sorted({c.kernel for c in todo}), progress)
    for cell in [c for c in todo if c.kernel in broken]:
        doc["cells"][cell.key]["attempts"].append(broken[cell.kernel])
    todo = [c for c in todo if c.kernel not in broken]
    save()
    t0, total, done = time.monotonic(), len(todo), 0
    futures: Dict[concurrent.futures.Future, Cell] = {}
    try:
        for cell in todo:
            futures[executor.submit(job_of(lab, cell, folder / "runs"))] = cell
        while futures:
            finished, _ = concurrent.futures.wait(futures, timeout=5, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                cell = futures.pop(future)
                record = future.result()
                entry = doc["cells"][cell.key]
                entry["attempts"].append(attempt_of(record, lab, cell))
                store.add_run(record, doc["id"], cell.key, len(entry["attempts"]))
                if needs_run(entry, lab.retries):
                    futures[executor.submit(job_of(lab, cell, folder / "runs"))] = cell
                    total += 1
                else:
                    done += 1
                save()
            progress(_progress_line(doc, done, total, time.monotonic() - t0))
    except BaseException as e:
        executor.shutdown()  # every guest stops; the nightly stays incomplete, to --resume
        save()
        store.add_nightly(doc, folder)
        if isinstance(e, InfraError):
            raise InfraError(f"{e}\nthe nightly is incomplete; to finish it: labrunner nightly --resume {folder.name}") from None
        raise
    doc.update(complete=True, finished_at=now("microseconds"))
    save()
    store.add_nightly(doc, folder)
    comparison = _compare(doc, store, folder)
    store.close()
    status, why = compare_mod.exit_status(comparison)
    if status == 1 and lab.notify:
        _notify(lab.notify, comparison)
    return {**doc, "comparison": comparison, "exit": status, "summary": why, "folder": str(folder)}


def _kernels(lab: Lab, names: List[str], progress: Callable[[str], None]) -> Dict[str, Dict[str, Any]]:
    """Every kernel built or fetched before any guest starts; the failed ones, as their cells' attempt."""
    broken = {}
    for name in names:
        progress(f"kernel {name}")
        try:
            kernel_mod.resolve(lab.kernels[name], lab.cache_dir, progress)
        except LabError as e:
            verdict = "fail" if isinstance(e, BuildError) else "error"
            broken[name] = {"run": None, "dir": None, "verdict": verdict, "reason": f"kernel {name}: "
                            + " ".join(str(e).splitlines()[:4]), "flags": ["kernel"], "reports": []}
    return broken


def _progress_line(doc: Dict[str, Any], done: int, total: int, elapsed: float) -> str:
    last = [c["attempts"][-1] for c in doc["cells"].values() if c["attempts"]]
    fails = sum(a["verdict"] == "fail" for a in last)
    errors = sum(a["verdict"] == "error" for a in last)
    eta = f", ETA {elapsed / done * (total - done) / 60:.0f} min" if done else ""
    return f"nightly {doc['suite']}: {done}/{total} runs, {fails} fail, {errors} error, {elapsed / 60:.0f} min{eta}"


def earlier(doc: Dict[str, Any], store: Store) -> List[Dict[str, Any]]:
    """The complete nightlies of DOC's suite that started before it, oldest first, the last HISTORY."""
    rows = [r for r in store.nightlies(doc["suite"]) if r["complete"] and r["started_at"] < doc["started_at"]]
    paths = [Path(r["path"]) / "nightly.json" for r in rows[:compare_mod.HISTORY]]  # newest first
    return [json.loads(p.read_text()) for p in reversed(paths) if p.is_file()]


def _compare(doc: Dict[str, Any], store: Store, folder: Path) -> Dict[str, Any]:
    """Against the newest earlier complete nightly of the suite; written to comparison.json."""
    history = earlier(doc, store)
    comparison = compare_mod.compare(history[-1] if history else None, doc, history)
    write_json_atomic(folder / "comparison.json", comparison)
    return comparison


def _notify(command: str, comparison: Dict[str, Any]) -> None:
    # The user's own command line from lab.yaml, as cron would run it: through the shell.
    try:
        status, _, err = process.call(["sh", "-c", command], input=json.dumps(comparison), timeout=60,
                                      what="the notify command")
        if status != 0:
            log.warning("notify command exited %d: %s", status, err.strip()[-300:])
    except LabError as e:
        log.warning("notify command failed: %s", e)
