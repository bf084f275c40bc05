"""A run's verdict, as one pure function of what the run observed.

Every way a run can end goes through judge(): the runner only observes and records. Three verdicts:
- fail (exit 1): the kernel failed. It reported something, hung, stopped answering, would not online
  or release a hot-plugged CPU, or the workload (or one of its selftests) failed;
- error (exit 3): nothing can be said of the kernel. The host failed (QEMU crashed, no boot), QEMU
  refused a hotplug request, the splat parser failed (a report may be lost), hotplug exercised
  nothing, or the run was interrupted;
- pass: none of those. A pass after an ignored lockdep report says so (flag "lockdep-off"): lockdep
  was off from there on, so the run could not have shown a lock bug.

A kernel report always decides the verdict and is named first in the reason; a hang, an
unresponsive guest or QEMU's end after it is added ("...; then hang: ..."), since that is news too.
"""

import dataclasses
from collections import Counter
from typing import Any, Dict, List, Optional, Tuple

PASS, FAIL, ERROR = "pass", "fail", "error"


@dataclasses.dataclass(frozen=True)
class Observed:
    reports: Tuple[str, ...] = ()           # titles of the kernel's reports that are not ignored, in order
    workload_exit: Optional[int] = None     # its exit status; None when it did not end by itself
    workload_timeout: Optional[str] = None  # it outlived duration + grace
    stopped_at_splat: bool = False          # stop_on_first_splat ended it
    hang: Optional[str] = None              # no output, or no progress, for timeouts.hang seconds
    unresponsive: Optional[str] = None      # the guest stopped answering outside the workload
    hotplug: Optional[Dict[str, Any]] = None  # the controller's summary; None for a test without hotplug
    infra: Optional[str] = None             # the host failed: QEMU died, no boot, no SSH
    analysis_errors: Tuple[str, ...] = ()   # a console listener (the splat parser) raised
    interrupted: Optional[str] = None       # the signal (SIGINT, SIGTERM) or exception that ended it
    selftest_failures: Tuple[str, ...] = ()  # selftests that failed unexpectedly or timed out, in order
    stopped_clocks: Tuple[str, ...] = ()    # CPUs whose tick had stopped, seen in the hang's evidence
    lockdep_off: Optional[str] = None       # the ignored report after which lockdep was off


@dataclasses.dataclass(frozen=True)
class Verdict:
    verdict: str
    reason: str
    flags: Tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class _Event:
    verdict: str
    reason: str
    flag: str
    after_report: bool  # worth naming after a kernel report's title


def _hotplug_events(hp: Optional[Dict[str, Any]]) -> List[_Event]:
    if hp is None:
        return []
    events = []
    # The same failure again and again (every plug of one slot) is said once, with its count.
    said = Counter(hp.get("failures", []))
    details = "; ".join(f if n == 1 else f"{f} ({n} times)" for f, n in list(said.items())[:3])
    if hp.get("plug_failures") or hp.get("unplug_timeouts"):
        events.append(_Event(FAIL, f"hotplug: {details}", "hotplug-failure", True))
    if hp.get("refused"):
        events.append(_Event(ERROR, f"hotplug: QEMU refused a request: {details}", "hotplug-refused", False))
    if not events and (not hp.get("plugged") or not hp.get("unplugged")):
        events.append(_Event(ERROR, f"hotplug exercised nothing: {hp.get('plugged', 0)} plugs and "
                                    f"{hp.get('unplugged', 0)} unplugs confirmed", "hotplug-idle", False))
    return events


def judge(o: Observed) -> Verdict:
    if o.interrupted:  # a signal's name, or the exception that ended the run
        how = f"by {o.interrupted}" if o.interrupted.startswith("SIG") else f"({o.interrupted})"
        return Verdict(ERROR, f"interrupted {how}", ("interrupted",))
    # Heaviest first: the first event is the reason when the kernel reported nothing.
    events: List[_Event] = []
    if o.infra:
        events.append(_Event(ERROR, o.infra, "infra", True))
    if o.stopped_clocks:  # the likeliest cause of what follows (a hang, a CPU that will not go), so first
        events.append(_Event(FAIL, "; ".join(o.stopped_clocks) + " (a vCPU timer that stopped firing: "
                             "under TCG, QEMU's known wedge)", "clock-stopped", True))
    if o.hang:
        events.append(_Event(FAIL, o.hang, "hang", True))
    if o.unresponsive:
        events.append(_Event(FAIL, f"guest stopped answering: {o.unresponsive}", "unresponsive", True))
    hotplug = _hotplug_events(o.hotplug)
    events += [e for e in hotplug if e.verdict == FAIL]
    if o.analysis_errors:
        events.append(_Event(ERROR, f"console analysis failed, a report may be lost: {o.analysis_errors[0]}",
                             "analysis-error", True))
    if o.selftest_failures:
        more = len(o.selftest_failures) - 1
        events.append(_Event(FAIL, o.selftest_failures[0] + (f" (and {more} more)" if more else ""),
                             "selftest-failed", True))
    if o.workload_timeout:
        events.append(_Event(FAIL, f"workload timed out: {o.workload_timeout}", "timeout", False))
    if o.workload_exit not in (None, 0):
        events.append(_Event(FAIL, f"workload exited with status {o.workload_exit}", "workload-failed", False))
    events += [e for e in hotplug if e.verdict != FAIL]
    if o.stopped_at_splat:
        events.append(_Event(FAIL, "stopped at the first splat", "stopped-at-splat", False))
    flags = tuple(e.flag for e in events)
    if o.reports:
        why = o.reports[0] + (f" ({len(o.reports)} reports)" if len(o.reports) > 1 else "")
        then = next((e.reason.splitlines()[0] for e in events if e.after_report), None)
        return Verdict(FAIL, why + (f"; then {then}" if then else ""), ("splat", *flags))
    if events:
        return Verdict(events[0].verdict, events[0].reason, flags)
    if o.workload_exit is None:  # every way it can end without an exit status is an event above
        return Verdict(ERROR, "the workload's end was not observed", ("incomplete",))
    if o.lockdep_off:
        return Verdict(PASS, f"workload ended cleanly; lockdep was off after the ignored {o.lockdep_off!r}",
                       ("lockdep-off",))
    return Verdict(PASS, "workload ended cleanly", ())
