"""The one-shot command channel of `labrunner boot -- CMD`: the command in, its output and exit status
out, exact, without a network or an SSH server.

- In: CMD travels in a tiny cpio archive appended to the image's initrd, as /lab/oneshot.
- Out: the image's init runs it with stdout on ttyS1 and stderr on ttyS2, both raw, each a socket to
  labrunner (serial_argv), so binary output arrives byte for byte and never mixed with kernel messages
  on the console.
- Status: init prints "labrunner-init: oneshot exit N" on the console once both ports are closed (a
  tty's close waits until its UART has handed every byte to QEMU), then powers off. The readers drain
  their sockets until QEMU is gone, so nothing written before the status is lost.
SSH stays for `run`, for file transfer and for `boot --ssh`: dropbear's start and an ed25519 key
exchange under TCG are what this channel saves.
"""

import io
import re
import socket
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from ..build.image import CpioWriter
from .console import Console, connect_unix

STATUS = re.compile(r"labrunner-init: oneshot exit (\d+)")
Sink = Callable[[bytes], None]


def command_archive(command: str) -> bytes:
    """A cpio archive holding CMD as /lab/oneshot, to append to an initrd (the kernel unpacks both)."""
    buf = io.BytesIO()
    w = CpioWriter(buf)
    w.dir("lab")
    w.file("lab/oneshot", command.encode() + b"\n", 0o644)
    w.close()
    return buf.getvalue()


def initrd_with_command(base: Path, command: str, dest: Path) -> Path:
    """BASE's archives followed by the command's, written to DEST (a run's own folder, not the cache).
    The kernel takes an uncompressed archive after a compressed one only at a 4-byte boundary, and
    skips the NUL bytes that pad it there."""
    data = base.read_bytes()
    dest.write_bytes(data + b"\0" * (-len(data) % 4) + command_archive(command))
    return dest


def serial_argv(sockets: Sequence[Path]) -> List[str]:
    """QEMU arguments for the serial ports after the console (ttyS1, ttyS2, ...), each a socket QEMU
    waits on before starting the guest, so no byte is written before labrunner listens."""
    argv: List[str] = []
    for i, path in enumerate(sockets, start=1):
        argv += ["-chardev", f"socket,id=ser{i},path={path},server=on,wait=on", "-serial", f"chardev:ser{i}"]
    return argv


class Channel:
    """Reads CMD's stdout and stderr into SINKS, and watches the console for its exit status."""

    def __init__(self, console: Console):
        self._status: Optional[int] = None
        self._done = threading.Event()
        self._readers: List[threading.Thread] = []
        self._socks: List[socket.socket] = []
        self.console = console
        console.add_listener(self._on_console)

    def connect(self, sockets: Sequence[Path], sinks: Sequence[Sink], timeout: float = 30.0) -> None:
        """Connect to the port sockets in order (QEMU waits on each in turn) and start reading."""
        for path, sink in zip(sockets, sinks):
            s = connect_unix(path, timeout, "the command channel")
            self._socks.append(s)
            reader = threading.Thread(target=self._read, args=(s, sink), name=f"oneshot-{path.stem}", daemon=True)
            reader.start()
            self._readers.append(reader)

    @staticmethod
    def _read(sock: socket.socket, sink: Sink) -> None:
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            sink(data)

    def _on_console(self, line: str) -> None:
        m = STATUS.search(line)
        if m and not self._done.is_set():
            self._status = int(m.group(1))
            self._done.set()

    def wait(self, timeout: float, alive: Callable[[], None]) -> Optional[int]:
        """CMD's exit status, or None if it did not end within TIMEOUT; ALIVE() raises if QEMU died."""
        deadline = time.monotonic() + timeout
        while not self._done.wait(0.1):
            alive()
            if time.monotonic() > deadline or self.console.closed.is_set():
                return None
        return self._status

    def close(self, timeout: float = 10.0) -> None:
        """After QEMU has gone: let the readers drain what the sockets still hold, then close them."""
        for reader in self._readers:
            reader.join(timeout)
        for s in self._socks:
            s.close()
        self.console.remove_listener(self._on_console)
