"""End to end, real processes on 127.0.0.1: a `dask scheduler` and two `labrunner worker`s, each with a
cache and work folder of its own, so they share nothing but the network. A small nightly through
them equals in shape the same nightly run locally; a worker killed mid-run leaves no QEMU and loses no
run; a lost scheduler ends the nightly incomplete, and --resume finishes it; a host that cannot run
guests does not join.
"""
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from labrunner.config import load

from .conftest import REPO
from .test_e2e import LABRUNNER, child_pids, is_qemu, qemu_children, wait_for

pytestmark = pytest.mark.e2e

SUITE = """
suites:
  smoke:
    - kernels: [debian-6.12]
      tests: [kvm-smoke]
      repeats: 2
      duration: 10
  long:
    - kernels: [debian-6.12]
      tests: [kvm-smoke]
      repeats: 2
      duration: 15
  one:
    - kernels: [debian-6.12]
      tests: [kvm-smoke]
      duration: 15
"""
LAB = LABRUNNER[:-2]  # python -m labrunner.cli


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A scheduler and NAMES workers, stopped (and their guests with them) on close(); `joined`: each
    worker's seconds from the start to joining (bench/cluster.py reports them)."""

    def __init__(self, tmp_path: Path, lab: Path, names=("w1", "w2")):
        t0 = time.monotonic()
        self.address = f"tcp://127.0.0.1:{_port()}"
        self.procs = {}
        dask = Path(sys.executable).with_name("dask")
        self.procs["scheduler"] = subprocess.Popen(
            [str(dask), "scheduler", "--host", "127.0.0.1", "--port", self.address.rsplit(":", 1)[1],
             "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=open(tmp_path / "scheduler.log", "w"))
        self.logs = {}
        for name in names:
            env = {**os.environ, "LABRUNNER_CACHE": str(tmp_path / name / "cache")}
            self.logs[name] = tmp_path / f"{name}.log"
            self.procs[name] = subprocess.Popen([*LAB, "--lab", str(lab), "worker", self.address, "--slots", "1",
                                                 "--name", name], env=env, stdout=open(self.logs[name], "w"),
                                                stderr=subprocess.STDOUT)
        self.joined = {}
        for name in names:
            wait_for(lambda: "guest slots, scheduler" in self.logs[name].read_text()
                     or self.procs[name].poll() is not None, 300, f"worker {name} to join")
            assert self.procs[name].poll() is None, self.logs[name].read_text()
            self.joined[name] = round(time.monotonic() - t0, 1)

    def close(self) -> None:
        # Workers first: a worker whose scheduler is gone spends minutes trying to say goodbye to it.
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def lab(tmp_path):
    folder = tmp_path / "lab"
    folder.mkdir()
    (folder / "lab.yaml").write_text(SUITE.lstrip("\n"))
    return folder / "lab.yaml"


def nightly(lab, results, *args, timeout=1200):
    return subprocess.run([*LAB, "--lab", str(lab), "nightly", *args, "--results", str(results)],
                          capture_output=True, text=True, timeout=timeout)


def _shape(results: Path):
    """What a nightly's folder, index and comparison hold, without ids, times and paths."""
    (folder,) = results.glob("nightly-*")
    doc = json.loads((folder / "nightly.json").read_text())
    cells = {k: [(a["verdict"], a["reason"], sorted(a["flags"]), a["reports"]) for a in c["attempts"]]
             for k, c in doc["cells"].items()}
    runs = sorted(sorted(p.name for p in run.iterdir()) for run in (folder / "runs").iterdir())
    db = sqlite3.connect(str(results / "lab.db"))
    rows = sorted(db.execute("SELECT cell, attempt, kernel, test, verdict, flags FROM runs").fetchall())
    comparison = json.loads((folder / "comparison.json").read_text())
    states = [(c["cell"], c["state"], c["after"]) for c in comparison["cells"]]
    return cells, runs, rows, states, sorted(comparison)


def _known(cell, report) -> bool:
    """REPORT (of a nightly.json CELL's attempt) is in lab.yaml's known_issues (TCG's int3 or RCU wedge)."""
    return any(k.matches(report["title"], cell["kernel"], cell["test"]) for k in load(REPO / "lab.yaml").known_issues)


def _ran_to_its_end(cell) -> None:
    """CELL's last attempt passed, or (TCG's int3 or RCU wedge can end any run here, with two guests on
    two cores; README: findings) failed on known reports only, said in a warning."""
    last = cell["attempts"][-1]
    assert last["verdict"] == "pass" or (last["verdict"] == "fail" and last["reports"]
                                         and all(_known(cell, r) for r in last["reports"])), cell
    if last["verdict"] != "pass":
        warnings.warn(f"{cell['kernel']}/{cell['test']} ended on a known report: {last['reason']}")


def _known_met(results: Path) -> bool:
    """A known report in the nightly under RESULTS."""
    doc = json.loads(next(results.glob("nightly-*/nightly.json")).read_text())
    return any(_known(c, r) for c in doc["cells"].values() for a in c["attempts"] for r in a["reports"])


def test_a_nightly_runs_the_same_on_two_workers_as_here(tmp_path, lab):
    for attempt in (1, 2):  # a known report (README: findings) in either nightly earns one more pair
        here = tmp_path / str(attempt)
        local = nightly(lab, here / "local", "smoke", "--jobs", "1")
        cluster = Cluster(here, lab)
        try:
            remote = nightly(lab, here / "remote", "smoke", "--executor", cluster.address)
        finally:
            cluster.close()
        met = [side for side in ("local", "remote") if _known_met(here / side)]
        if not met or attempt == 2:
            break
        warnings.warn(f"a known report in the {met[0]} nightly; running the pair once more ({here})")
    assert local.returncode == 0, local.stdout + local.stderr
    assert remote.returncode == 0, remote.stdout + remote.stderr
    assert f"dask {cluster.address}, 2 guest slots" in remote.stdout
    assert _shape(here / "remote") == _shape(here / "local")
    # both workers ran one, each from its own cache, into which the kernel was shipped
    for name in ("w1", "w2"):
        assert "PASS: kvm-smoke on debian-6.12" in cluster.logs[name].read_text(), cluster.logs[name].read_text()
        assert list((here / name / "cache" / "kernels" / "shipped").glob("debian-6.12-*/kernel.json"))
        assert not list((here / name / "cache" / "worker" / name).glob("labrunner-run-*")), "no copy kept"


def test_a_worker_killed_mid_run_leaves_no_qemu_and_loses_no_run(tmp_path, lab):
    cluster = Cluster(tmp_path, lab)
    try:
        proc = subprocess.Popen([*LAB, "--lab", str(lab), "nightly", "long", "--executor", cluster.address,
                                 "--results", str(tmp_path / "results")], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            victim, guests = wait_for(lambda: next(((n, g) for n in ("w1", "w2")
                                                    if (g := _guests(cluster.procs[n].pid))), None),
                                      600, "a worker's guest")
            cluster.procs[victim].send_signal(signal.SIGKILL)
            for pid in guests:
                wait_for(lambda: not is_qemu(pid), 15, f"QEMU {pid} of the killed worker to exit")
            out, err = proc.communicate(timeout=1200)
        finally:
            proc.kill()
        assert proc.returncode == 0, out + err
        (folder,) = (tmp_path / "results").glob("nightly-*")
        doc = json.loads((folder / "nightly.json").read_text())
        assert doc["complete"]
        attempts = [a for c in doc["cells"].values() for a in c["attempts"]]
        lost = [a for a in attempts if a["verdict"] == "error"]
        assert len(lost) == 1 and "died mid-run" in lost[0]["reason"], attempts
        for c in doc["cells"].values():
            _ran_to_its_end(c)
        assert len(list((folder / "runs").iterdir())) == 2
    finally:
        cluster.close()


def test_a_lost_scheduler_ends_the_nightly_incomplete_and_resume_finishes_it(tmp_path, lab):
    cluster = Cluster(tmp_path, lab)
    results = tmp_path / "results"
    try:
        proc = subprocess.Popen([*LAB, "--lab", str(lab), "nightly", "one", "--executor", cluster.address,
                                 "--results", str(results)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            guests = wait_for(lambda: [q for n in ("w1", "w2") for q in _guests(cluster.procs[n].pid)], 600,
                              "a guest")
            cluster.procs["scheduler"].send_signal(signal.SIGKILL)
            out, err = proc.communicate(timeout=300)
        finally:
            proc.kill()
        assert proc.returncode == 3, out + err
        assert "lost the connection to the dask scheduler" in err and "Traceback" not in err, err
        (folder,) = results.glob("nightly-*")
        assert f"labrunner nightly --resume {folder.name}" in err
        for pid in guests:  # the workers stop their runs once the scheduler is gone
            wait_for(lambda: not is_qemu(pid), 180, f"QEMU {pid} to exit")
    finally:
        cluster.close()
    assert not json.loads((folder / "nightly.json").read_text())["complete"]
    resumed = nightly(lab, results, "--resume", folder.name, "--executor", "local")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    doc = json.loads((folder / "nightly.json").read_text())
    assert doc["complete"] and len(doc["cells"]) == 1
    _ran_to_its_end(next(iter(doc["cells"].values())))


def _guests(pid):
    """QEMU processes below PID, at any depth."""
    return qemu_children(pid) + [q for k in child_pids(pid) for q in _guests(k)]


def test_a_host_that_cannot_run_guests_does_not_join(tmp_path):
    lab = tmp_path / "lab.yaml"
    lab.write_text("qemu:\n  binary: qemu-system-nowhere\n")
    p = subprocess.run([*LAB, "--lab", str(lab), "worker", "tcp://127.0.0.1:1"], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "LABRUNNER_CACHE": str(tmp_path / "cache")})
    assert p.returncode == 3, p.stdout + p.stderr
    assert "does not join" in p.stderr and "qemu-system-nowhere" in p.stderr
