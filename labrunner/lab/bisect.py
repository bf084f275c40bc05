"""One bisection: which commit between a good and a bad ref of a kernel recipe, or which patch of a
series on a base, brought a report in, even when it shows in only some runs.

States are the good end, then each first-parent commit up to the bad end (or the base, then the base
plus the first 1..N patches, made commits on the base). A state is built in the recipe's warm build
directory (cached by content, so a state tested again is not rebuilt), booted, and tested with the run
stopping at its first report: one run at a time in this process, or as many at once as the executor has
slots, each its own `labrunner run` of the state's staged build (kernels/ in the bisection's folder).
The search (bisect_search) says which state to run next and when one class of culprits holds the
confidence asked for. What counts as the bug: the signature of the first report at the bad end, or
titles matching --match. A run with another report, or none but a hang, an error or an interruption,
tells nothing about the bug: it is recorded and left out of the evidence; so does a clean run after an
ignored lockdep report, when the bug is lockdep's (lockdep was off). A state that does not build
keeps its share of probability, and comes back as part of a range if it is among the candidates.

results/bisect-<UTC time>-<kernel>/ holds bisect.json (rewritten after every run: --resume goes on
from it), bisect.log (the evidence as git bisect commands: `git bisect replay bisect.log`), kernels/
and runs/.
"""

import concurrent.futures
import dataclasses
import json
import logging
import re
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from .. import process
from ..analysis import splats
from ..build import kbuild, shipment
from ..build import kernel as kernel_mod
from ..config import Kernel, Lab
from ..errors import BuildError, InfraError, LabError, UserError
from ..run import runner
from ..run.record import fresh_dir, now, utc_stamp, write_json_atomic
from .bisect_search import Search
from .executor import Executor, InProcess, Job, run_bound

log = logging.getLogger(__name__)

CONFIRM_RUNS = 10  # runs at the bad end without the bug before saying it does not reproduce


def _rev(repo: Path, ref: str) -> str:
    try:
        return kbuild.git(repo, "rev-parse", "--verify", f"{ref}^{{commit}}").strip()
    except LabError:
        raise UserError(f"no commit '{ref}' in {repo}") from None


def commit_states(repo: Path, good: str, bad: str) -> List[Dict[str, Any]]:
    """The good end, then every first-parent commit up to and with the bad end, oldest first."""
    good_id, bad_id = _rev(repo, good), _rev(repo, bad)
    ids = kbuild.git(repo, "rev-list", "--first-parent", "--reverse", f"{good_id}..{bad_id}").split()
    if not ids:
        raise UserError(f"{bad} is not after {good} on its first-parent history")
    out = []
    for commit in [good_id, *ids]:
        subject, author = kbuild.git(repo, "log", "-1", "--format=%s%x00%an <%ae>", commit).rstrip("\n").split("\0")
        out.append({"label": commit[:12], "commit": commit, "subject": subject, "author": author, "patches": 0})
    return out


def series_states(repo: Path, patches: Sequence[Path], base: str, scratch: Path) -> List[Dict[str, Any]]:
    """The base, then the base with the first 1..N patches, each made a commit of REPO with git's
    plumbing (an index of its own in SCRATCH, no checkout of the tree). A state is then built as any
    commit is, and one whose tree a commit bisection built before is not built again. The commits keep
    the mails' authors and messages, and a ref (refs/labrunner/series/...) keeps them from git gc. A
    patch that does not apply is the user's mistake, named: every state after it would be the base's."""
    scratch.mkdir(parents=True, exist_ok=True)
    index = {"GIT_INDEX_FILE": str(scratch / "index")}

    def git(*args: str, env: Optional[Dict[str, str]] = None, input: Optional[str] = None) -> str:
        return kbuild.git(repo, *args, what=f"git {args[0]}", env={**index, **(env or {})}, input=input)
    head = _rev(repo, base)
    out = [{"label": "base", "commit": head, "subject": f"{base} without the series", "author": "", "patches": 0}]
    git("read-tree", head)
    for i, patch in enumerate(patches, start=1):
        status, _, err = process.call(["git", "-C", str(repo), "apply", "--cached", str(patch)], timeout=600,
                                      what=f"applying {patch.name}", env=index)
        if status != 0:
            raise UserError(f"patch {i} of the series ({patch}) does not apply on {base}:\n{err.strip()[-800:]}")
        text = patch.read_text(errors="replace")
        subject, author, message, env = patch.name, "", patch.name, {}
        if text.startswith("From "):  # a mail: its subject without [PATCH ...], its author and date
            info = git("mailinfo", str(scratch / "msg"), str(scratch / "diff"), input=text)
            fields = dict(line.split(": ", 1) for line in info.splitlines() if ": " in line)
            subject = fields.get("Subject") or patch.name
            author = f"{fields.get('Author', '')} <{fields.get('Email', '')}>"
            message = f"{subject}\n\n{(scratch / 'msg').read_text()}"
            env = {"GIT_AUTHOR_NAME": fields.get("Author", ""), "GIT_AUTHOR_EMAIL": fields.get("Email", ""),
                   **({"GIT_AUTHOR_DATE": fields["Date"]} if "Date" in fields else {})}
        head = git("commit-tree", git("write-tree").strip(), "-p", head, "-m", message, env=env).strip()
        out.append({"label": f"patch {i}", "commit": head, "subject": subject, "author": author, "patches": i})
    git("update-ref", f"refs/labrunner/series/{head[:12]}", head)
    return out


def split_series(mbox: Path, dest: Path) -> List[Path]:
    """An mbox of N mails, as N patch files in order (git mailsplit); a series file or a patch as they are."""
    if not mbox.is_file():
        raise UserError(f"no series {mbox}")
    if not mbox.read_bytes().startswith(b"From "):
        return kbuild.patch_files([mbox])
    dest.mkdir(parents=True, exist_ok=True)
    process.run(["git", "mailsplit", "-o" + str(dest), str(mbox)], timeout=60, what="git mailsplit")
    return sorted(dest.iterdir())


@dataclasses.dataclass
class Plan:
    """What a bisection needs to know; saved in bisect.json."""
    kernel: str
    test: str
    states: List[Dict[str, Any]]
    series: List[str]  # patch files, for a series bisection
    match: Optional[str]
    confidence: float
    max_runs: int
    duration: Optional[int]


def _variant(lab: Lab, plan: Plan, index: int) -> Kernel:
    """The kernel recipe at STATE: its commit (a series' states are commits too), with the recipe's own
    patches on top."""
    kernel = lab.kernels[plan.kernel]
    recipe = dataclasses.replace(kernel.source, ref=plan.states[index]["commit"])
    return dataclasses.replace(kernel, name=f"{plan.kernel}-bisect", source=recipe)


def build_state(lab: Lab, plan: Plan, index: int, folder: Path, progress: Callable[[str], None]) -> Path:
    """State INDEX built, and staged in FOLDER/kernels/ for `labrunner run --kernel KERNEL
    --kernel-artifacts`: a run records the recipe's name and the state's commit. BuildError or
    UserError when it does not build or a patch does not apply."""
    built = kernel_mod.resolve(_variant(lab, plan, index), lab.cache_dir, progress)
    label = plan.states[index]["label"].replace(" ", "-")
    return shipment.stage(dataclasses.replace(built, name=plan.kernel), folder / "kernels" / label)


def _showing(record: Dict[str, Any], bug: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The run's first report that is the bug, if any."""
    return next((s for s in record.get("splats", []) if not s.get("ignored") and (
        (bug.get("regex") and re.search(bug["regex"], s["title"])) or s["signature"] == bug.get("signature"))), None)


def outcome(record: Dict[str, Any], bug: Dict[str, Any]) -> Optional[bool]:
    """True: the run showed the bug; False: it passed; None: it tells nothing (another report, a hang,
    an infrastructure error, or a pass with lockdep off when the bug is lockdep's)."""
    if _showing(record, bug):
        return True
    if record.get("verdict") != "pass" or (bug.get("lockdep") and "lockdep-off" in record.get("flags", [])):
        return None
    return False


def _log_lines(doc: Dict[str, Any]) -> List[str]:
    """The evidence as git bisect commands (a series' states are commits under refs/labrunner/series/)."""
    states = doc["states"]
    out = [f"# labrunner bisect of {doc['plan']['kernel']} on {doc['plan']['test']}, bug: "
           f"{doc['bug'].get('title') or doc['bug'].get('regex')}",
           f"git bisect start {states[-1]['commit']} {states[0]['commit']}"]
    for s in states:
        verdict = "skip" if s.get("build_error") else "bad" if s["crashes"] else "good" if s["runs"] else None
        if verdict is None:
            continue
        out += [f"# {s['label']}: {s['crashes']} of {s['runs']} runs showed it ({s['excluded']} told nothing): "
                f"{s['subject']}", f"git bisect {verdict} {s['commit']}"]
    if doc.get("answer"):
        out.append(f"# answer: {doc['answer']['summary']}")
    return out


def _save(folder: Path, doc: Dict[str, Any]) -> None:
    write_json_atomic(folder / "bisect.json", doc)
    (folder / "bisect.log").write_text("\n".join(_log_lines(doc)) + "\n")


def start(plan: Plan, results: Path) -> Path:
    folder = fresh_dir(results, f"bisect-{utc_stamp()}-{plan.kernel}")
    doc = {"id": folder.name, "plan": dataclasses.asdict(plan), "bug": {"regex": plan.match} if plan.match else {},
           "started_at": now(), "finished_at": None, "wall_s": 0.0, "answer": None,
           "states": [{**s, "testable": True, "built": False, "build_error": None, "runs": 0, "crashes": 0,
                       "excluded": 0, "run_ids": []} for s in plan.states]}
    _save(folder, doc)
    return folder


def run_bisect(lab: Lab, folder: Path, progress: Callable[[str], None] = lambda s: None,
               build: Callable = build_state, executor: Optional[Executor] = None) -> Dict[str, Any]:
    """Bisect (or go on bisecting) the bisection in FOLDER to its end; bisect.json's contents, with
    "exit": 0 culprit found, 1 not reproduced / good end has it too / no answer within max_runs.
    EXECUTOR: where the runs go, as many at once as it has slots (default: one at a time, here). Runs
    still under way when the answer is reached are stopped; what they saw is evidence all the same."""
    doc = json.loads((folder / "bisect.json").read_text())
    plan = Plan(**doc["plan"])
    states = doc["states"]
    if plan.series and states[-1]["commit"] == states[0]["commit"]:
        raise UserError(f"{folder} is a series bisection of an older labrunner (its states were not commits); "
                        "start it again")
    search = Search(len(states), [s["testable"] for s in states],
                    crashes=[s["crashes"] for s in states], runs=[s["runs"] for s in states])
    executor = executor or InProcess(lab, runner.run_test, progress)
    bound = run_bound(lab.pick("tests", plan.test), plan.duration)
    t0, wall0 = time.monotonic(), doc["wall_s"]
    kernels: Dict[int, Path] = {}
    pending: Dict["concurrent.futures.Future[Dict[str, Any]]", Tuple[int, Job]] = {}
    stopped: Set["concurrent.futures.Future[Dict[str, Any]]"] = set()
    while True:
        doc["wall_s"] = round(wall0 + time.monotonic() - t0, 1)
        verdict = _verdict(search, plan, sum(s["runs"] + s["excluded"] for s in states) + len(pending))
        if verdict is not None and pending and verdict != "out of runs":
            for future, (_, job) in pending.items():
                if future not in stopped:
                    executor.stop(job)
                    stopped.add(future)
        elif verdict is not None and not pending:
            doc.update(answer=_answer(search, states, verdict), finished_at=now())
            _save(folder, doc)
            return {**doc, "exit": doc["answer"]["exit"]}
        elif verdict is None and len(pending) < executor.slots:
            index = search.with_pending([i for i, _ in pending.values()]).next_state()
            if index not in kernels:
                progress(f"bisect: building {states[index]['label']} ({states[index]['subject'][:60]})")
                try:
                    kernels[index] = build(lab, plan, index, folder, progress)
                    states[index]["built"] = True
                except (BuildError, UserError) as e:
                    states[index].update(testable=False, build_error=" ".join(str(e).splitlines()[:3])[:500])
                    search.testable = [s["testable"] for s in states]
                    if index in (0, len(states) - 1):
                        raise UserError(f"the {'good' if index == 0 else 'bad'} end does not build: {e}") from None
                    _save(folder, doc)
                    continue
            progress(f"bisect: running {plan.test} on {states[index]['label']}"
                     + (f" ({len(pending) + 1} runs under way)" if pending else ""))
            job = Job(lab=lab.path, test=plan.test, kernel=plan.kernel, results=folder / "runs",
                      duration=plan.duration, stop_on_first_splat=True, timeout=bound, kernel_artifacts=kernels[index])
            pending[executor.submit(job)] = (index, job)
            continue
        done, _ = concurrent.futures.wait(pending, timeout=bound + 120, return_when=concurrent.futures.FIRST_COMPLETED)
        if not done:
            raise InfraError(f"no run of the bisection ended within {bound + 120:.0f} s")
        for future in done:
            _take(doc, search, pending.pop(future)[0], future.result())
        _save(folder, doc)


def _take(doc: Dict[str, Any], search: Search, index: int, record: Dict[str, Any]) -> None:
    """The evidence of one run of state INDEX, into DOC and SEARCH."""
    states = doc["states"]
    if not doc["bug"] and index == len(states) - 1:
        first = next((s for s in record.get("splats", []) if not s.get("ignored")), None)
        if first is not None:  # the bug is the first report at the bad end
            doc["bug"] = {"signature": first["signature"], "title": first["title"]}
    seen = outcome(record, doc["bug"]) if doc["bug"] else (False if record.get("verdict") == "pass" else None)
    if seen and "lockdep" not in doc["bug"]:  # what kind of report the bug is, from its first showing
        doc["bug"]["lockdep"] = _showing(record, doc["bug"]).get("format") in splats.LOCKDEP_FORMATS
    state = states[index]
    state["run_ids"].append(record.get("id"))
    if seen is None:
        state["excluded"] += 1
    else:
        search.record(index, seen)
        state["runs"], state["crashes"] = search.runs[index], search.crashes[index]


def _verdict(search: Search, plan: Plan, spent: int) -> Optional[str]:
    if search.reproduced(CONFIRM_RUNS) is False:
        return "not reproduced"
    if search.done(plan.confidence):
        return "found"
    if spent >= plan.max_runs:
        return "out of runs"
    return None


def _answer(search: Search, states: List[Dict[str, Any]], verdict: str) -> Dict[str, Any]:
    ranked = search.ranked()
    top = ranked[0]
    culprits = states[top["first"]:top["last"] + 1]
    if verdict == "not reproduced":
        summary, status = f"the bug did not show in {search.runs[-1]} runs at the bad end", 1
    elif top["first"] == 0:
        summary, status = "the good end shows the bug too: no culprit between the ends", 1
    elif verdict == "out of runs":
        summary, status = f"no culprit at the confidence asked after {sum(search.runs)} runs; best guess: " \
                          f"{culprits[0]['label']} ({top['p']:.0%})", 1
    elif len(culprits) == 1:
        summary, status = f"{culprits[0]['label']} {culprits[0]['subject']} ({top['p']:.1%})", 0
    else:
        summary = (f"one of {', '.join(c['label'] for c in culprits)} ({top['p']:.1%}; "
                   f"{', '.join(c['label'] for c in culprits if not c['testable'])} did not build)")
        status = 0
    return {"summary": summary, "exit": status, "first": top["first"], "last": top["last"],
            "culprits": [{k: c[k] for k in ("label", "commit", "subject", "author", "patches")} for c in culprits],
            "p_bug": round(search.p_estimate(), 3),
            "candidates": [{"states": [s["label"] for s in states[r["first"]:r["last"] + 1]], "p": round(r["p"], 4)}
                           for r in ranked[:5]]}
