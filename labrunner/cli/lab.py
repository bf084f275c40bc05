"""The command line of the lab part: `labrunner nightly`, `labrunner bisect` and `labrunner results
ls|show|diff|import|prune|report|kcidb`.

Each command imports the parts it uses (see cli/__init__.py).

Exit status of nightly and results diff: 0 nothing new, 1 a new regression or a lost canary, 2 usage or
configuration error, 3 some cells reached no verdict (infrastructure only).
"""

import json
import logging
import shutil
import time
import webbrowser
from pathlib import Path
from typing import Any, Dict, Optional

from ..errors import UserError
from ..build import kbuild
from ..lab.bisect_search import CONFIDENCE


def _results(lab, args) -> Path:
    return args.results or lab.results_dir


def cmd_nightly(args, lab, progress) -> int:
    from ..lab import nightly as nightly_mod
    from ..report import files as report_files
    executor = nightly_mod.open_executor(lab, args.executor, args.jobs)
    if args.verbose < 2:
        # distributed (imported for a dask executor) logs each reconnection attempt with a traceback;
        # the nightly's own error says what was lost. `labrunner worker` keeps dask's log: it is a service's.
        for name in ("distributed", "distributed.client"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        result = nightly_mod.run_nightly(lab, args.suite, executor, results=_results(lab, args), resume=args.resume,
                                         progress=progress)
        where = executor.describe()
    finally:
        progress.close()
        executor.shutdown()
    print(format_comparison(result["comparison"]))
    print(f"{result['summary']}; nightly: {result['folder']} ({where})")
    page, *others = report_files.write_nightly(Path(result["folder"]), lab)
    print(f"report: {page} (also {', '.join(p.name for p in others)})")
    return result["exit"]


def cmd_worker(args, lab, progress) -> int:
    from ..lab import worker as worker_mod  # imports distributed: only for this command

    say = lambda s: print(f"labrunner worker: {s}", flush=True)  # noqa: E731  a service's log, not a status line
    worker_mod.serve(args.scheduler, lab.path, slots=args.slots, name=args.name, listen=args.listen, progress=say)
    return 0


def cmd_bisect(args, lab, progress) -> int:
    from ..lab import bisect as bisect_mod
    from ..lab import executor as executor_mod
    results = _results(lab, args)
    if args.resume:
        folder = results / args.resume
        if not (folder / "bisect.json").is_file():
            raise UserError(f"no bisection '{args.resume}' under {results}")
    else:
        kernel = lab.pick("kernels", args.kernel)
        if kernel.kind != "source":
            raise UserError(f"kernel '{kernel.name}' is not built from source: a bisection needs its git history")
        test = lab.pick("tests", args.test)
        if args.series and not args.base:
            raise UserError("--series needs --base REF (the commit the series applies to)")
        if not args.series and not (args.good and args.bad):
            raise UserError("give --good REF and --bad REF, or --series MBOX and --base REF (or --resume ID)")
        scratch = results / ".series" / f"{args.series.stem}-{int(time.time())}" if args.series else None
        # the series file first: a missing one is said before the source is imported
        patches = bisect_mod.split_series(args.series, scratch / "patches") if args.series else []
        repo, _ = kbuild.source_commit(kernel.source, lab.cache_dir, progress)
        if args.series:
            states, series = bisect_mod.series_states(repo, patches, args.base, scratch), [str(p) for p in patches]
        else:
            states, series = bisect_mod.commit_states(repo, args.good, args.bad), []
        plan = bisect_mod.Plan(kernel=kernel.name, test=test.name, states=states, series=series, match=args.match,
                               confidence=args.confidence, max_runs=args.max_runs, duration=args.duration)
        folder = bisect_mod.start(plan, results)
    slots = executor_mod.local_slots(lab, args.jobs)
    executor = executor_mod.LocalExecutor(slots) if slots > 1 else None
    print(f"bisection: {folder} (labrunner bisect --resume {folder.name} goes on from here)"
          + (f", {slots} guests at once" if executor else ""), flush=True)
    try:
        doc = bisect_mod.run_bisect(lab, folder, progress, executor=executor)
    finally:
        if executor:
            executor.shutdown()
        progress.close()
    answer = doc["answer"]
    for c in answer["candidates"]:
        print(f"  {c['p']:7.2%}  {', '.join(c['states'])}")
    spent = sum(s["runs"] + s["excluded"] for s in doc["states"])
    built = sum(s["built"] for s in doc["states"])
    print(f"{answer['summary']}\n{spent} runs, {built} builds, {doc['wall_s'] / 60:.0f} min, p(bug shows) about "
          f"{answer['p_bug']:.2f}; {folder / 'bisect.log'}")
    return answer["exit"]


def format_comparison(c: Dict[str, Any]) -> str:
    """What is new first, then the rest of the cells, then the reports that changed."""
    from ..lab import compare as compare_mod
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
    from ..lab.store import Store, import_folder
    from ..report import files as report_files, folders as report_folders, kcidb
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
    from ..report import files as report_files, folders as report_folders
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


def _diff(results: Path, store, a: Optional[str], b: Optional[str]) -> int:
    """B against A (STORE: the results' lab.Store); by default the newest nightly against the one before
    it, of the same suite."""
    from ..lab import compare as compare_mod, nightly as nightly_mod
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
                       description="Run every cell of SUITE (default: defaults.suite) in guest slots, here or on the "
                                   "lab hosts of a dask cluster (--executor, `labrunner worker`), record each run, "
                                   "compare with the previous nightly of the suite and print what is new.",
                       epilog="Exit status: 0 nothing new, 1 a new regression or a lost canary, 2 configuration "
                              "error, 3 some cells reached no verdict (infrastructure errors only).")
    n.add_argument("suite", nargs="?", help="suite name from lab.yaml")
    n.add_argument("--jobs", type=int, help="guests at once here (default: lab.yaml's executor.slots, or auto)")
    n.add_argument("--executor", metavar="ADDRESS",
                   help="run on the dask cluster whose scheduler is ADDRESS (tcp://HOST:8786), or 'local' "
                        "(default: lab.yaml's executor)")
    n.add_argument("--results", type=Path, help="results root (default: results/ beside lab.yaml)")
    n.add_argument("--resume", metavar="ID", help="finish an interrupted nightly: run only what is missing")
    n.set_defaults(func=call, lab_func=cmd_nightly)

    w = sub.add_parser("worker", help="make this host a lab host of a dask cluster, for nightlies elsewhere",
                       description="Join the dask scheduler at SCHEDULER as a lab host with N guest slots, and run "
                                   "what nightlies started with --executor SCHEDULER send, from this checkout and "
                                   "its lab.yaml (which must equal the client's). Checks the host first: a host "
                                   "that cannot run guests does not join. Runs until the scheduler goes away or "
                                   "Ctrl-C; the runs under way are stopped, their guests first.",
                       epilog="example: dask scheduler --host 127.0.0.1 &  labrunner worker tcp://127.0.0.1:8786")
    w.add_argument("scheduler", metavar="SCHEDULER", help="the scheduler's address, tcp://HOST:PORT or tls://")
    w.add_argument("--slots", type=int, help="guests at once (default: lab.yaml's executor.slots, or auto)")
    w.add_argument("--name", help="the worker's name in the cluster (default: dask's)")
    w.add_argument("--listen", metavar="HOST", help="the address to listen on (default: the one that reaches the "
                                                     "scheduler)")
    w.set_defaults(func=call, lab_func=cmd_worker)

    b = sub.add_parser("bisect", help="which commit, or which patch of a series, brought a report in",
                       description="Bisect the first-parent commits of kernel K between --good and --bad, or the "
                                   "patches of --series on --base, running TEST on each state until one culprit "
                                   "holds --confidence. Flaky bugs are handled by probability: every run counts, "
                                   "a stray report on a good state does not derail it, and a state that does not "
                                   "build comes back as part of a range.",
                       epilog="Exit status: 0 culprit found; 1 the bug did not reproduce at the bad end, the good "
                              "end shows it too, or no answer within --max-runs; 2 usage; 3 infrastructure.")
    b.add_argument("--kernel", help="a source kernel of lab.yaml (its recipe: tree, config, patches)")
    b.add_argument("--good", metavar="REF", help="a commit without the bug")
    b.add_argument("--bad", metavar="REF", help="a commit with the bug")
    b.add_argument("--series", type=Path, metavar="MBOX", help="a patch series: an mbox, a series file or a patch "
                   "(made commits on --base; the recipe's own patches go on top of each state)")
    b.add_argument("--base", metavar="REF", help="the commit the series applies to")
    b.add_argument("--test", help="the test to run (default: defaults.test)")
    b.add_argument("--match", metavar="REGEX", help="the bug: report titles matching this (default: the "
                                                     "signature of the first report at the bad end)")
    b.add_argument("--confidence", type=float, default=CONFIDENCE,
                   help=f"stop when one culprit has this posterior probability (default {CONFIDENCE}: lower, "
                        "a bug that shows in 30%% of runs was named right in under 95%% of simulated "
                        "bisections; README)")
    b.add_argument("--max-runs", type=int, default=120, help="give up after this many runs (default 120)")
    b.add_argument("--duration", type=int, help="seconds per run (default: the test's)")
    b.add_argument("--jobs", type=int, help="guests at once, each run its own `labrunner run` (default: lab.yaml's "
                                            "executor.slots, or as many as this host's cores and memory carry)")
    b.add_argument("--resume", metavar="ID", help="go on with an interrupted bisection")
    b.add_argument("--results", type=Path, help="results root (default: results/ beside lab.yaml)")
    b.set_defaults(func=call, lab_func=cmd_bisect)

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
