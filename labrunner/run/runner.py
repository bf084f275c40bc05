"""One run: a test on a kernel, from boot to verdict, recorded in a results folder of its own.

The run holds console.log, qmp.jsonl, qemu.stderr, workload.log, progress.jsonl (the workload's
progress lines with their time), dmesg.txt, labrunner.log and run.json (record.py). Times in qmp.jsonl
and progress.jsonl are the host's clock; console.log's are seconds since run.json's console_started_at.
The runner only observes: what it saw goes into a verdict.Observed, and verdict.judge()
decides, whichever way the run ended.
"""

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from ..analysis import clocks, symbols
from ..config import Lab
from ..errors import InfraError, Interrupted, LabError
from ..machine import hotplug
from ..machine.console import LineSplitter
from ..machine.guest import CommandTimeout
from ..machine.session import BootSpec, Session
from . import subtests
from .collect import SplatCollector
from .progress import Progress
from .record import Record, new_run_dir
from .verdict import ERROR, FAIL, PASS, Observed, judge

log = logging.getLogger(__name__)

__all__ = ["ERROR", "FAIL", "PASS", "run_test"]


def _session_fields(s: Session) -> Dict[str, Any]:
    fields: Dict[str, Any] = {"machine": s.machine.name}
    if s.kernel is not None:
        fields["kernel"] = {"name": s.kernel.name, "release": None, "source": s.kernel.source,
                            "commit": s.kernel.commit, "patchset_hash": s.kernel.patchset_hash}
    if s.accel is not None:
        fields["qemu"] = {"version": s.qemu_version, "accel": s.accel.name, "accel_reason": s.accel.reason,
                          "argv": s.qemu.argv if s.qemu else None}
    return fields


def run_test(lab: Lab, test_name: Optional[str], *, kernel: Optional[str] = None, results: Optional[Path] = None,
             duration: Optional[int] = None, stop_on_first_splat: Optional[bool] = None,
             kernel_artifacts: Optional[Path] = None, progress: Callable[[str], None] = lambda s: None) -> Dict[str, Any]:
    """Boot, run TEST's workload, collect everything; the final run.json contents. DURATION and
    STOP_ON_FIRST_SPLAT, when given, override the test's own. KERNEL_ARTIFACTS: the kernel as another
    host resolved it (build.shipment), instead of resolving it here."""
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
                    boot_timeout=test.timeouts.boot, ssh_timeout=test.timeouts.ssh, kernel_artifacts=kernel_artifacts,
                    selftests=test.selftests)
    session = Session(lab, spec, outdir, progress)
    collector = SplatCollector(test.ignore_splats)
    seen: Dict[str, Any] = {}  # verdict.Observed's fields, as the run sees them
    try:
        try:
            session.prepare()
            record.update(**_session_fields(session))
            session.on_console = collector.feed  # from the very first line, boot included
            session.start()
            record.update(**_session_fields(session), console_started_at=session.console.t0,
                          phases={"boot_s": round(session.boot_s, 3), "workload_s": None,
                                  "boot": session.phases.durations()})
            _, release = session.ssh.output("uname -r", timeout=60)
            record.data["kernel"]["release"] = release.strip()
            seen.update(_workload(session, test, duration, outdir, record, progress, collector))
            collector.finish_console()
            if not seen.get("hang"):  # a hung guest may not answer; its console was kept
                progress("collecting dmesg")
                dmesg = _dmesg(session)
                (outdir / "dmesg.txt").write_bytes(dmesg)
                collector.add_dmesg(dmesg.decode("utf-8", "replace"))
        except CommandTimeout as e:  # the guest stopped answering outside the workload (uname -r, dmesg)
            seen["unresponsive"] = str(e)
        except LabError as e:
            seen["infra"] = str(session.infra_cause(e))
        except BaseException as e:  # a signal (Interrupted), or a bug: record, then let it end the program
            v = judge(Observed(interrupted=e.signal_name if isinstance(e, Interrupted) else type(e).__name__))
            record.finish(v.verdict, v.reason, v.flags)
            raise
        record.update(splats=_final_splats(collector, session, progress))
        console_errors = session.console.listener_errors if session.console else []
        v = judge(Observed(reports=tuple(r.title for r in collector.failures()), lockdep_off=collector.lockdep_off(),
                           analysis_errors=tuple(collector.errors + console_errors), **seen))
        record.finish(v.verdict, v.reason, v.flags)
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
              progress: Callable[[str], None], collector: SplatCollector) -> Dict[str, Any]:
    """Run the workload with the hotplug schedule, watching for reports and hangs; what it observed
    (verdict.Observed's workload fields)."""
    controller = None
    if test.hotplug is not None:
        controller = hotplug.Controller(session.qmp, session.console, session.machine, session.accel, test.hotplug)
    progress(f"workload ({duration} s)" + (", hotplug" if controller else ""))
    t0 = time.monotonic()
    last_output = [t0]
    stdout: List[bytes] = []
    lines, counters = LineSplitter(), Progress()
    seen: Dict[str, Any] = {}
    failed_at: Dict[str, float] = {}  # when stop_on_first_splat first saw a failure
    with open(outdir / "workload.log", "wb") as out, open(outdir / "progress.jsonl", "w") as samples:
        def sink(keep: bool):
            def write(data: bytes) -> None:
                last_output[0] = time.monotonic()
                out.write(data)
                out.flush()
                if keep:
                    stdout.append(data)
                    for line in lines.feed(data):
                        if (sample := counters.feed(line, last_output[0])) is not None:
                            samples.write(json.dumps({"t": round(time.time(), 3), **sample}) + "\n")
                            samples.flush()
            return write

        def watch() -> None:
            if controller is not None and controller.error is not None:
                e = controller.error
                raise e if isinstance(e, LabError) else InfraError(f"hotplug controller failed: {e!r}")
            collector.poll()
            now = time.monotonic()
            if test.stop_on_first_splat and collector.failures():
                # Not in the middle of another report printed at once (it would be cut and count as a
                # bug of its own); the collector closes a report after QUIET_S s of silence anyway.
                first_failure = failed_at.setdefault("t", now)
                if not collector.printing() or now - first_failure > 2 * collector.QUIET_S:
                    raise SplatStop()
            quiet = now - max(last_output[0], session.console.last_output)
            if quiet > test.timeouts.hang:
                raise Hang(f"hang: no console output and no workload output for {quiet:.0f} s")
            stalled = counters.stalled_for(now)
            if stalled is not None and stalled > test.timeouts.hang:
                raise Hang(f"hang: no workload progress for {stalled:.0f} s ({counters.describe()}), "
                           f"though it kept printing")

        try:
            if controller is not None:
                controller.start()
            seen["workload_exit"] = session.ssh.run(test.command, timeout=duration + test.timeouts.workload_grace,
                                                    stdout=sink(True), stderr=sink(False), watch=watch,
                                                    env={**test.env, "LAB_DURATION": str(duration)})
        except CommandTimeout as e:
            seen["workload_timeout"] = str(e)
        except Hang as e:
            seen["hang"] = str(e)
        except SplatStop:
            seen["stopped_at_splat"] = True
        finally:
            if controller is not None:
                controller.stop()
                seen["hotplug"] = controller.summary()
                record.update(hotplug=seen["hotplug"])
    failed_hotplug = controller is not None and (controller.stats["plug_failures"] or controller.stats["unplug_timeouts"])
    if seen.get("hang") or failed_hotplug:
        # A CPU that will not come or go is a symptom of the bugs hunted here: ask the kernel why.
        progress("gathering evidence" + (": hang" if seen.get("hang") else ": hotplug"))
        record.update(hang_evidence=_hang_evidence(session))
        console = (outdir / "console.log").read_text(errors="replace").splitlines()
        seen["stopped_clocks"] = tuple(s.describe() for s in clocks.stopped(console))
    record.data["phases"]["workload_s"] = round(time.monotonic() - t0, 3)
    output = b"".join(stdout).decode("utf-8", "replace")
    record.update(workload_exit=seen.get("workload_exit"), progress=counters.counters or None,
                  workload=_last_json(output))
    if test.selftests:
        found, failures = subtests.collect(test.selftests, output, outdir)
        record.update(subtests=found)
        if failures:
            seen["selftest_failures"] = failures
    return seen


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
