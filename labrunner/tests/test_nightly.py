"""Nightlies without QEMU: suite validation, the slot budget, the comparison's states on hand-made
histories, retries, the index (rebuilt from folders, written by two processes at once), and a whole
nightly on a fake executor. The end-to-end nightly is in test_e2e_nightly.py."""
import concurrent.futures
import dataclasses
import json
import subprocess
import sys

import pytest

from labrunner import config
from labrunner.errors import ConfigError
from labrunner.lab import compare, executor, nightly, store
from labrunner.lab.matrix import Cell

from .conftest import GOOD, REPO
from .test_qemu import MACHINE

SUITES = GOOD.replace("    path: bzImage\n", "    path: bzImage\n  inject:\n    path: bzImage\n").replace(
    "defaults:\n", """\
suites:
  small:
    - kernels: [k]
      tests: [smoke]
      repeats: 2
    - kernels: [inject]
      tests: [smoke]
      expect: "^WARNING in "
known_issues:
  - title: "^BUG: spinlock recursion"
    note: seen once
defaults:
  suite: small
""")


def test_suites_load_and_bad_names_point_at_their_line(write_lab):
    lab = config.load(write_lab(SUITES))
    (plain, canary) = lab.suites["small"].entries
    assert (plain.repeats, canary.expect, lab.defaults.suite, lab.retries) == (2, "^WARNING in ", "small", 1)
    with pytest.raises(ConfigError) as e:
        config.load(write_lab(SUITES.replace("kernels: [inject]", "kernels: [nope]")))
    assert (e.value.line, e.value.key) == (25, "suites.small[1].kernels") and "no kernel named 'nope'" in str(e.value)
    with pytest.raises(ConfigError, match=r":27: suites.small\[1\].expect: item 1 is not a valid regular"):
        config.load(write_lab(SUITES.replace('"^WARNING in "', '"(unclosed"')))
    with pytest.raises(ConfigError, match=r":24: suites.small\[0\].repeats: must be at least 1"):
        config.load(write_lab(SUITES.replace("repeats: 2", "repeats: 0")))
    with pytest.raises(ConfigError, match=r":25: suites.small\[1\].kernels: k x smoke is already in an entry above"):
        config.load(write_lab(SUITES.replace("kernels: [inject]", "kernels: [inject, k]")))


def test_auto_slots_never_oversubscribe():
    assert executor.auto_slots(2, 20000, MACHINE) == 1                     # 2 cores, 2 vCPUs a guest
    assert executor.auto_slots(16, 20000, MACHINE) == 8                    # 16 cores
    assert executor.auto_slots(16, 3000, MACHINE) == 2                     # memory: (1024 + 256) MiB each
    assert executor.auto_slots(1, 100, MACHINE) == 1                       # never none
    single = dataclasses.replace(MACHINE, tcg_threads="single")
    assert executor.auto_slots(2, 20000, single) == 2                      # one host thread a guest


def _attempt(verdict, titles=(), flags=(), known=False):
    return {"verdict": verdict, "reason": "", "flags": list(flags),
            "reports": [{"signature": t[:8], "title": t, "occurrences": 1, "known": known} for t in titles]}


def _night(ident, cells):
    """CELLS: {(kernel, test, expect): [attempts of repeat 1, of repeat 2, ...]}"""
    doc = {"id": ident, "suite": "s", "cells": {}}
    for (kernel, test, expect), repeats in cells.items():
        for r, attempts in enumerate(repeats, start=1):
            doc["cells"][f"{kernel}/{test}#{r}"] = {"kernel": kernel, "test": test, "expect": expect,
                                                    "attempts": attempts}
    return doc


P, F = [_attempt("pass")], [_attempt("fail", ["WARNING in kvm_online_cpu"])]
INFRA = [_attempt("error", flags=["infra"])]
KNOWN = [_attempt("fail", ["BUG: spinlock recursion in x"], known=True)]
KNOWN_HANG = [_attempt("fail", ["general protection fault in f"], flags=["splat", "hang"], known=True)]
HANG = [_attempt("fail", flags=["hang"])]


@pytest.mark.parametrize("history,now,state", [
    ([[P, P]], [P, F], compare.NEW),
    ([[P, F]], [P, P], compare.FIXED),
    ([[F, F]], [F, P], compare.STILL),
    ([[P, P]], [P, P], compare.PASS),
    ([[F, F], [P, P], [F, F], [P, P]], [P, F], compare.UNSTABLE),      # fail, pass, fail, pass, fail
    ([[P, P]], [KNOWN, P], compare.KNOWN),
    ([], [KNOWN_HANG, P], compare.KNOWN),                               # the guest wedged after a known oops
    ([[P, P]], [HANG, P], compare.NEW),                                 # a hang with no report is news
    ([[P, P]], [INFRA, INFRA], compare.INFRA),
    ([], [F, P], compare.NEW),                                           # no earlier night
], ids=["regression", "fixed", "still", "pass", "unstable", "known", "known-then-hang", "hang", "infra-only",
        "first-night"])
def test_comparison_states(history, now, state):
    nights = [_night(f"n{i}", {("k", "t", None): h}) for i, h in enumerate(history)]
    after = _night("now", {("k", "t", None): now})
    c = compare.compare(nights[-1] if nights else None, after, nights)
    (cell,) = c["cells"]
    assert cell["state"] == state, cell
    assert cell["after"] == f"{sum(o in (F, HANG) for o in now)}:{sum(o != INFRA for o in now)}"


def test_canaries_and_reports():
    canary = ("inject", "t", "^WARNING in ")
    before = _night("a", {canary: [F], ("k", "t", None): [P]})
    after = _night("b", {canary: [P], ("k", "t", None): [[_attempt("fail", ["BUG: new thing in f"])]]})
    c = compare.compare(before, after, [before])
    states = {x["cell"]: x["state"] for x in c["cells"]}
    assert states == {"inject/t": compare.CANARY_LOST, "k/t": compare.NEW}
    assert {(s["title"], s["state"]) for s in c["splats"]} == {("WARNING in kvm_online_cpu", "gone"),
                                                               ("BUG: new thing in f", "new")}
    assert [s["state"] for s in compare.compare(None, before)["splats"]] == ["expected"]  # the canary's own
    assert compare.exit_status(c)[0] == 1
    wrong_title = _night("c", {canary: [[_attempt("fail", ["BUG: other in g"])]]})
    assert compare.compare(None, wrong_title)["cells"][0]["state"] == compare.CANARY_LOST
    assert compare.exit_status(compare.compare(None, _night("d", {("k", "t", None): [INFRA]})))[0] == 3


@pytest.mark.parametrize("attempt,retry", [
    (_attempt("error", flags=["infra"]), True),
    (_attempt("fail", flags=["hang"]), True),                              # a hang without a report: maybe the host
    (_attempt("fail", ["possible deadlock in f"], flags=["splat", "hang"]), False),  # never retried away
    (_attempt("fail", flags=["clock-stopped", "unresponsive"]), True),     # TCG's wedge, most likely
    (_attempt("fail", flags=["workload-failed"]), False),
    (_attempt("error", flags=["interrupted"]), False),
])
def test_what_is_retried(attempt, retry):
    assert nightly.wants_retry(attempt) is retry


def _fake_run(tmp_path, ident, verdict, titles=()):
    folder = tmp_path / "results" / "nightly-x" / "runs" / ident
    folder.mkdir(parents=True)
    record = {"id": ident, "test": "t", "kernel": {"name": "k"}, "verdict": verdict, "reason": verdict,
              "flags": [], "started_at": ident, "duration_s": 1.0,
              "splats": [{"signature": t[:8], "title": t, "occurrences": 2, "ignored": False} for t in titles]}
    (folder / "run.json").write_text(json.dumps(record))
    return {**record, "run_dir": str(folder)}


def test_the_index_is_rebuilt_from_the_folders(tmp_path):
    runs = [_fake_run(tmp_path, "r1", "pass"), _fake_run(tmp_path, "r2", "fail", ["WARNING in f"])]
    doc = {"id": "nightly-x", "suite": "s", "lab_hash": "h", "started_at": "1", "finished_at": "2", "complete": True,
           "cells": {"k/t#1": {"kernel": "k", "test": "t", "attempts": [{"run": "r1"}]},
                     "k/t#2": {"kernel": "k", "test": "t", "attempts": [{"run": "r2"}]}}}
    (tmp_path / "results" / "nightly-x" / "nightly.json").write_text(json.dumps(doc))
    db = tmp_path / "results" / "lab.db"
    s = store.Store(db)
    s.add_nightly(doc, tmp_path / "results" / "nightly-x")
    for i, r in enumerate(runs, start=1):
        s.add_run(r, "nightly-x", f"k/t#{i}")
    before = [tuple(row) for row in s.runs("nightly-x")]
    s.close()
    db.write_bytes(b"not a database")  # corrupt: rebuilt whole from the folders
    assert store.import_folder(tmp_path / "results", db) == {"nightlies": 1, "runs": 2}
    s = store.Store(db)
    assert [tuple(row) for row in s.runs("nightly-x")] == before
    assert [tuple(r) for r in s.db.execute("SELECT title, occurrences FROM splats")] == [("WARNING in f", 2)]


WRITER = """
import sys
from labrunner.lab.store import Store
s = Store(__import__("pathlib").Path(sys.argv[1]))
for i in range(200):
    s.add_run({"id": f"{sys.argv[2]}-{i}", "verdict": "pass", "reason": "", "splats": [
        {"signature": "abc", "title": "t", "occurrences": 1}]}, "n", f"c{i}")
"""


def test_two_processes_write_the_index_at_once(tmp_path):
    db = tmp_path / "lab.db"
    store.Store(db).close()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(db), name], env={"PYTHONPATH": str(REPO)},
                              stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    s = store.Store(db)
    assert s.db.execute("SELECT count(*) FROM runs").fetchone()[0] == 400
    assert s.db.execute("SELECT count(*) FROM splats").fetchone()[0] == 400


class FakeExecutor(executor.Executor):
    """Answers each job from a script of verdicts per kernel/test, in order; records what it ran."""
    slots = 2

    def __init__(self, tmp_path, script):
        self.tmp_path, self.script, self.jobs = tmp_path, script, []
        self.pool = concurrent.futures.ThreadPoolExecutor(2)

    def submit(self, job):
        self.jobs.append(job)
        verdict, titles, flags = self.script[f"{job.kernel}/{job.test}"].pop(0)
        n = len(self.jobs)
        record = {"id": f"run{n}", "run_dir": None, "test": job.test, "kernel": {"name": job.kernel},
                  "verdict": verdict, "reason": verdict, "flags": flags,
                  "splats": [{"signature": t[:8], "title": t, "occurrences": 1, "ignored": False} for t in titles]}
        return self.pool.submit(lambda: record)

    def shutdown(self):
        self.pool.shutdown()


def test_a_nightly_retries_infrastructure_and_compares(write_lab, tmp_path, monkeypatch):
    monkeypatch.setattr(nightly.kernel_mod, "resolve", lambda *a, **k: None)
    lab = config.load(write_lab(SUITES))
    script = {"k/smoke": [("error", (), ["infra"]), ("pass", (), []), ("pass", (), [])],
              "inject/smoke": [("fail", ("WARNING in kvm_online_cpu",), ["splat"])]}
    ex = FakeExecutor(tmp_path, script)
    first = nightly.run_nightly(lab, None, ex, results=tmp_path / "results")
    assert first["complete"] and first["exit"] == 0 and len(ex.jobs) == 4  # one retry
    retried = [c for c in first["cells"].values() if len(c["attempts"]) == 2]
    assert len(retried) == 1 and retried[0]["attempts"][1]["verdict"] == "pass"
    assert any(j.stop_on_first_splat for j in ex.jobs)  # the canary's run stops at its report
    # The next night: repeat 2 now fails with a new report, and the canary passes.
    script = {"k/smoke": [("pass", (), []), ("fail", ("BUG: new in f",), ["splat"])], "inject/smoke": [("pass", (), [])]}
    second = nightly.run_nightly(lab, None, FakeExecutor(tmp_path, script), results=tmp_path / "results")
    states = sorted((c["cell"], c["state"]) for c in second["comparison"]["cells"])
    assert second["exit"] == 1 and second["comparison"]["before"] == first["id"]
    assert ("BUG: new in f", "new") in {(s["title"], s["state"]) for s in second["comparison"]["splats"]}
    assert {s for _, s in states} == {compare.NEW, compare.CANARY_LOST}
    # notify: only when something is new, with the comparison on stdin
    notified = tmp_path / "notified.json"
    lab = dataclasses.replace(lab, notify=f"cat > {notified}")
    script = {"k/smoke": [("pass", (), []), ("pass", (), [])], "inject/smoke": [("pass", (), [])]}
    third = nightly.run_nightly(lab, None, FakeExecutor(tmp_path, script), results=tmp_path / "results")
    assert third["exit"] == 1 and json.loads(notified.read_text())["canaries_lost"] == 1  # still lost
    notified.unlink()
    script = {"k/smoke": [("pass", (), []), ("pass", (), [])],
              "inject/smoke": [("fail", ("WARNING in kvm_online_cpu",), ["splat"])]}
    fourth = nightly.run_nightly(lab, None, FakeExecutor(tmp_path, script), results=tmp_path / "results")
    assert fourth["exit"] == 0 and not notified.exists()
    # prune keeps the newest nightlies, folders and index rows
    subprocess.run([sys.executable, "-m", "labrunner.cli", "--lab", str(lab.path), "results", "prune", "--keep", "1",
                    "--results", str(tmp_path / "results")], check=True, env={"PYTHONPATH": str(REPO)}, timeout=60)
    s = store.Store(tmp_path / "results" / "lab.db")
    assert [n["id"] for n in s.nightlies()] == [fourth["id"]]
    assert [p.name for p in (tmp_path / "results").glob("nightly-*")] == [fourth["id"]]


def test_cells_of_a_suite():
    lab_suite = config.Suite("s", (config.SuiteEntry(("a", "b"), ("t",), 2, None, None),))
    keys = [c.key for c in nightly.cells(lab_suite)]
    assert keys == ["a/t#1", "a/t#2", "b/t#1", "b/t#2"]
    assert dataclasses.replace(Cell("a", "t", 1, None, None), repeat=3).key == "a/t#3"


def test_an_interrupted_attempt_is_run_again_on_resume():
    cell = {"attempts": [_attempt("error", flags=["interrupted"])]}
    assert nightly.needs_run(cell, retries=0)
    cell["attempts"].append(_attempt("pass"))
    assert not nightly.needs_run(cell, retries=0)
    assert nightly.needs_run({"attempts": [_attempt("error", flags=["infra"])]}, retries=1)
    assert not nightly.needs_run({"attempts": [_attempt("error", flags=["infra"])] * 2}, retries=1)


def test_a_kernel_that_does_not_build_fails_its_cells_and_the_rest_runs(write_lab, tmp_path, monkeypatch):
    from labrunner.errors import BuildError

    def resolve(kernel, *args, **kwargs):
        if kernel.name == "inject":
            raise BuildError("kernel build failed; first errors:\nvirt/kvm/kvm_main.c:12:1: error: expected ';'")
    monkeypatch.setattr(nightly.kernel_mod, "resolve", resolve)
    lab = config.load(write_lab(SUITES))
    ex = FakeExecutor(tmp_path, {"k/smoke": [("pass", (), []), ("pass", (), [])]})
    result = nightly.run_nightly(lab, None, ex, results=tmp_path / "results")
    assert [j.kernel for j in ex.jobs] == ["k", "k"]  # no guest for the broken kernel
    (broken,) = result["cells"]["inject/smoke#1"]["attempts"]
    assert broken["verdict"] == "fail" and "kvm_main.c:12:1: error" in broken["reason"]
    assert {c["cell"]: c["state"] for c in result["comparison"]["cells"]}["inject/smoke"] == compare.CANARY_LOST
