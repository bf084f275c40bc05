"""Children die with labrunner, even when it is SIGKILLed (PR_SET_PDEATHSIG)."""
import os
import signal
import subprocess
import sys
import time

import pytest

from labrunner import process
from labrunner.errors import InfraError

PARENT = """
import sys, time
from labrunner import process
p = process.spawn(["sleep", "600"])
print(p.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_child_dies_when_parent_is_sigkilled():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        parent.kill()


def test_stop_escalates_to_sigkill():
    p = process.spawn([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                       "print('ready', flush=True); time.sleep(600)"], stdout=subprocess.PIPE)
    p.stdout.readline()
    process.stop(p, grace=0.5)
    assert p.returncode == -signal.SIGKILL


def test_command_line_is_pasteable():
    assert process.command_line(["qemu", "-append", "a b"]) == "qemu -append 'a b'"
    assert process.describe_exit(-9) == "killed by SIGKILL"
    assert process.describe_exit(3) == "exited with status 3"


def test_a_child_is_logged_once_as_the_command_line_that_redoes_it(tmp_path, caplog, monkeypatch):
    caplog.set_level("INFO", logger="labrunner.process")
    monkeypatch.setenv("LAB_OWN", "kept")
    status, out, _ = process.call(["sh", "-c", 'echo "$LAB_X $LAB_OWN $PWD"'], cwd=tmp_path, env={"LAB_X": "a b"},
                                  timeout=30, what="a script")
    assert status == 0 and out == f"a b kept {tmp_path}\n"  # ENV is added to labrunner's own environment
    assert [r.getMessage() for r in caplog.records] == [
        f"$ (cd {tmp_path} && LAB_X='a b' sh -c 'echo \"$LAB_X $LAB_OWN $PWD\"')"]


def test_a_timeout_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "pid"
    with pytest.raises(InfraError, match="timed out after 1 s"):
        process.call(["sh", "-c", f"sleep 600 & echo $! > {pidfile}; wait"], timeout=1, what="a script")
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_reading_a_silent_child_is_bounded():
    p = process.spawn(["sleep", "600"], stdout=subprocess.PIPE)
    t0 = time.monotonic()
    with pytest.raises(InfraError, match="time limit"):
        list(process.lines(p, time.monotonic() + 1, "a silent build"))
    assert time.monotonic() - t0 < 10 and p.returncode is not None


def test_children_get_their_parent_death_signal_without_preexec_fn():
    argv = process.pdeathsig_argv(["echo", "a b"], parent=os.getpid())
    assert argv[1:4] == ["--pdeathsig", "KILL", "--"] and argv[-2:] == ["echo", "a b"]
    assert subprocess.run(argv, capture_output=True, text=True).stdout == "a b\n"
    # a child whose parent is already gone (here: not its parent) never becomes the target
    orphan = subprocess.run(process.pdeathsig_argv(["echo", "x"], parent=1), capture_output=True, text=True)
    assert (orphan.returncode, orphan.stdout) == (125, "")
