"""The serial console: one reader, many consumers.

A single thread reads the guest's ttyS0 from QEMU's console socket and, as each line arrives, writes
it to console.log prefixed with the host time since the console opened ("[+   12.345] "), and hands it
to the line listeners (boot marker, later the splat parser). Raw bytes also go to an attached session:
a pexpect spawn for scripted serial use, or an interactive terminal.
"""

import fcntl
import logging
import os
import re
import select
import socket
import termios
import threading
import time
import tty
from pathlib import Path
from typing import Callable, List, Optional

import pexpect.fdpexpect

from ..errors import InfraError

log = logging.getLogger(__name__)

ESCAPE = b"\x1d"  # Ctrl-], as in telnet and virsh console
_F_SETPIPE_SZ = 1031


def log_prefix(elapsed: float) -> str:
    return f"[+{elapsed:9.3f}] "


_PREFIX = re.compile(r"^\[\+\s*\d+\.\d{3}\] ")


def strip_prefix(line: str) -> str:
    """The guest's own text of a console.log line."""
    return _PREFIX.sub("", line, count=1)


class LineSplitter:
    """Bytes in, complete lines out: decodes leniently, drops \\r, keeps a partial line for later."""

    def __init__(self, max_line: int = 64 * 1024):
        self._buf = b""
        self._max = max_line

    def feed(self, data: bytes) -> List[str]:
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        if len(self._buf) > self._max:  # a runaway line without newline: cut it
            lines.append(self._buf)
            self._buf = b""
        return [line.rstrip(b"\r").decode("utf-8", "replace") for line in lines]

    def flush(self) -> List[str]:
        rest, self._buf = self._buf, b""
        return [rest.rstrip(b"\r").decode("utf-8", "replace")] if rest else []


def connect_unix(path: Path, timeout: float, what: str) -> socket.socket:
    """A connection to the unix socket PATH, retried until it answers (QEMU makes it a moment after it
    starts), within TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(str(path))
            return s
        except OSError as e:
            s.close()
            if time.monotonic() > deadline:
                raise InfraError(f"cannot connect to {what} {path}: {e}") from None
            time.sleep(0.02)


class Console:
    """Reads the console socket in a thread; see the module docstring."""

    def __init__(self, socket_path: Path, log_path: Path, connect_timeout: float = 10.0,
                 listener: Optional[Callable[[str], None]] = None):
        self.log_path = log_path
        self.t0 = time.time()
        self.last_output = time.monotonic()
        self.lines_seen = 0
        self.listener_errors: List[str] = []  # "listener: Error: message", for the run's verdict
        self._sock = self._connect(socket_path, connect_timeout)
        self._log = open(log_path, "a", buffering=1, errors="replace")
        self._splitter = LineSplitter()
        # A first listener given here sees every line, before the reader thread starts.
        self._listeners: List[Callable[[str], None]] = [listener] if listener else []
        self._sink_fd: Optional[int] = None
        self._lock = threading.Lock()
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="console", daemon=True)
        self._thread.start()

    @staticmethod
    def _connect(path: Path, timeout: float) -> socket.socket:
        return connect_unix(path, timeout, "the console socket")

    def add_listener(self, fn: Callable[[str], None]) -> None:
        """FN(line) is called in the reader thread for every complete line, in order."""
        with self._lock:
            self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[str], None]) -> None:
        with self._lock:
            self._listeners.remove(fn)

    def _pump(self) -> None:
        try:
            while True:
                try:
                    data = self._sock.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                self._on_data(data)
        finally:
            self._emit(self._splitter.flush())
            self.closed.set()

    def _on_data(self, data: bytes) -> None:
        self.last_output = time.monotonic()
        with self._lock:
            sink = self._sink_fd
        if sink is not None:
            try:
                os.write(sink, data)
            except OSError:  # a full or closed sink never stalls the log
                pass
        self._emit(self._splitter.feed(data))

    def _emit(self, lines: List[str]) -> None:
        if not lines:
            return
        prefix = log_prefix(time.time() - self.t0)
        self._log.write("".join(prefix + line + "\n" for line in lines))
        with self._lock:
            listeners = list(self._listeners)
        for line in lines:
            self.lines_seen += 1
            for fn in listeners:
                try:
                    fn(line)
                except Exception as e:  # a broken consumer must not stop the console log, nor go unseen
                    log.exception("console listener failed")
                    if len(self.listener_errors) < 10:
                        self.listener_errors.append(f"{getattr(fn, '__qualname__', fn)}: {type(e).__name__}: {e}")

    def write(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as e:
            raise InfraError(f"cannot write to the console: {e}") from None

    def wait_for(self, pattern: str, timeout: float, alive: Callable[[], None] = lambda: None) -> Optional[str]:
        """The first line from now on matching PATTERN, or None after TIMEOUT. ALIVE() may raise to abort."""
        rx = re.compile(pattern)
        found: List[str] = []
        event = threading.Event()

        def match(line: str) -> None:
            if not found and rx.search(line):
                found.append(line)
                event.set()

        self.add_listener(match)
        try:
            deadline = time.monotonic() + timeout
            while not event.wait(0.2):
                alive()
                if self.closed.is_set() or time.monotonic() > deadline:
                    break
            return found[0] if found else None
        finally:
            self.remove_listener(match)

    def _attach_pipe(self) -> int:
        """A pipe that receives raw console bytes from now on; returns its read end."""
        r, w = os.pipe()
        try:
            fcntl.fcntl(w, _F_SETPIPE_SZ, 1 << 20)
        except OSError:
            pass
        os.set_blocking(w, False)
        with self._lock:
            self._sink_fd = w
        return r

    def _detach_pipe(self, r: int) -> None:
        with self._lock:
            w, self._sink_fd = self._sink_fd, None
        for fd in (r, w):
            if fd is not None:
                os.close(fd)

    def expect_session(self) -> "SerialSession":
        """A pexpect session on the console (for the serial shell); close it when done."""
        return SerialSession(self, self._attach_pipe())

    def interact(self, stdin_fd: int, stdout_fd: int) -> str:
        """Bridge a terminal to the console until Ctrl-] or the guest goes away; returns why it ended."""
        r = self._attach_pipe()
        saved = termios.tcgetattr(stdin_fd) if os.isatty(stdin_fd) else None
        try:
            if saved is not None:
                tty.setraw(stdin_fd)
            while not self.closed.is_set():
                ready, _, _ = select.select([stdin_fd, r], [], [], 0.5)
                if r in ready:
                    os.write(stdout_fd, os.read(r, 65536))
                if stdin_fd in ready:
                    data = os.read(stdin_fd, 1024)
                    if not data:
                        return "end of input"
                    if ESCAPE in data:
                        self.write(data[:data.index(ESCAPE)])
                        return "escape"
                    self.write(data)
            return "guest console closed"
        finally:
            if saved is not None:
                termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
            self._detach_pipe(r)

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._thread.join(5)
        self._sock.close()
        self._log.close()


class SerialSession(pexpect.fdpexpect.fdspawn):
    """pexpect on the console: reads what the console reader forwards, writes to the console socket."""

    def __init__(self, console: Console, read_fd: int):
        super().__init__(read_fd, timeout=30, encoding="utf-8", codec_errors="replace")
        self._console = console
        self._read_fd = read_fd

    def send(self, s) -> int:
        data = s.encode() if isinstance(s, str) else s
        self._console.write(data)
        return len(data)

    def close(self) -> None:
        self._console._detach_pipe(self._read_fd)
        self.closed = True
