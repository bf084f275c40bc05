"""Children die with labrunner, even when it is SIGKILLed (PR_SET_PDEATHSIG)."""
import signal
import subprocess
import sys
import time

from labrunner import process

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
