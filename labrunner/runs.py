"""Runs: a test on a kernel, recorded in a results directory of its own.

Each run gets results/<id>/ (created exclusively: never another run's) holding console.log, qmp.jsonl,
qemu.stderr, workload.log, dmesg.txt, labrunner.log and run.json. run.json is rewritten atomically at
every phase, so a run that dies halfway still leaves a valid record saying how far it got.
"""

import datetime
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from .config import Lab
from .errors import LabError
from .guest import CommandTimeout
from .session import BootSpec, Session

log = logging.getLogger(__name__)

PASS, FAIL, ERROR = "pass", "fail", "error"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def new_run_dir(results: Path, test: str, kernel: str) -> Path:
    """results/<UTC time>-<test>-<kernel>[-N]; mkdir without exist_ok, so no run overwrites another."""
    results.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = re.sub(r"[^A-Za-z0-9._-]", "_", f"{stamp}-{test}-{kernel}")
    for n in range(1, 1000):
        path = results / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise LabError(f"cannot make a fresh run directory under {results}")


def write_json_atomic(path: Path, data: Dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Record:
    """run.json, saved after every change."""

    def __init__(self, path: Path, **fields):
        self.path = path
        self.data: Dict[str, Any] = {
            "id": path.parent.name, "test": None, "kernel": {}, "qemu": {}, "machine": None,
            "started_at": _now(), "finished_at": None, "duration_s": None,
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

    def finish(self, verdict: str, reason: str) -> None:
        self.data.update(verdict=verdict, reason=reason, finished_at=_now(),
                         duration_s=round(time.monotonic() - self._t0, 3),
                         artifacts=sorted(p.name for p in self.path.parent.iterdir()
                                          if p.is_file() and not p.name.startswith(".") and p.name != "run.json"))
        self.save()

    def save(self) -> None:
        write_json_atomic(self.path, self.data)


def _session_fields(s: Session) -> Dict[str, Any]:
    fields: Dict[str, Any] = {"machine": s.machine.name}
    if s.kernel is not None:
        fields["kernel"] = {"name": s.kernel.name, "release": None, "source": s.kernel.source}
    if s.accel is not None:
        fields["qemu"] = {"version": s.qemu_version, "accel": s.accel.name, "accel_reason": s.accel.reason,
                          "argv": s.qemu.argv if s.qemu else None}
    return fields


def run_test(lab: Lab, test_name: Optional[str], *, kernel: Optional[str] = None, results: Optional[Path] = None,
             duration: Optional[int] = None, progress: Callable[[str], None] = lambda s: None) -> Dict[str, Any]:
    """Boot, run TEST's workload, collect everything; the final run.json contents."""
    test = lab.pick("tests", test_name)
    kernel_cfg = lab.pick("kernels", kernel)
    duration = duration or test.duration
    outdir = new_run_dir(results or lab.results_dir, test.name, kernel_cfg.name)
    handler = logging.FileHandler(outdir / "labrunner.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger("labrunner")
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    record = Record(outdir / "run.json", test=test.name, duration_requested_s=duration)
    progress(f"run {outdir}")
    spec = BootSpec(kernel=kernel_cfg.name, machine=test.machine, image=test.image, cmdline=test.cmdline,
                    boot_timeout=test.timeouts.boot, ssh_timeout=test.timeouts.ssh)
    session = Session(lab, spec, outdir, progress)
    try:
        try:
            session.prepare()
            record.update(**_session_fields(session))
            session.start()
            record.update(**_session_fields(session), phases={"boot_s": round(session.boot_s, 3), "workload_s": None})
            _, release = session.ssh.output("uname -r", timeout=60)
            record.data["kernel"]["release"] = release.strip()
            verdict, reason = _workload(session, test, duration, outdir, record, progress)
            progress("collecting dmesg")
            (outdir / "dmesg.txt").write_bytes(_dmesg(session))
            record.finish(verdict, reason)
        except LabError as e:
            e = session.infra_cause(e)
            record.finish(ERROR, str(e))
        except BaseException as e:  # Ctrl-C, SIGTERM (as SystemExit): record, then let it end the program
            record.finish(ERROR, f"interrupted ({type(e).__name__})")
            raise
    finally:
        session.close()
        root.removeHandler(handler)
        handler.close()
    return record.data


def _workload(session: Session, test, duration: int, outdir: Path, record: Record,
              progress: Callable[[str], None]):
    progress(f"workload ({duration} s)")
    t0 = time.monotonic()
    with open(outdir / "workload.log", "wb") as out:
        def sink(data: bytes) -> None:
            out.write(data)
            out.flush()
        try:
            status = session.ssh.run(test.command, timeout=duration + test.timeouts.workload_grace,
                                     stdout=sink, stderr=sink, env={"LAB_DURATION": str(duration)})
        except CommandTimeout as e:
            status = None
            reason = f"workload timed out: {e}"
    record.data["phases"]["workload_s"] = round(time.monotonic() - t0, 3)
    record.update(workload_exit=status)
    if status is None:
        return FAIL, reason
    if status != 0:
        return FAIL, f"workload exited with status {status}"
    return PASS, "workload ended cleanly"


def _dmesg(session: Session) -> bytes:
    chunks = []
    session.ssh.run("dmesg", timeout=60, stdout=chunks.append)
    return b"".join(chunks)
