"""A booted guest: kernel and image in QEMU, console captured, QMP connected, SSH ready.

Session is the one place that assembles the pieces in order (config -> kernel/image -> QEMU ->
console/QMP -> guest) and the one place that takes them down again, on every path: normal end,
exception, Ctrl-C or SIGTERM (the CLI turns those into exceptions). A SIGKILLed labrunner still takes
QEMU with it through PDEATHSIG (see process.py).
"""

import dataclasses
import logging
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from ..build import image as image_mod
from ..build import kernel as kernel_mod
from ..config import Lab
from ..errors import InfraError, QemuError
from . import qemu as qemu_mod
from .console import Console
from .guest import SerialShell, Ssh
from .qmp import Monitor

log = logging.getLogger(__name__)

# Matched without the "labrunner-init: " prefix: a kernel message can land in the middle of the line.
READY = r"guest ready \S"
SSHD_UP = r"sshd listening"


@dataclasses.dataclass
class BootSpec:
    kernel: Optional[str] = None
    machine: Optional[str] = None
    image: Optional[str] = None
    cmdline: str = ""
    boot_timeout: float = 300
    ssh_timeout: float = 60
    ssh: bool = True


class Session:
    def __init__(self, lab: Lab, spec: BootSpec, outdir: Path, progress: Callable[[str], None] = lambda s: None):
        self.lab, self.spec, self.outdir, self.progress = lab, spec, outdir, progress
        self.kernel_cfg = lab.pick("kernels", spec.kernel)
        self.machine = lab.pick("machines", spec.machine)
        self.image_cfg = lab.pick("images", spec.image)
        self.kernel: Optional[kernel_mod.KernelArtifacts] = None
        self.accel: Optional[qemu_mod.Accel] = None
        self.qemu: Optional[qemu_mod.Qemu] = None
        self.qemu_version = ""
        self.console: Optional[Console] = None
        self.qmp: Optional[Monitor] = None
        self.ssh: Optional[Ssh] = None
        self._ssh_result = None  # from the connecting thread: an Ssh, an exception, or None yet
        self.ssh_port: Optional[int] = None
        self.boot_s: Optional[float] = None
        self.on_console: Optional[Callable[[str], None]] = None  # every console line, from the first

    def prepare(self) -> None:
        """Everything before QEMU: kernel, initrd, accelerator."""
        cache = self.lab.cache_dir
        self.progress("kernel")
        self.kernel = kernel_mod.resolve(self.kernel_cfg, cache, self.progress)
        self.progress("image")
        self.initrd = image_mod.initrd(self.lab, self.image_cfg, self.kernel, cache, self.progress)
        self.keys = image_mod.ensure_keys(self.lab.state_dir)
        self.progress("accelerator probe")
        self.accel = qemu_mod.choose_accel(self.lab.qemu, self.kernel.image, cache)
        log.info("accelerator: %s (%s)", self.accel.name, self.accel.reason)
        self.qemu_version = qemu_mod.version(self.lab.qemu.binary)

    def start(self) -> None:
        if self.kernel is None:
            self.prepare()
        t0 = time.monotonic()
        sockdir = qemu_mod.Qemu.make_sockdir()
        self.ssh_port = qemu_mod.free_port() if self.spec.ssh else None
        cmdline = qemu_mod.kernel_cmdline(self.machine, self.accel.name, self.spec.cmdline)
        argv = qemu_mod.machine_argv(qemu=self.lab.qemu, machine=self.machine, accel=self.accel,
                                     kernel=self.kernel.image, initrd=self.initrd, cmdline=cmdline,
                                     sockdir=sockdir, ssh_port=self.ssh_port)
        self.qemu = qemu_mod.Qemu(argv, sockdir, self.outdir / "qemu.stderr")
        self.progress("booting")
        self.qemu.start()
        self.console = Console(self.qemu.wait_for_socket("console.sock", 30), self.outdir / "console.log",
                               listener=self.on_console)
        connecting = self._connect_ssh_when_listening() if self.spec.ssh else None
        self.qmp = Monitor(self.qemu.wait_for_socket("qmp.sock", 30), self.outdir / "qmp.jsonl")
        line = self.console.wait_for(READY, self.spec.boot_timeout, alive=lambda: self.qemu.check_alive("during boot"))
        if line is None:
            self.qemu.check_alive("during boot")
            raise InfraError(f"the guest did not boot within {self.spec.boot_timeout:.0f} s "
                             f"(no '{READY}' on the console; see console.log)")
        if connecting is not None:
            self.progress("ssh")
            connecting.join(self.spec.ssh_timeout + 15)
            if isinstance(self._ssh_result, BaseException):
                raise self._ssh_result
            if self._ssh_result is None:
                raise InfraError(f"no SSH to the guest within {self.spec.ssh_timeout:.0f} s")
            self.ssh = self._ssh_result
        self.boot_s = time.monotonic() - t0

    def _connect_ssh_when_listening(self) -> threading.Thread:
        """Connect as soon as the guest says dropbear listens, overlapping the rest of its boot (the KVM
        modules). Connecting earlier would only wait on slirp's SYN retries."""
        listening = threading.Event()

        def on_line(line: str) -> None:
            # By the ready line dropbear listens too, should its own line have been garbled.
            if re.search(SSHD_UP, line) or re.search(READY, line):
                listening.set()

        def connect() -> None:
            try:
                deadline = time.monotonic() + self.spec.boot_timeout
                while not listening.wait(0.2):
                    self.qemu.check_alive("during boot")
                    if time.monotonic() > deadline or self.console.closed.is_set():
                        return
                self._ssh_result = Ssh(self.ssh_port, self.keys, self.spec.ssh_timeout,
                                       alive=lambda: self.qemu.check_alive("while connecting over SSH"))
            except BaseException as e:  # handed to the main thread
                self._ssh_result = e
            finally:
                self.console.remove_listener(on_line)

        self.console.add_listener(on_line)
        thread = threading.Thread(target=connect, name="ssh-connect", daemon=True)
        thread.start()
        return thread

    def serial_shell(self) -> SerialShell:
        return SerialShell(self.console.expect_session())

    def infra_cause(self, error: Exception) -> Exception:
        """If QEMU has died, that is the real cause of ERROR (an SSH drop, say). A killed process closes
        its sockets before it can be reaped, so a dying QEMU gets a moment to finish."""
        if isinstance(error, QemuError) or self.qemu is None or self.qemu.proc is None:
            return error
        try:
            self.qemu.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return error
        return self.qemu.died(f"({error})")

    def close(self) -> None:
        """Stop everything, in order, whatever state it is in."""
        for ssh in {self.ssh, self._ssh_result}:
            if isinstance(ssh, Ssh):
                ssh.close()
        if self.qemu is not None:
            self.qemu.stop(quit_fn=(lambda: self.qmp.quit(timeout=3)) if self.qmp else None)
        if self.qmp is not None:
            self.qmp.close()
        if self.console is not None:
            self.console.close()

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
