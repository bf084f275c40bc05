"""QEMU: argv building (pure), the accelerator probe, and the QEMU process itself.

The argv builders are pure functions tested by comparing lists. The process is started without a
shell, its stderr kept in a file, and stopped in order: QMP quit, then SIGTERM, then SIGKILL.
"""

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Sequence

from .. import cache, process
from ..config import Machine, QemuConfig
from ..errors import QemuError, UserError

log = logging.getLogger(__name__)

# Machine types that cannot hot-plug CPUs; the lab refuses them for hotplug tests.
NO_HOTPLUG_MACHINES = ("microvm",)
HOTPLUG_ID_PREFIX = "lab-cpu"


@dataclasses.dataclass(frozen=True)
class Accel:
    name: str  # "kvm" | "tcg"
    reason: str


def version(binary: str, cache_dir: Optional[Path] = None) -> str:
    """QEMU's version; with CACHE_DIR, kept per binary (path, size, mtime): `qemu --version` loads all
    of QEMU's libraries, 0.06 s of every boot."""
    cached = None
    if cache_dir is not None:
        path = _which(binary)
        cached = cache_dir / "qemu-version" / hashlib.sha256(_file_id(path).encode()).hexdigest()[:20]
        with contextlib.suppress(OSError):
            return cached.read_text()
    out = process.run([binary, "--version"], timeout=10, what="qemu --version")
    m = re.search(r"version (\S+)", out)
    found = m.group(1) if m else out.strip().splitlines()[0]
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        cache.write_atomic(cached, found.encode(), 0o644)
    return found


def kernel_cmdline(machine: Machine, accel: str, extra: str = "") -> str:
    """The guest command line: serial console, panic reboots (and -no-reboot turns that into exit)."""
    parts = ["console=ttyS0", "panic=-1"]
    if accel == "tcg":
        # calibrate_delay takes ~30 s per CPU bring-up under TCG; a fixed lpj skips it.
        parts.append(f"lpj={machine.lpj}")
    parts += [p for p in (machine.cmdline, extra) if p]
    return " ".join(parts)


def declared_cpus(machine: Machine, accel: Accel) -> int:
    """maxcpus as QEMU is told. Multi-threaded TCG gives each vCPU thread a context it never frees, and
    sizes its contexts by maxcpus: a plug after an unplug needs a fresh one, or QEMU aborts
    (tcg_register_thread: n < tcg_max_ctxs). Spare slots, never plugged, are that budget."""
    return machine.max_cpus + (machine.tcg_plug_budget if accel.name == "tcg" else 0)


def smp(machine: Machine, accel: Accel) -> str:
    n = declared_cpus(machine, accel)
    return f"cpus={machine.cpus},maxcpus={n},sockets={n},cores=1,threads=1"


def accel_arg(machine: Machine, accel: Accel) -> str:
    """TCG runs one host thread per vCPU by default; thread=single puts a guest's vCPUs on one."""
    return "tcg,thread=single" if accel.name == "tcg" and machine.tcg_threads == "single" else accel.name


def cpu_driver(machine: Machine, accel: Accel) -> str:
    return f"{machine.cpu_model[accel.name]}-x86_64-cpu"


def hotplug_cpu_devices(machine: Machine, accel: Accel) -> List[str]:
    """The hot-pluggable vCPUs, cold-plugged with ids: one socket each, sockets cpus..max_cpus-1.

    Linux 6.9+ only hot-adds APIC IDs it enumerated at boot, and counts QEMU's disabled MADT entries
    only under a hypervisor it recognises, which TCG's is not. Present at boot, these CPUs are
    enumerated; the hotplug controller then unplugs and re-plugs them by id."""
    argv = []
    for socket_id in range(machine.cpus, machine.max_cpus):
        argv += ["-device", f"{cpu_driver(machine, accel)},id={HOTPLUG_ID_PREFIX}{socket_id},"
                            f"socket-id={socket_id},core-id=0,thread-id=0"]
    return argv


def machine_argv(*, qemu: QemuConfig, machine: Machine, accel: Accel, kernel: Path, initrd: Optional[Path],
                 cmdline: str, sockdir: Path, ssh_port: Optional[int], name: str = "labrunner",
                 serials: Sequence[str] = ()) -> List[str]:
    """The full QEMU argv for one guest: console and QMP on unix sockets in SOCKDIR, SSH on 127.0.0.1;
    SERIALS are the arguments of further serial ports (ttyS1...)."""
    argv = [
        qemu.binary, "-name", name,
        "-machine", machine.machine_type,
        "-accel", accel_arg(machine, accel),
        "-cpu", machine.cpu_model[accel.name],
        "-smp", smp(machine, accel),
        "-m", f"{machine.memory_mib}M",
        *hotplug_cpu_devices(machine, accel),
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        # wait=on: QEMU does not start the guest before labrunner reads the console, so no line is lost.
        "-chardev", f"socket,id=con0,path={sockdir / 'console.sock'},server=on,wait=on",
        "-serial", "chardev:con0",
        *serials,
        "-qmp", f"unix:{sockdir / 'qmp.sock'},server=on,wait=off",
    ]
    if ssh_port is not None:
        argv += ["-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{ssh_port}-:22",
                 "-device", "virtio-net-pci,netdev=net0"]
    argv += ["-kernel", str(kernel)]
    if initrd is not None:
        argv += ["-initrd", str(initrd)]
    argv += ["-append", cmdline, *qemu.extra_args]
    return argv


def probe_argv(binary: str, kernel: Path) -> List[str]:
    """Boot KERNEL under KVM with no root: a working KVM runs it to the root-mount panic and QEMU exits."""
    return [binary, "-accel", "kvm", "-cpu", "host", "-machine", "q35", "-m", "256M",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-serial", "stdio",
            "-kernel", str(kernel), "-append", "console=ttyS0 panic=-1 root=/dev/lab-probe-none"]


def decide_accel(preference: str, kvm_device: str, probe: Optional[str]) -> Accel:
    """Pure decision. KVM_DEVICE: 'ok', or why /dev/kvm is unusable. PROBE: None if KVM ran the probe
    kernel, else why it did not."""
    if preference == "tcg":
        return Accel("tcg", "lab.yaml asks for tcg")
    if preference == "kvm":
        return Accel("kvm", "lab.yaml asks for kvm")
    if kvm_device != "ok":
        return Accel("tcg", kvm_device)
    if probe is not None:
        return Accel("tcg", f"/dev/kvm exists but QEMU cannot run a kernel with it: {probe}")
    return Accel("kvm", "probe: QEMU ran the kernel under KVM to its root-mount panic")


def kvm_device_state(path: str = "/dev/kvm") -> str:
    if not os.path.exists(path):
        return f"no {path}"
    if not os.access(path, os.R_OK | os.W_OK):
        return f"{path} is not readable and writable by this user"
    return "ok"


def run_probe(binary: str, kernel: Path, timeout: float = 30.0, silence: float = 10.0) -> Optional[str]:
    """None if KERNEL boots to its root-mount panic under KVM within TIMEOUT, else what went wrong. A
    kernel that has printed nothing after SILENCE seconds is stuck: under a working KVM its console
    starts within a second or two, and where QEMU cannot use KVM (LAB-NOTES) it hangs before any
    output, which the whole TIMEOUT would cost every new kernel, each state of a bisection among them."""
    argv = probe_argv(binary, kernel)
    with tempfile.TemporaryFile() as out:
        proc = process.spawn(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        start = time.monotonic()
        deadline = start + timeout
        try:
            while time.monotonic() < deadline:
                out.seek(0)
                text = out.read().decode(errors="replace")
                if "Kernel panic" in text:
                    return None
                if not text and time.monotonic() - start >= silence:
                    return f"the kernel printed nothing within {silence:g} s"
                if "KVM internal error" in text or "emulation failure" in text:
                    return "KVM internal error (emulation failure) while booting"
                if proc.poll() is not None:
                    tail = text.strip().splitlines()[-1:] or [""]
                    return f"QEMU {process.describe_exit(proc.returncode)}: {tail[0][:200]}"
                time.sleep(0.1)
            return f"the kernel did not reach its root-mount panic within {timeout:.0f} s"
        finally:
            process.stop(proc, grace=2)


def _file_id(path: Path) -> str:
    st = path.stat()
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def choose_accel(qemu: QemuConfig, kernel: Path, cache_dir: Path) -> Accel:
    """Decide KVM or TCG with a real probe, cached per (QEMU binary, kernel, host boot)."""
    device = kvm_device_state()
    if qemu.accel != "auto" or device != "ok":
        return decide_accel(qemu.accel, device, None)
    binary = _which(qemu.binary)
    key = hashlib.sha256("\n".join([_file_id(binary), _file_id(kernel), _boot_id()]).encode()).hexdigest()[:20]
    cached = cache_dir / "accel" / f"{key}.json"
    try:
        data = json.loads(cached.read_text())
        return Accel(data["name"], data["reason"] + " (cached for this host boot)")
    except (OSError, ValueError, KeyError):
        pass

    def probe(path: Path) -> None:
        path.write_text(json.dumps(dataclasses.asdict(decide_accel("auto", device, run_probe(str(binary), kernel)))))
    data = json.loads(cache.get_or_build(cache_dir, cached, probe).read_text())
    return Accel(data["name"], data["reason"])


def _which(binary: str) -> Path:
    for folder in ([""] if "/" in binary else os.environ.get("PATH", "").split(os.pathsep)):
        candidate = Path(folder, binary)
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.resolve()
    raise UserError(f"QEMU binary '{binary}' not found (qemu.binary in lab.yaml; run 'make setup')")


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (QEMU's hostfwd cannot pick one itself)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Qemu:
    """One QEMU process. Its sockets live in a private (0700) temporary folder it owns."""

    def __init__(self, argv: Sequence[str], sockdir: Path, stderr_path: Path):
        self.argv = list(argv)
        self.sockdir = sockdir
        self.stderr_path = stderr_path
        self.proc: Optional[subprocess.Popen] = None

    @staticmethod
    def make_sockdir() -> Path:
        return Path(tempfile.mkdtemp(prefix="labrunner-"))  # mkdtemp makes it 0700

    def start(self) -> None:
        with open(self.stderr_path, "wb") as err:
            self.proc = process.spawn(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=err)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_for_socket(self, name: str, timeout: float) -> Path:
        path = self.sockdir / name
        deadline = time.monotonic() + timeout
        while not path.exists():
            self.check_alive(f"while waiting for {name}")
            if time.monotonic() > deadline:
                raise QemuError(f"QEMU did not create {name} within {timeout:.0f} s", self.stderr_tail())
            time.sleep(0.02)
        return path

    def check_alive(self, when: str) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise self.died(when)

    def died(self, when: str) -> QemuError:
        return QemuError(f"QEMU {process.describe_exit(self.proc.returncode)} {when}", self.stderr_tail())

    def stderr_tail(self, lines: int = 20) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def stop(self, quit_fn=None, grace: float = 5.0) -> None:
        """QUIT_FN (QMP quit) first if given, then SIGTERM, then SIGKILL; always reaps; removes sockets."""
        try:
            if self.alive() and quit_fn is not None:
                try:
                    quit_fn()
                    self.proc.wait(timeout=grace)
                except Exception as e:  # a dead monitor or a slow exit: fall through to signals
                    log.debug("QMP quit did not stop QEMU: %s", e)
            if self.proc is not None:
                process.stop(self.proc, grace=grace)
        finally:
            for child in self.sockdir.glob("*"):
                child.unlink(missing_ok=True)
            try:
                self.sockdir.rmdir()
            except OSError:
                pass
