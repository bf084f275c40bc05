"""Child processes: started without a shell, logged as a command line a user can paste, never orphaned.

Every long-lived child (QEMU above all) gets PR_SET_PDEATHSIG=SIGKILL, so even a SIGKILLed labrunner
takes its QEMU with it, and its own session, so a terminal's Ctrl-C reaches labrunner only and
labrunner shuts the child down in order.
"""

import ctypes
import logging
import os
import shlex
import signal
import subprocess
from typing import Dict, List, Optional, Sequence

from .errors import InfraError

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def command_line(argv: Sequence[str], env: Optional[Dict[str, str]] = None) -> str:
    """The shell-quoted equivalent of ARGV, for logs and for reproducing a step by hand."""
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
    return (prefix + " " if prefix else "") + shlex.join(argv)


def _die_with_parent(parent: int):
    def preexec():
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
    return preexec


def spawn(argv: List[str], **kwargs) -> subprocess.Popen:
    """Start ARGV in its own session; it is SIGKILLed if labrunner dies."""
    log.info("$ %s", command_line(argv))
    try:
        return subprocess.Popen(argv, start_new_session=True, preexec_fn=_die_with_parent(os.getpid()),
                                **kwargs)
    except OSError as e:
        raise InfraError(f"cannot start {argv[0]}: {e.strerror}") from None


def run(argv: List[str], *, timeout: float, what: str, cwd=None, env=None, input: Optional[str] = None) -> str:
    """Run ARGV (with INPUT on stdin) to completion within TIMEOUT seconds; return stdout; InfraError with
    stderr on failure."""
    log.info("$ %s", command_line(argv))
    full_env = {**os.environ, **env} if env else None
    try:
        p = subprocess.run(argv, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, input=input,
                           start_new_session=True, preexec_fn=_die_with_parent(os.getpid()))
    except subprocess.TimeoutExpired:
        raise InfraError(f"{what}: timed out after {timeout:.0f} s: {command_line(argv)}") from None
    except OSError as e:
        raise InfraError(f"{what}: cannot run {argv[0]}: {e.strerror}") from None
    if p.returncode != 0:
        tail = "\n".join(p.stderr.strip().splitlines()[-15:])
        raise InfraError(f"{what} failed (exit {p.returncode}): {command_line(argv)}\n{tail}")
    return p.stdout


def stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after GRACE seconds; always reaps PROC."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
    raise InfraError(f"pid {proc.pid} survived SIGKILL")


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"
