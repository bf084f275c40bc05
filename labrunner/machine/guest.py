"""Guest access: SSH through paramiko, and a shell on the serial console through pexpect.

SSH is the main way in: commands with their exit status, output streamed as it comes, files read
back. The guest's host key is the lab's own (baked into the image), so it is checked, not trusted
on first use. The serial shell is the fallback when SSH is down, and the way in for kernels
without networking.
"""

import base64
import logging
import re
import select
import shlex
import time
from typing import Callable, Dict, Optional, Tuple

import pexpect

from ..build.image import Keys
from ..errors import InfraError

log = logging.getLogger(__name__)

Sink = Callable[[bytes], None]


class CommandTimeout(Exception):
    """A guest command outlived its bound; the guest may be hung (a verdict, not an infra error)."""

    def __init__(self, command: str, timeout: float):
        self.command, self.timeout = command, timeout
        super().__init__(f"'{command}' did not finish within {timeout:.0f} s")


def ssh_command_line(port: int, key_path, command: str) -> str:
    """The OpenSSH command a user can paste to do by hand what labrunner does."""
    return (f"ssh -p {port} -i {key_path} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
            f"root@127.0.0.1 {shlex.quote(command)}")


def with_env(command: str, env: Optional[Dict[str, str]]) -> str:
    prefix = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in (env or {}).items())
    return f"{prefix} {command}" if prefix else command


class Ssh:
    """An SSH connection to the guest's dropbear on 127.0.0.1:PORT."""

    def __init__(self, port: int, keys: Keys, timeout: float, alive: Callable[[], None] = lambda: None):
        global paramiko
        import paramiko  # on first use: a one-shot boot never needs its 0.1 s of imports
        self.port, self.keys = port, keys
        self.client = paramiko.SSHClient()
        kind, blob = keys.host_pub.split()[:2]
        self.client.get_host_keys().add(f"[127.0.0.1]:{port}", kind, paramiko.Ed25519Key(data=base64.b64decode(blob)))
        self.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        pkey = paramiko.Ed25519Key.from_private_key_file(str(keys.client_key))
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            alive()
            try:
                self.client.connect("127.0.0.1", port=port, username="root", pkey=pkey, look_for_keys=False,
                                    allow_agent=False, timeout=10, banner_timeout=30, auth_timeout=30)
                self.client.get_transport().set_keepalive(5)
                return
            except (OSError, paramiko.SSHException, EOFError) as e:
                last = e
                time.sleep(0.3)
        raise InfraError(f"no SSH to the guest on 127.0.0.1:{port} within {timeout:.0f} s: {last}")

    def run(self, command: str, timeout: float, stdout: Optional[Sink] = None, stderr: Optional[Sink] = None,
            env: Optional[Dict[str, str]] = None, watch: Callable[[], None] = lambda: None) -> int:
        """Run COMMAND in the guest, streaming its output to the sinks; its exit status.
        Raises CommandTimeout after TIMEOUT seconds, InfraError if the connection is lost, and whatever
        WATCH() raises (it is called about twice a second: hang detection)."""
        full = with_env(command, env)
        log.info("$ %s", ssh_command_line(self.port, self.keys.client_key, full))
        try:
            channel = self.client.get_transport().open_session(timeout=10)
            channel.exec_command(full)
        except (OSError, EOFError, paramiko.SSHException, AttributeError) as e:
            raise InfraError(f"SSH: cannot start '{command}': {e!r}") from None
        deadline = time.monotonic() + timeout
        try:
            while True:
                if time.monotonic() > deadline:
                    raise CommandTimeout(command, timeout)
                watch()
                select.select([channel], [], [], 0.5)
                while channel.recv_ready():
                    data = channel.recv(65536)
                    if stdout:
                        stdout(data)
                while channel.recv_stderr_ready():
                    data = channel.recv_stderr(65536)
                    if stderr:
                        stderr(data)
                if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                    break
                if channel.closed or not self.client.get_transport().is_active():
                    if channel.exit_status_ready():
                        break
                    raise InfraError(f"SSH connection lost while running '{command}'")
            return channel.recv_exit_status()
        except (OSError, EOFError, paramiko.SSHException) as e:
            raise InfraError(f"SSH connection lost while running '{command}': {e}") from None
        finally:
            channel.close()

    def output(self, command: str, timeout: float = 60) -> Tuple[int, str]:
        chunks = []
        status = self.run(command, timeout, stdout=chunks.append, stderr=chunks.append)
        return status, b"".join(chunks).decode("utf-8", "replace")

    def read_file(self, path: str, timeout: float = 60) -> bytes:
        chunks, err = [], []
        status = self.run(f"cat {shlex.quote(path)}", timeout, stdout=chunks.append, stderr=err.append)
        if status != 0:
            raise InfraError(f"cannot read {path} in the guest: {b''.join(err).decode(errors='replace').strip()}")
        return b"".join(chunks)

    def close(self) -> None:
        self.client.close()


class SerialShell:
    """Commands through the root shell on ttyS0, delimited by markers (kernel messages may interleave)."""

    def __init__(self, session: pexpect.spawnbase.SpawnBase):
        self.session = session
        self._n = 0

    def wait_prompt(self, timeout: float) -> None:
        """Wait until the shell answers. Input sent before it starts is flushed when it sets up the tty,
        so ask again every few seconds (each try has its own markers)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.run("true", min(3.0, max(0.1, deadline - time.monotonic())))
                return
            except CommandTimeout:
                if time.monotonic() >= deadline:
                    raise

    def run(self, command: str, timeout: float, env: Optional[Dict[str, str]] = None) -> Tuple[int, str]:
        self._n += 1
        begin, end = f"LAB_BEGIN_{self._n}", f"LAB_END_{self._n}"
        # The markers are built by the shell (quotes split them), so the echoed command never matches.
        # A subshell, so an 'exit' in COMMAND ends it and not the console's shell.
        self.session.sendline(f"echo {begin[:4]}''{begin[4:]}; ({with_env(command, env)}); "
                              f"echo {end[:4]}''{end[4:]}_$?")
        try:
            self.session.expect(re.escape(begin) + r"\r?\n", timeout=timeout)
            self.session.expect(re.escape(end) + r"_(\d+)", timeout=timeout)
        except pexpect.TIMEOUT:
            raise CommandTimeout(command, timeout) from None
        except pexpect.EOF:
            raise InfraError(f"the serial console closed while running '{command}'") from None
        return int(self.session.match.group(1)), self.session.before.replace("\r\n", "\n")
