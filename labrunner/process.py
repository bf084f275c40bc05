"""Child processes: started without a shell, logged as a command line a user can paste, never orphaned,
and never waited for without a bound.

- Every child runs in its own session and process group, so a terminal's Ctrl-C reaches labrunner only
  and labrunner shuts the child down in order; stopping a child signals its whole group (make's
  compilers, a script's children), not only the process labrunner started.
- Every child gets the parent-death signal SIGKILL, so even a SIGKILLed labrunner takes its QEMU with
  it. It is set by `setpriv --pdeathsig KILL` between fork and exec, not by a Python preexec_fn, which
  Python documents as unsafe while threads run (and the lab always has threads: console, hotplug).
- run() and call() wait at most their timeout; lines() reads a child's output line by line and gives
  up at its deadline even when the child prints nothing.
"""

import logging
import os
import selectors
import shlex
import shutil
import signal
import subprocess
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from .errors import InfraError

log = logging.getLogger(__name__)


def command_line(argv: Sequence[str], env: Optional[Dict[str, str]] = None, cwd=None) -> str:
    """The shell-quoted equivalent of ARGV run in CWD with ENV added to the environment, for logs and
    for reproducing a step by hand."""
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
    line = (prefix + " " if prefix else "") + shlex.join(argv)
    return f"(cd {shlex.quote(str(cwd))} && {line})" if cwd is not None else line


# Between setpriv's prctl and the target: a parent that died before the prctl would leave the child
# orphaned for good, so the child checks it still has its parent, then becomes the target (same pid).
_PARENT_CHECK = 'if [ "$PPID" != "$0" ]; then exit 125; fi; exec "$@"'


def pdeathsig_argv(argv: Sequence[str], parent: Optional[int] = None) -> List[str]:
    """ARGV run so that it is SIGKILLed when labrunner (PARENT, default this process) dies: util-linux's
    setpriv sets the parent-death signal, then sh checks the parent is still there and execs ARGV."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        log.warning("setpriv not found (util-linux): %s will outlive labrunner if it is SIGKILLed", argv[0])
        return list(argv)
    return [setpriv, "--pdeathsig", "KILL", "--", "/bin/sh", "-c", _PARENT_CHECK, str(parent or os.getpid()),
            *argv]


def spawn(argv: List[str], *, env: Optional[Dict[str, str]] = None, cwd=None, **kwargs) -> subprocess.Popen:
    """Start ARGV, in CWD with ENV added to labrunner's environment, in a session of its own; it is
    SIGKILLed if labrunner dies. Logged as the command line that redoes it, ENV and CWD included."""
    log.info("$ %s", command_line(argv, env, cwd))
    try:
        return subprocess.Popen(pdeathsig_argv(argv), start_new_session=True, cwd=cwd,
                                env={**os.environ, **env} if env else None, **kwargs)
    except OSError as e:
        raise InfraError(f"cannot start {argv[0]}: {e.strerror}") from None


def call(argv: List[str], *, timeout: float, what: str, cwd=None, env=None,
         input: Optional[str] = None) -> Tuple[int, str, str]:
    """Run ARGV (in CWD, with ENV added to the environment and INPUT on stdin) to completion within
    TIMEOUT seconds: (status, stdout, stderr). On timeout its whole process group is killed and
    InfraError says so."""
    proc = spawn(argv, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                 stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc, grace=2)
        raise InfraError(f"{what}: timed out after {timeout:.0f} s: {command_line(argv, env, cwd)}") from None
    except BaseException:
        stop(proc, grace=2)
        raise
    return proc.returncode, out, err


def run(argv: List[str], *, timeout: float, what: str, cwd=None, env=None, input: Optional[str] = None) -> str:
    """call(), for a command that must succeed: its stdout, or InfraError with the tail of its stderr."""
    status, out, err = call(argv, timeout=timeout, what=what, cwd=cwd, env=env, input=input)
    if status != 0:
        tail = "\n".join(err.strip().splitlines()[-15:])
        raise InfraError(f"{what} failed ({describe_exit(status)}): {command_line(argv, env, cwd)}\n{tail}")
    return out


def lines(proc: subprocess.Popen, deadline: float, what: str) -> Iterator[str]:
    """PROC's stdout (a binary pipe) line by line until it closes. At the monotonic DEADLINE, printing
    or not, the process group is killed and InfraError raised."""
    fd = proc.stdout.fileno()
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(timeout=left):
                stop(proc, grace=2)
                raise InfraError(f"{what}: still running at its time limit; stopped")
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            *done, buf = buf.split(b"\n")
            for line in done:
                yield line.decode("utf-8", "replace") + "\n"
    if buf:
        yield buf.decode("utf-8", "replace")


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the group is the child's own (start_new_session)
    except (ProcessLookupError, PermissionError):
        pass


def stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM to PROC's whole process group, SIGKILL after GRACE seconds, then SIGKILL to what is left
    of the group (make's compilers outlive make); always reaps PROC. Nothing is sent to a PROC that had
    already ended and been reaped: its group id may be another's by then."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        _signal_group(proc, sig)
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    else:
        raise InfraError(f"pid {proc.pid} survived SIGKILL")
    _signal_group(proc, signal.SIGKILL)


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"
