"""Runs: a test on a kernel, recorded in a results directory of its own.

Each run gets results/<id>/ (created exclusively: never another run's) holding console.log, qmp.jsonl,
qemu.stderr, workload.log, dmesg.txt, labrunner.log and run.json. run.json is rewritten atomically at
every phase, so a run that dies halfway still leaves a valid record saying how far it got.
"""

import dataclasses
import datetime
import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..analysis import splats, symbols
from ..config import Lab
from ..errors import InfraError, LabError
from ..machine import hotplug
from ..machine.guest import CommandTimeout
from ..machine.session import BootSpec, Session

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
             duration: Optional[int] = None, stop_on_first_splat: Optional[bool] = None,
             progress: Callable[[str], None] = lambda s: None) -> Dict[str, Any]:
    """Boot, run TEST's workload, collect everything; the final run.json contents. DURATION and
    STOP_ON_FIRST_SPLAT, when given, override the test's own."""
    test = lab.pick("tests", test_name)
    if stop_on_first_splat is not None:
        test = dataclasses.replace(test, stop_on_first_splat=stop_on_first_splat)
    kernel_cfg = lab.pick("kernels", kernel or test.kernel)
    if test.hotplug is not None:
        hotplug.check_machine(lab.pick("machines", test.machine))
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
    collector = SplatCollector(test.ignore_splats)
    try:
        try:
            session.prepare()
            record.update(**_session_fields(session))
            session.on_console = collector.feed  # from the very first line, boot included
            session.start()
            record.update(**_session_fields(session), phases={"boot_s": round(session.boot_s, 3), "workload_s": None})
            _, release = session.ssh.output("uname -r", timeout=60)
            record.data["kernel"]["release"] = release.strip()
            verdict, reason, hung = _workload(session, test, duration, outdir, record, progress, collector)
            collector.finish_console()
            if not hung:  # a hung guest may not answer; its console was kept
                progress("collecting dmesg")
                try:
                    dmesg = _dmesg(session)
                except CommandTimeout as e:  # it stopped answering after the workload: that is news too
                    verdict, reason, hung = FAIL, f"guest stopped answering: {e}", True
                else:
                    (outdir / "dmesg.txt").write_bytes(dmesg)
                    collector.add_dmesg(dmesg.decode("utf-8", "replace"))
            verdict, reason = _judge(verdict, reason, collector, keep_reason=hung)
            record.update(splats=_final_splats(collector, session, progress))
            record.finish(verdict, reason)
        except CommandTimeout as e:  # a guest that stops answering outside the workload (uname -r)
            record.update(splats=_final_splats(collector, session, progress))
            record.finish(*_judge(FAIL, f"guest stopped answering: {e}", collector, keep_reason=True))
        except LabError as e:
            e = session.infra_cause(e)
            record.update(splats=_final_splats(collector, session, progress))
            if collector.failures():  # the kernel said why it went (a panic ends QEMU: -no-reboot)
                record.finish(*_judge(FAIL, str(e).splitlines()[0], collector, keep_reason=True))
            else:
                record.finish(ERROR, str(e))
        except BaseException as e:  # Ctrl-C, SIGTERM (as SystemExit): record, then let it end the program
            record.finish(ERROR, f"interrupted ({type(e).__name__})")
            raise
    finally:
        session.close()
        root.removeHandler(handler)
        handler.close()
    return record.data


def _final_splats(collector: "SplatCollector", session: Session,
                  progress: Callable[[str], None]) -> List[Dict[str, Any]]:
    """The run's reports for run.json, the console's last one closed, with file:line on their frames
    when the kernel has a vmlinux. A failed symbolisation costs only the file:line: it is logged, and
    the run's verdict stands."""
    collector.finish_console()
    summary = collector.summary()
    vmlinux = session.kernel.vmlinux if session.kernel else None
    if summary and vmlinux:
        progress("symbolising splat frames")
        try:
            n = symbols.symbolize(summary, vmlinux)
            log.info("symbolised %d frames with %s", n, vmlinux)
        except LabError as e:
            log.warning("cannot symbolise frames: %s", e)
    return summary


class SplatCollector:
    """The splat parser on the live console (fed from the console thread), plus dmesg at the end.

    A report still open when the console has been silent for QUIET_S seconds is closed then: a guest
    that deadlocks right after printing a splat prints nothing more to end it."""

    QUIET_S = 5.0

    def __init__(self, ignore: Sequence[str]):
        self._parser = splats.Parser()
        self._lock = threading.Lock()
        self._ignore = [re.compile(p) for p in ignore]
        self._last_line = time.monotonic()
        self.reports: List[Tuple[str, splats.Report]] = []  # (source, report), in order of appearance
        self._keys = set()

    def feed(self, line: str) -> None:
        with self._lock:
            self._last_line = time.monotonic()
            self._add("console", self._parser.feed(line))

    def poll(self) -> None:
        with self._lock:
            if self._parser.in_report and time.monotonic() - self._last_line > self.QUIET_S:
                self._add("console", self._parser.flush())

    def finish_console(self) -> None:
        with self._lock:
            self._add("console", self._parser.flush())

    def add_dmesg(self, text: str) -> None:
        """Reports the console dropped (a slow or lossy console); those it saw are not counted again."""
        with self._lock:
            self._add("dmesg", splats.parse_lines(text.splitlines()))

    def _add(self, source: str, reports: List[splats.Report]) -> None:
        for report in reports:
            if report.key not in self._keys:
                self._keys.add(report.key)
                self.reports.append((source, report))

    def ignored(self, report: splats.Report) -> bool:
        return any(rx.search(report.title) for rx in self._ignore)

    def failures(self) -> List[splats.Report]:
        with self._lock:
            return [r for _, r in self.reports if not self.ignored(r)]

    def summary(self) -> List[Dict[str, Any]]:
        """One entry per distinct bug (signature), in order of first appearance, with its count."""
        with self._lock:
            by_sig: Dict[str, Dict[str, Any]] = {}
            for source, r in self.reports:
                entry = by_sig.get(r.signature)
                if entry is None:
                    entry = by_sig[r.signature] = {**r.to_dict(), "source": source, "ignored": self.ignored(r),
                                                   "occurrences": 0}
                entry["occurrences"] += 1
            return list(by_sig.values())


class SplatStop(Exception):
    """stop_on_first_splat: the run stops at the first report that is not ignored."""


class Hang(Exception):
    """Neither the console nor the workload said anything for too long."""


def _last_json(text: str) -> Optional[Dict[str, Any]]:
    """The last line of TEXT that is a JSON object: a workload's closing counts."""
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def _workload(session: Session, test, duration: int, outdir: Path, record: Record,
              progress: Callable[[str], None], collector: SplatCollector):
    controller = None
    if test.hotplug is not None:
        controller = hotplug.Controller(session.qmp, session.console, session.machine, session.accel, test.hotplug)
    progress(f"workload ({duration} s)" + (", hotplug" if controller else ""))
    t0 = time.monotonic()
    last_output = [t0]
    stdout: List[bytes] = []
    verdict, hung = None, False
    with open(outdir / "workload.log", "wb") as out:
        def sink(keep: bool):
            def write(data: bytes) -> None:
                last_output[0] = time.monotonic()
                out.write(data)
                out.flush()
                if keep:
                    stdout.append(data)
            return write

        def watch() -> None:
            if controller is not None and controller.error is not None:
                e = controller.error
                raise e if isinstance(e, LabError) else InfraError(f"hotplug controller failed: {e!r}")
            collector.poll()
            if test.stop_on_first_splat and collector.failures():
                raise SplatStop()
            quiet = time.monotonic() - max(last_output[0], session.console.last_output)
            if quiet > test.timeouts.hang:
                raise Hang(f"hang: no console output and no workload progress for {quiet:.0f} s")

        try:
            if controller is not None:
                controller.start()
            status = session.ssh.run(test.command, timeout=duration + test.timeouts.workload_grace,
                                     stdout=sink(True), stderr=sink(False), watch=watch,
                                     env={**test.env, "LAB_DURATION": str(duration)})
        except CommandTimeout as e:
            status, verdict = None, (FAIL, f"workload timed out: {e}")
        except Hang as e:
            status, verdict, hung = None, (FAIL, str(e)), True
        except SplatStop:
            status, verdict = None, (FAIL, "stopped at the first splat")
        finally:
            if controller is not None:
                controller.stop()
                record.update(hotplug=controller.summary())
    if hung:
        progress("hang: gathering evidence")
        record.update(hang_evidence=_hang_evidence(session))
    record.data["phases"]["workload_s"] = round(time.monotonic() - t0, 3)
    record.update(workload_exit=status, workload=_last_json(b"".join(stdout).decode("utf-8", "replace")))
    if verdict is not None:
        return (*verdict, hung)
    if status != 0:
        return FAIL, f"workload exited with status {status}", False
    return PASS, "workload ended cleanly", False


def _judge(verdict: str, reason: str, collector: SplatCollector, keep_reason: bool) -> Tuple[str, str]:
    """A kernel report fails the run, named by the first one; KEEP_REASON adds what came after it (a
    hang, or QEMU's end after a panic)."""
    failures = collector.failures()
    if not failures:
        return verdict, reason
    why = failures[0].title + (f" ({len(failures)} reports)" if len(failures) > 1 else "")
    if keep_reason:
        why += f"; then {reason}"
    return FAIL, why


def _hang_evidence(session: Session) -> List[str]:
    """Ask the stuck kernel for its blocked tasks (sysrq w) and CPU backtraces (sysrq l), over SSH or,
    if SSH is stuck too, over the serial console; then an NMI. The answers land in console.log."""
    sysrq = "echo w > /proc/sysrq-trigger; echo l > /proc/sysrq-trigger"
    done: List[str] = []
    try:
        session.ssh.run(sysrq, timeout=15)
        done.append("sysrq w,l over SSH")
    except (LabError, CommandTimeout) as e:
        log.info("sysrq over SSH failed: %s", e)
        try:
            shell = session.serial_shell()
            try:
                shell.wait_prompt(10)
                shell.run(sysrq, 15)
                done.append("sysrq w,l over the serial console")
            finally:
                shell.session.close()
        except (LabError, CommandTimeout) as e2:
            log.info("sysrq over the serial console failed: %s", e2)
    try:
        session.qmp.execute("inject-nmi", timeout=5)
        done.append("QMP inject-nmi")
    except LabError as e:
        log.info("inject-nmi failed: %s", e)
    time.sleep(3)  # let the kernel print what it was asked for
    return done


def _dmesg(session: Session) -> bytes:
    chunks = []
    session.ssh.run("dmesg", timeout=20, stdout=chunks.append)  # a second or two when the guest is well
    return b"".join(chunks)
