"""The command line of the lab part: `labrunner nightly` and `labrunner results ls|show|diff|import|prune|
report|kcidb`.

Exit status of nightly and results diff: 0 nothing new, 1 a new regression or a lost canary, 2 usage or
configuration error, 3 some cells reached no verdict (infrastructure only).
"""

import json
import shutil
import webbrowser
from pathlib import Path
from typing import Any, Dict, Optional

from ..errors import UserError
from ..lab import compare as compare_mod
from ..lab import executor as executor_mod
from ..lab import nightly as nightly_mod
from ..lab.store import Store, import_folder
from ..report import files as report_files
from ..report import folders as report_folders
from ..report import kcidb


def _results(lab, args) -> Path:
    return args.results or lab.results_dir


def cmd_nightly(args, lab, progress) -> int:
    machine = lab.machines[lab.defaults.machine]
    slots = args.jobs or lab.slots or executor_mod.auto_slots(**executor_mod.host_resources(), machine=machine)
    executor = executor_mod.LocalExecutor(slots)
    try:
        result = nightly_mod.run_nightly(lab, args.suite, executor, results=_results(lab, args), resume=args.resume,
                                         progress=progress)
    finally:
        progress.close()
        executor.shutdown()
    print(format_comparison(result["comparison"]))
    print(f"{result['summary']}; nightly: {result['folder']} ({slots} slot{'s' if slots != 1 else ''})")
    page, *others = report_files.write_nightly(Path(result["folder"]), lab)
    print(f"report: {page} (also {', '.join(p.name for p in others)})")
    return result["exit"]


def format_comparison(c: Dict[str, Any]) -> str:
    """What is new first, then the rest of the cells, then the reports that changed."""
    order = [compare_mod.NEW, compare_mod.CANARY_LOST, compare_mod.UNSTABLE, compare_mod.INFRA, compare_mod.FIXED,
             compare_mod.STILL, compare_mod.KNOWN, compare_mod.CANARY_OK, compare_mod.PASS]
    lines = [f"{c['suite']}: {c['after']} against {c['before'] or '(no earlier nightly)'}",
             f"  {'state':16} {'cell':48} {'before':>7} {'after':>7}"]
    for cell in sorted(c["cells"], key=lambda x: (order.index(x["state"]), x["cell"])):
        lines.append(f"  {cell['state']:16} {cell['cell'][:48]:48} {cell['before'] or '-':>7} {cell['after']:>7}")
    changed = [s for s in c["splats"] if s["state"] not in ("still", "expected")]
    if changed:
        lines.append("  reports:")
        lines += [f"    {s['state']:6} {s['before']:>3} -> {s['after']:<3} {s['title'][:90]}" for s in changed]
    return "\n".join(lines)


def _nightly_doc(results: Path, ident: str) -> Dict[str, Any]:
    path = results / ident / "nightly.json"
    if not path.is_file():
        raise UserError(f"no nightly '{ident}' under {results} (labrunner results ls)")
    return json.loads(path.read_text())


def cmd_results(args, lab, progress) -> int:
    results = _results(lab, args)
    if args.action == "import":
        counts = import_folder(Path(args.target or results), results / "lab.db")
        print(f"indexed {counts['nightlies']} nightlies and {counts['runs']} runs into {results / 'lab.db'}")
        return 0
    store = Store(results / "lab.db")
    try:
        if args.action == "ls":
            for n in store.nightlies():
                runs = store.runs(n["id"])
                fails = sum(r["verdict"] == "fail" for r in runs)
                print(f"{n['id']:48} {'complete' if n['complete'] else 'INCOMPLETE':10} {len(runs):4} runs {fails:4} fail")
            return 0
        if args.action == "show":
            return _show(results, args.target)
        if args.action in ("report", "kcidb"):
            if args.target is None:
                raise UserError(f"results {args.action} needs a nightly or run id (labrunner results ls)")
            folder = report_files.locate(results, args.target)
            if args.action == "kcidb":
                if not (folder / "nightly.json").is_file():
                    raise UserError(f"{args.target} is a run; KCIDB documents are made of nightlies")
                print(json.dumps(kcidb.document(report_folders.load_nightly(folder, lab), lab.reports,
                                                lab.known_issues), indent=2))
                return 0
            paths = report_files.write(folder, lab)
            print("\n".join(str(p) for p in paths))
            if args.open:
                webbrowser.open(paths[0].resolve().as_uri())
            return 0
        if args.action == "diff":
            return _diff(results, store, args.target, args.other)
        if args.action == "prune":
            for n in store.nightlies()[args.keep:]:
                shutil.rmtree(n["path"], ignore_errors=True)
                store.delete_nightly(n["id"])
                print(f"removed {n['id']}")
            return 0
    finally:
        store.close()
    raise UserError(f"unknown results action {args.action}")


def _show(results: Path, ident: Optional[str]) -> int:
    if ident is None:
        raise UserError("results show needs a nightly or run id (labrunner results ls)")
    folder = report_files.locate(results, ident)
    if (folder / "nightly.json").is_file():
        doc = _nightly_doc(results, ident)
        print(f"{doc['id']}: suite {doc['suite']}, lab.yaml {doc['lab_hash']}, {doc['started_at']} .. "
              f"{doc['finished_at'] or 'incomplete'}")
        for key, cell in doc["cells"].items():
            for i, a in enumerate(cell["attempts"], start=1):
                print(f"  {key:48} #{i} {a['verdict']:5} {a['reason'][:100]}")
    else:
        record = report_folders.load_run(folder)["record"]
        print(json.dumps({k: record.get(k) for k in ("id", "test", "kernel", "verdict", "reason", "flags")}, indent=2))
    return 0


def _diff(results: Path, store: Store, a: Optional[str], b: Optional[str]) -> int:
    """B against A; by default the newest nightly against the one before it, of the same suite."""
    if b is None and a is not None:
        a, b = None, a
    after = _nightly_doc(results, b) if b else None
    if after is None:
        newest = [n for n in store.nightlies() if n["complete"]]
        if not newest:
            raise UserError("no complete nightly to compare (labrunner nightly)")
        after = _nightly_doc(results, newest[0]["id"])
    history = nightly_mod.earlier(after, store)
    before = _nightly_doc(results, a) if a else (history[-1] if history else None)
    comparison = compare_mod.compare(before, after, history)
    print(format_comparison(comparison))
    status, why = compare_mod.exit_status(comparison)
    print(why)
    return status


def add_parsers(sub, call) -> None:
    """The lab commands' parsers; CALL(args) loads lab.yaml and runs args.lab_func(args, lab, progress)."""
    n = sub.add_parser("nightly", help="run a suite (kernels x tests x repeats) and report what is new",
                       description="Run every cell of SUITE (default: defaults.suite) in guest slots, record each "
                                   "run, compare with the previous nightly of the suite and print what is new.",
                       epilog="Exit status: 0 nothing new, 1 a new regression or a lost canary, 2 configuration "
                              "error, 3 some cells reached no verdict (infrastructure errors only).")
    n.add_argument("suite", nargs="?", help="suite name from lab.yaml")
    n.add_argument("--jobs", type=int, help="guests at once (default: lab.yaml's executor.slots, or auto)")
    n.add_argument("--results", type=Path, help="results root (default: results/ beside lab.yaml)")
    n.add_argument("--resume", metavar="ID", help="finish an interrupted nightly: run only what is missing")
    n.set_defaults(func=call, lab_func=cmd_nightly)

    r = sub.add_parser("results", help="the results index: list, show, compare, rebuild, prune; reports",
                       description="ls: nightlies, newest first. show ID: a nightly's cells or a run. diff [A] [B]: "
                                   "B against A (default: the newest nightly against the one before it). import "
                                   "[DIR]: rebuild results/lab.db from the run folders. prune --keep N: remove all "
                                   "but the newest N nightlies, folders and index rows. report ID: write the "
                                   "report.html of a nightly or a run (a nightly's junit.xml and kcidb.json too) "
                                   "and print their paths. kcidb ID: print a nightly's KCIDB 5.3 document.")
    r.add_argument("action", choices=["ls", "show", "diff", "import", "prune", "report", "kcidb"])
    r.add_argument("target", nargs="?", help="a nightly or run id; for import, the folder to index")
    r.add_argument("other", nargs="?", help="for diff: the newer nightly")
    r.add_argument("--keep", type=int, default=30, help="prune: nightlies kept (default: 30)")
    r.add_argument("--open", action="store_true", help="report: open the page in a browser")
    r.add_argument("--results", type=Path, help="results root (default: results/ beside lab.yaml)")
    r.set_defaults(func=call, lab_func=cmd_results)
