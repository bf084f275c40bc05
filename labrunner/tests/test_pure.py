"""The pure helpers: cpio writer, ldd and apt parsing, module order, bzImage header, console lines."""
import io
import struct
import time
from pathlib import Path

from labrunner.build import debian, image, kernel, modules
from labrunner.machine.console import LineSplitter, log_prefix, strip_prefix


def read_newc(data: bytes):
    """A minimal newc reader, written for the test: [(name, mode, body)]."""
    out, pos = [], 0
    while True:
        assert data[pos:pos + 6] == b"070701"
        fields = [int(data[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name = data[pos + 110: pos + 110 + namesize - 1].decode()
        pos = (pos + 110 + namesize + 3) & ~3
        body = data[pos:pos + size]
        pos = (pos + size + 3) & ~3
        if name == "TRAILER!!!":
            return out
        out.append((name, mode, body))


def test_cpio_writer_round_trip():
    buf = io.BytesIO()
    w = image.CpioWriter(buf)
    w.file("/etc/passwd", b"root:x:0:0::/root:/bin/sh\n")
    w.symlink("bin/sh", "busybox")
    w.chardev("dev/console", 5, 1)
    w.file("etc/passwd", b"again")  # a second entry of one name is dropped
    w.close()
    entries = read_newc(buf.getvalue())
    names = [e[0] for e in entries]
    assert names == ["etc", "etc/passwd", "bin", "bin/sh", "dev/console"]
    assert entries[1][2] == b"root:x:0:0::/root:/bin/sh\n" and entries[1][1] == 0o100644
    assert entries[3][2] == b"busybox" and entries[3][1] == 0o120777
    assert entries[4][1] == 0o020600


def test_parse_ldd():
    text = """\tlinux-vdso.so.1 (0x00007ffd)
\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f95)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f95)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f95)
"""
    assert image.parse_ldd(text) == ["/lib/x86_64-linux-gnu/libz.so.1", "/lib/x86_64-linux-gnu/libc.so.6",
                                     "/lib64/ld-linux-x86-64.so.2"]


def test_module_depends_and_load_order():
    ko = b"\x7fELF...\0license=GPL\0depends=kvm,ccp\0name=kvm_amd\0"
    assert modules.module_depends(ko) == ["kvm", "ccp"]
    assert modules.module_depends(b"\0depends=\0") == []
    deps = {"kvm_amd": ["kvm", "ccp"], "kvm": ["irqbypass"], "irqbypass": [], "ccp": [], "virtio_net": ["net_failover"],
            "net_failover": ["failover"], "failover": []}
    order = modules.load_order(["kvm-amd", "virtio_pci", "virtio_net", "kvm"], deps.get)
    assert order == ["irqbypass", "kvm", "ccp", "kvm_amd", "failover", "net_failover", "virtio_net"]
    # virtio_pci has no module here (built in): it is not in the order, and nothing waits for it
    assert modules.load_waves(order, deps) == [(0, "irqbypass"), (0, "ccp"), (0, "failover"), (1, "kvm"),
                                             (1, "net_failover"), (2, "kvm_amd"), (2, "virtio_net")]


def test_module_name():
    assert modules.module_name(Path("x/kvm-amd.ko.xz")) == "kvm_amd"
    assert modules.module_name(Path("virtio_net.ko")) == "virtio_net"


def test_bzimage_release():
    header = bytearray(0x600)
    header[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", header, 0x20E, 0x300)
    header[0x500:0x540] = b"6.12.95+deb12-amd64 (debian-kernel@lists) #1 SMP\0".ljust(0x40, b"\0")
    assert kernel.bzimage_release(bytes(header)) == "6.12.95+deb12-amd64"
    assert kernel.bzimage_release(b"\0" * 0x600) is None


def test_parse_apt_show_and_metapackage():
    text = """Package: linux-image-amd64
Source: linux-signed-amd64 (6.12.95+1~bpo12+1)
Version: 6.12.95-1~bpo12+1
Depends: linux-image-6.12.95+deb12-amd64 (= 6.12.95-1~bpo12+1)
Description: Linux for 64-bit PCs (meta-package)
 This package depends on the latest Linux kernel.

Package: linux-image-amd64
Version: 6.1.0
"""
    fields = debian.parse_apt_show(text)
    assert fields["Version"] == "6.12.95-1~bpo12+1"
    assert debian.image_dependency(fields) == "linux-image-6.12.95+deb12-amd64"
    assert debian.image_dependency({"Depends": "kmod, linux-base (>= 4.3~), initramfs-tools"}) is None


def test_line_splitter_keeps_partial_lines_and_drops_cr():
    s = LineSplitter()
    assert s.feed(b"[    1.0] hello\r\n[    1.1] wor") == ["[    1.0] hello"]
    assert s.feed(b"ld\n\xff\xfebad\n") == ["[    1.1] world", "\ufffd\ufffdbad"]
    assert s.feed(b"/ # ") == []
    assert s.flush() == ["/ # "]


def test_line_splitter_cuts_runaway_lines():
    s = LineSplitter(max_line=10)
    assert s.feed(b"x" * 25) == ["x" * 25]
    assert s.feed(b"\n") == [""]


def test_console_prefix_round_trip():
    line = log_prefix(12.3456) + "[   1.000] WARNING: x"
    assert line.startswith("[+   12.346] ")
    assert strip_prefix(line) == "[   1.000] WARNING: x"


KEYS = """
import sys, time
from pathlib import Path
from labrunner.build import image
import cryptography.hazmat.primitives.asymmetric.ed25519  # imported before the start, like the rest
go = Path(sys.argv[2])
while not go.exists():  # all start at once, as a nightly's first runs do
    time.sleep(0.001)
keys = image.ensure_keys(Path(sys.argv[1]))
print(keys.client_pub, keys.host_pub)
"""


def test_keys_made_by_several_runs_at_once_are_one_pair(tmp_path):
    """A nightly's first runs on a fresh lab all want the keys: one makes them, the others use them."""
    import subprocess
    import sys
    from .conftest import REPO
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", KEYS, str(tmp_path / "state"), str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
             for _ in range(6)]
    time.sleep(3)  # every one imported and waiting
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    assert len({out for out, _ in outs}) == 1
