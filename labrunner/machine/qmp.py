"""QMP: a synchronous face on qemu.qmp's asyncio client, logging every message to qmp.jsonl.

qemu.qmp runs on an event loop in a thread of its own, so the rest of the lab (and the hotplug
controller) can call execute() with a timeout from ordinary code. Every command, reply and event is
written to the run's qmp.jsonl with a host timestamp, through the client's message hooks.
"""

import asyncio
import concurrent.futures
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any, Dict, Optional

from qemu.qmp import QMPClient, QMPError, Runstate

from ..errors import InfraError

log = logging.getLogger(__name__)


class _LoggingClient(QMPClient):
    def __init__(self, name: str, journal):
        super().__init__(name)
        self._journal = journal

    def _cb_outbound(self, msg):
        self._journal("send", msg)
        return super()._cb_outbound(msg)

    def _cb_inbound(self, msg):
        self._journal("event" if "event" in msg else "recv", msg)
        return super()._cb_inbound(msg)


class Monitor:
    """A connected QMP monitor. Use as a context manager, or call close()."""

    def __init__(self, socket_path: Path, journal_path: Optional[Path], connect_timeout: float = 10.0):
        self._journal_file = open(journal_path, "a", buffering=1) if journal_path else None
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="qmp", daemon=True)
        self._thread.start()
        self._client = _LoggingClient("labrunner", self._journal)
        try:
            self._call(self._client.connect(str(socket_path)), connect_timeout, "connect")
        except BaseException:
            self.close()
            raise

    def _journal(self, direction: str, msg) -> None:
        self._write({"dir": direction, "msg": json.loads(str(msg))})

    def note(self, record: Dict[str, Any]) -> None:
        """An entry of the lab's own in qmp.jsonl ("dir": "lab"), such as a hotplug action's outcome."""
        self._write({"dir": "lab", **record})

    def _write(self, record: Dict[str, Any]) -> None:
        with self._lock:
            if self._journal_file is not None:
                self._journal_file.write(json.dumps({"t": round(time.time(), 6), **record}) + "\n")

    def connected(self) -> bool:
        return self._client.runstate == Runstate.RUNNING

    def _call(self, coro, timeout: float, what: str):
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except (concurrent.futures.TimeoutError, asyncio.TimeoutError):
            future.cancel()
            raise InfraError(f"QMP {what}: no answer within {timeout:.0f} s") from None
        except QMPError as e:
            raise InfraError(f"QMP {what}: {e}") from e
        except (OSError, EOFError) as e:
            raise InfraError(f"QMP {what}: {e}") from e

    def execute(self, cmd: str, args: Optional[Dict[str, Any]] = None, timeout: float = 10.0) -> Any:
        return self._call(self._client.execute(cmd, args), timeout, cmd)

    def quit(self, timeout: float = 5.0) -> None:
        try:
            self.execute("quit", timeout=timeout)
        except InfraError:
            pass  # QEMU may close the socket before it answers

    def close(self) -> None:
        if self._loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self._client.disconnect(), self._loop).result(5)
            except Exception as e:  # already gone: nothing more to close
                log.debug("QMP disconnect: %s", e)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if not self._loop.is_running():
            self._loop.close()
        with self._lock:
            if self._journal_file:
                self._journal_file.close()
                self._journal_file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
