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
from typing import Callable, Dict, Optional, Sequence, Tuple

from ..build import image as image_mod
from ..build import kernel as kernel_mod
from ..build import selftests as selftests_mod
from ..build import shipment
from ..config import Lab
from ..config.tests import Selftest
from ..errors import InfraError, QemuError, UserError
from . import oneshot
from . import qemu as qemu_mod
from .console import Console
from .guest import CommandTimeout, SerialShell, Ssh
from .oneshot import Sink
from .qmp import Monitor

log = logging.getLogger(__name__)
ONESHOT_INITRD = "initrd-oneshot"  # a one-shot boot's own initrd (the image and its command), in its folder

# Matched without the "labrunner-init: " prefix: a kernel message can land in the middle of the line.
READY = r"guest ready \S"
SSHD_UP = r"sshd listening"
_RUN_INIT = re.compile(r"\[\s*(\d+\.\d+)\](?: ?\[\s*[TC]\d+\])?\s+Run /init as init process")  # [ T1]: printk's caller


class Phases:
    """Where a boot's time goes, from host-side marks: QEMU start (spawn to console socket), firmware
    (to the kernel's start, which the kernel's own time stamp on its "Run /init" line places), kernel
    (to /init), init (to the ready line), the command channel, the command and the power-off."""

    ORDER = ("qemu", "firmware", "kernel", "init", "channel", "command", "poweroff")

    def __init__(self):
        self.marks: Dict[str, float] = {"spawn": time.monotonic()}
        self._kernel_s: Optional[float] = None

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, time.monotonic())

    def on_console(self, line: str) -> None:
        if "Run /init" in line and (m := _RUN_INIT.search(line)):
            self.mark("init_start")
            self._kernel_s = float(m.group(1))

    def durations(self) -> Dict[str, float]:
        """Seconds per phase, for the phases whose two ends were seen."""
        m, out = self.marks, {}
        ends = {"qemu": ("spawn", "console"), "init": ("init_start", "ready"), "channel": ("ready", "channel"),
                "command": ("channel", "command_done"), "poweroff": ("command_done", "off")}
        for name, (a, b) in ends.items():
            if a in m and b in m:
                out[name] = m[b] - m[a]
        if self._kernel_s is not None and "console" in m:
            out["firmware"] = max(0.0, m["init_start"] - self._kernel_s - m["console"])
            out["kernel"] = self._kernel_s
        return {k: round(out[k], 3) for k in self.ORDER if k in out}

    def describe(self) -> str:
        return ", ".join(f"{k} {v:.2f} s" for k, v in self.durations().items())


@dataclasses.dataclass
class BootSpec:
    kernel: Optional[str] = None
    machine: Optional[str] = None
    image: Optional[str] = None
    cmdline: str = ""
    boot_timeout: float = 300
    ssh_timeout: float = 60
    ssh: bool = True
    oneshot: Optional[str] = None  # a command for the one-shot channel (machine.oneshot) instead of SSH
    hotplug: bool = True  # the machine's hotplug shape (spare slots, cold-plugged hot-pluggable vCPUs)
    kernel_artifacts: Optional[Path] = None  # KERNEL as another host resolved it (build.shipment)
    selftests: Tuple[Selftest, ...] = ()  # the kernel's KVM selftests to put in the guest (build.selftests)


class Session:
    def __init__(self, lab: Lab, spec: BootSpec, outdir: Path, progress: Callable[[str], None] = lambda s: None,
                 output: Sequence[Sink] = ()):
        """OUTPUT: where a one-shot command's stdout and stderr go."""
        self.lab, self.spec, self.outdir, self.progress, self.output = lab, spec, outdir, progress, output
        self.kernel_cfg = lab.pick("kernels", spec.kernel)
        self.machine = lab.pick("machines", spec.machine)
        if not spec.hotplug:  # a boot that plugs nothing: only the CPUs it runs, no hotplug reservation
            self.machine = dataclasses.replace(self.machine, max_cpus=self.machine.cpus, tcg_plug_budget=0)
        self.oneshot: Optional[oneshot.Channel] = None
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
        self.phases = Phases()
        self.on_console: Optional[Callable[[str], None]] = None  # every console line, from the first

    def prepare(self) -> None:
        """Everything before QEMU: kernel, initrd, accelerator."""
        cache = self.lab.cache_dir
        self.progress("kernel")
        if self.spec.kernel_artifacts is not None:
            self.kernel = shipment.load(self.spec.kernel_artifacts)
            if self.kernel.name != self.kernel_cfg.name:
                raise UserError(f"{self.spec.kernel_artifacts} holds kernel '{self.kernel.name}', "
                                f"not '{self.kernel_cfg.name}'")
        else:
            self.kernel = kernel_mod.resolve(self.kernel_cfg, cache, self.progress)
        self.progress("image")
        self.initrd = image_mod.initrd(self.lab, self.image_cfg, self.kernel, cache, self.progress)
        if self.spec.selftests:
            if self.spec.kernel_artifacts is not None:
                raise UserError("the KVM selftests are built from the kernel's source on the host that runs "
                                "them; a kernel shipped from another host (--kernel-artifacts) has none")
            self.progress("KVM selftests")
            built = selftests_mod.build(self.kernel_cfg, cache, self.progress)
            self.initrd = image_mod.joined(cache, f"{self.image_cfg.name}-{self.kernel.release}-selftests", [
                self.initrd, selftests_mod.archive(built, self.spec.selftests, cache)])
        if self.spec.oneshot is not None:
            self.initrd = oneshot.initrd_with_command(self.initrd, self.spec.oneshot, self.outdir / ONESHOT_INITRD)
        self.keys = image_mod.ensure_keys(self.lab.state_dir)
        self.progress("accelerator probe")
        self.accel = qemu_mod.choose_accel(self.lab.qemu, self.kernel.image, cache)
        log.info("accelerator: %s (%s)", self.accel.name, self.accel.reason)
        self.qemu_version = qemu_mod.version(self.lab.qemu.binary, cache)

    def start(self) -> None:
        if self.kernel is None:
            self.prepare()
        t0 = time.monotonic()
        sockdir = qemu_mod.Qemu.make_sockdir()
        self.ssh_port = qemu_mod.free_port() if self.spec.ssh else None
        cmdline = qemu_mod.kernel_cmdline(self.machine, self.accel.name, self.spec.cmdline)
        ports = [sockdir / "stdout.sock", sockdir / "stderr.sock"] if self.spec.oneshot is not None else []
        argv = qemu_mod.machine_argv(qemu=self.lab.qemu, machine=self.machine, accel=self.accel,
                                     kernel=self.kernel.image, initrd=self.initrd, cmdline=cmdline,
                                     sockdir=sockdir, ssh_port=self.ssh_port, serials=oneshot.serial_argv(ports))
        self.qemu = qemu_mod.Qemu(argv, sockdir, self.outdir / "qemu.stderr")
        self.progress("booting")
        self.phases = Phases()
        self.qemu.start()
        console_sock = self.qemu.wait_for_socket("console.sock", 30)
        self.phases.mark("console")
        self.console = Console(console_sock, self.outdir / "console.log", listener=self._first_listener)
        if ports:  # QEMU waits on them, in order, before it starts the guest
            self.oneshot = oneshot.Channel(self.console)
            self.oneshot.connect(ports, self.output)
        connecting = self._connect_ssh_when_listening() if self.spec.ssh else None
        self.qmp = Monitor(self.qemu.wait_for_socket("qmp.sock", 30), self.outdir / "qmp.jsonl")
        line = self.console.wait_for(READY, self.spec.boot_timeout, alive=lambda: self.qemu.check_alive("during boot"))
        if line is None:
            self.qemu.check_alive("during boot")
            raise InfraError(f"the guest did not boot within {self.spec.boot_timeout:.0f} s "
                             f"(no '{READY}' on the console; see console.log)")
        self.phases.mark("ready")
        if connecting is not None:
            self.progress("ssh")
            connecting.join(self.spec.ssh_timeout + 15)
            if isinstance(self._ssh_result, BaseException):
                raise self._ssh_result
            if self._ssh_result is None:
                raise InfraError(f"no SSH to the guest within {self.spec.ssh_timeout:.0f} s")
            self.ssh = self._ssh_result
        self.phases.mark("channel")
        self.boot_s = time.monotonic() - t0

    def oneshot_status(self, timeout: float) -> int:
        """The one-shot command's exit status, all its output delivered to OUTPUT by the time QEMU is
        gone (close()); CommandTimeout if it did not end within TIMEOUT."""
        status = self.oneshot.wait(timeout, alive=lambda: self.qemu.check_alive("while the command ran"))
        self.phases.mark("command_done")
        if status is None:
            raise CommandTimeout(self.spec.oneshot, timeout)
        return status

    def _first_listener(self, line: str) -> None:
        """Every console line, from the first: the boot's phase marks, then on_console."""
        self.phases.on_console(line)
        if self.on_console is not None:
            self.on_console(line)

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
            self.phases.mark("off")
        if self.spec.oneshot is not None:
            # This boot's own copy of the initrd (MBs): a folder kept as evidence needs only the logs.
            (self.outdir / ONESHOT_INITRD).unlink(missing_ok=True)
        if self.oneshot is not None:
            self.oneshot.close()
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
