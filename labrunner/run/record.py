"""run.json and the results folder of one run.

Each run gets results/<id>/ (created exclusively: never another run's). run.json is rewritten
atomically at every phase, so a run that dies halfway still leaves a valid record saying how far it got.
"""

import datetime
import json
import re
import time
from pathlib import Path
from typing import Any, Dict, Tuple

from ..cache import write_atomic
from ..errors import LabError
from .verdict import ERROR


def now(timespec: str = "seconds") -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec=timespec)


def fresh_dir(parent: Path, name: str) -> Path:
    """PARENT/NAME[-N], made without exist_ok, so nothing ever writes into another's folder."""
    parent.mkdir(parents=True, exist_ok=True)
    base = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    for n in range(1, 1000):
        path = parent / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise LabError(f"cannot make a fresh folder {base} under {parent}")


def utc_stamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")


def new_run_dir(results: Path, test: str, kernel: str) -> Path:
    """results/<UTC time>-<test>-<kernel>[-N]."""
    return fresh_dir(results, f"{utc_stamp()}-{test}-{kernel}")


def write_json_atomic(path: Path, data: Dict[str, Any]) -> None:
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode(), mode=0o644)


class Record:
    """run.json, saved after every change."""

    def __init__(self, path: Path, **fields):
        self.path = path
        self.data: Dict[str, Any] = {
            "id": path.parent.name, "test": None, "kernel": {}, "qemu": {}, "machine": None,
            "started_at": now(), "finished_at": None, "duration_s": None,
            "phases": {"boot_s": None, "workload_s": None},
            "verdict": ERROR, "reason": "incomplete: labrunner stopped before the run ended",
            "splats": [], "artifacts": [],
        }
        self.data.update(fields)
        self._t0 = time.monotonic()
        self.save()

    def update(self, **fields) -> None:
        self.data.update(fields)
        self.save()

    def finish(self, verdict: str, reason: str, flags: Tuple[str, ...] = ()) -> None:
        self.data.update(verdict=verdict, reason=reason, flags=list(flags), finished_at=now(),
                         duration_s=round(time.monotonic() - self._t0, 3),
                         artifacts=sorted(p.name for p in self.path.parent.iterdir()
                                          if p.is_file() and not p.name.startswith(".") and p.name != "run.json"))
        self.save()

    def save(self) -> None:
        write_json_atomic(self.path, self.data)
