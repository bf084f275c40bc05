"""The one-shot command channel's pure parts, and the boot's phase breakdown."""
import gzip
from pathlib import Path

from labrunner.machine import oneshot, qemu
from labrunner.machine.session import Phases

from .test_qemu import MACHINE


def _cpio_names(data: bytes):
    names, i = [], 0
    while i < len(data):
        assert data[i:i + 6] == b"070701"
        namesize, filesize = int(data[i + 94:i + 102], 16), int(data[i + 54:i + 62], 16)
        name = data[i + 110:i + 110 + namesize - 1].decode()
        start = (i + 110 + namesize + 3) & ~3
        names.append((name, data[start:start + filesize]))
        i = (start + filesize + 3) & ~3
        if name == "TRAILER!!!":
            break
    return names


def test_the_command_travels_as_an_appended_archive(tmp_path):
    base = tmp_path / "base.cpio.gz"
    base.write_bytes(gzip.compress(b"base archive"))
    dest = oneshot.initrd_with_command(base, "printf '%s\\n' \"a b\" >&2; exit 3", tmp_path / "initrd")
    data, size = dest.read_bytes(), len(base.read_bytes())
    assert data.startswith(base.read_bytes())
    at = size + -size % 4  # where the kernel looks for the next archive
    assert data[size:at] == b"\0" * (at - size)
    entries = dict(_cpio_names(data[at:]))
    assert entries["lab/oneshot"] == b"printf '%s\\n' \"a b\" >&2; exit 3\n" and "lab" in entries


def test_serial_ports_follow_the_console_and_qemu_waits_for_them(tmp_path):
    ports = [tmp_path / "stdout.sock", tmp_path / "stderr.sock"]
    argv = qemu.machine_argv(qemu=qemu.QemuConfig("qemu-system-x86_64", "tcg", ()), machine=MACHINE,
                             accel=qemu.Accel("tcg", "test"), kernel=Path("bzImage"), initrd=None, cmdline="",
                             sockdir=tmp_path, ssh_port=None, serials=oneshot.serial_argv(ports))
    serials = [argv[i + 1] for i, a in enumerate(argv) if a == "-serial"]
    assert serials == ["chardev:con0", "chardev:ser1", "chardev:ser2"]
    assert f"socket,id=ser1,path={ports[0]},server=on,wait=on" in argv
    assert argv.index("-qmp") > argv.index("chardev:ser2")  # QMP comes up once the ports are connected


def test_status_line_is_found_inside_kernel_noise():
    m = oneshot.STATUS.search("[   3.1] random: crng init donelabrunner-init: oneshot exit 255")
    assert m and int(m.group(1)) == 255


def test_phases_from_marks_and_the_kernels_own_clock():
    p = Phases()
    p.marks = {"spawn": 10.0, "console": 10.1, "init_start": 13.0, "ready": 13.8, "channel": 13.8,
               "command_done": 14.0, "off": 14.3}
    p.on_console("[    2.500000] Run /init as init process")  # the mark is already set; the clock counts
    assert p.durations() == {"qemu": 0.1, "firmware": 0.4, "kernel": 2.5, "init": 0.8, "channel": 0.0,
                             "command": 0.2, "poweroff": 0.3}
    assert p.describe().startswith("qemu 0.10 s, firmware 0.40 s, kernel 2.50 s")


def test_the_kernels_clock_is_read_with_printks_caller_on_the_line():
    p = Phases()
    p.on_console("[    2.500000][    T1] Run /init as init process")  # CONFIG_PRINTK_CALLER
    assert p._kernel_s == 2.5
