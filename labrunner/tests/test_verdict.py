"""The verdict function against a table: one row per way a run can end."""
import pytest

from labrunner.run.verdict import ERROR, FAIL, PASS, Observed, judge

HP_OK = {"plugged": 3, "unplugged": 4, "plug_failures": 0, "unplug_timeouts": 0, "refused": 0, "failures": []}
NOT_ONLINED = "plug of lab-cpu2 (apicid 2): the guest did not online it within 30 s"
NOT_RELEASED = "unplug of lab-cpu3 (apicid 3): the slot is still occupied after 30 s"

CASES = [
    # (what happened, observed, verdict, reason starts with, flags)
    ("clean", Observed(workload_exit=0), PASS, "workload ended cleanly", ()),
    ("clean with hotplug", Observed(workload_exit=0, hotplug=HP_OK), PASS, "workload ended cleanly", ()),
    ("clean, lockdep off after an ignored report",
     Observed(workload_exit=0, hotplug=HP_OK, lockdep_off="possible deadlock in __kernfs_remove"), PASS,
     "workload ended cleanly; lockdep was off after the ignored 'possible deadlock in __kernfs_remove'",
     ("lockdep-off",)),
    ("an ignored lockdep report, then a hang", Observed(hang="hang: h", lockdep_off="possible deadlock in f"), FAIL,
     "hang: h", ("hang",)),
    ("workload failed", Observed(workload_exit=3), FAIL, "workload exited with status 3", ("workload-failed",)),
    ("workload timed out", Observed(workload_timeout="after 180 s"), FAIL, "workload timed out: after 180 s",
     ("timeout",)),
    ("a report", Observed(reports=("WARNING in kvm_online_cpu",), workload_exit=0), FAIL, "WARNING in kvm_online_cpu",
     ("splat",)),
    ("two reports", Observed(reports=("A in f", "B in g"), workload_exit=0), FAIL, "A in f (2 reports)", ("splat",)),
    ("stopped at the first report", Observed(reports=("possible deadlock in kvm_dev_ioctl",), stopped_at_splat=True),
     FAIL, "possible deadlock in kvm_dev_ioctl", ("splat", "stopped-at-splat")),
    ("a report, then a hang", Observed(reports=("possible deadlock in f",), hang="hang: no console output for 60 s"),
     FAIL, "possible deadlock in f; then hang: no console output", ("splat", "hang")),
    ("a panic ends QEMU", Observed(reports=("kernel panic: Fatal exception",), infra="QEMU exited with status 0\nstderr"),
     FAIL, "kernel panic: Fatal exception; then QEMU exited with status 0", ("splat", "infra")),
    ("a report, workload timed out", Observed(reports=("A in f",), workload_timeout="x"), FAIL, "A in f", None),
    ("silent hang", Observed(hang="hang: no console output and no workload progress for 20 s"), FAIL, "hang: no console",
     ("hang",)),
    ("progress stalled", Observed(hang="hang: no workload progress for 60 s (items=5)"), FAIL,
     "hang: no workload progress", ("hang",)),
    ("guest stops answering", Observed(workload_exit=0, unresponsive="dmesg: no answer in 20 s"), FAIL,
     "guest stopped answering: dmesg", ("unresponsive",)),
    ("a CPU stopped ticking, then the guest stopped answering",
     Observed(stopped_clocks=("CPU 2 had stopped ticking: its clock stood at 7.6 s while the kernel's read 141.1 s",),
              unresponsive="'dmesg' did not finish within 20 s", workload_timeout="x",
              hotplug={**HP_OK, "unplug_timeouts": 1, "failures": [NOT_RELEASED]}),
     FAIL, "CPU 2 had stopped ticking: its clock stood at 7.6 s while the kernel's read 141.1 s (a vCPU timer",
     ("clock-stopped", "unresponsive", "hotplug-failure", "timeout")),
    ("QEMU crashed", Observed(infra="QEMU killed by SIGKILL"), ERROR, "QEMU killed by SIGKILL", ("infra",)),
    ("interrupted", Observed(reports=("A in f",), interrupted="SIGTERM"), ERROR, "interrupted by SIGTERM",
     ("interrupted",)),
    ("a bug in labrunner", Observed(interrupted="ZeroDivisionError"), ERROR, "interrupted (ZeroDivisionError)",
     ("interrupted",)),
    ("parser raised", Observed(workload_exit=0, analysis_errors=("SplatCollector.feed: IndexError: x",)), ERROR,
     "console analysis failed, a report may be lost: SplatCollector.feed", ("analysis-error",)),
    ("parser raised, but a hang", Observed(hang="hang: h", analysis_errors=("e",)), FAIL, "hang: h",
     ("hang", "analysis-error")),
    ("CPU never onlined", Observed(workload_exit=0, hotplug={**HP_OK, "plug_failures": 1, "failures": [NOT_ONLINED]}),
     FAIL, f"hotplug: {NOT_ONLINED}", ("hotplug-failure",)),
    ("the same CPU not onlined thrice", Observed(workload_exit=0, hotplug={
        **HP_OK, "plug_failures": 4, "failures": [NOT_ONLINED, NOT_RELEASED, NOT_ONLINED, NOT_ONLINED]}),
     FAIL, f"hotplug: {NOT_ONLINED} (3 times); {NOT_RELEASED}", ("hotplug-failure",)),
    ("CPU never released", Observed(workload_exit=0, hotplug={**HP_OK, "unplug_timeouts": 1, "failures": [NOT_RELEASED]}),
     FAIL, f"hotplug: {NOT_RELEASED}", ("hotplug-failure",)),
    ("CPU never onlined, workload failed too",
     Observed(workload_exit=1, hotplug={**HP_OK, "plug_failures": 1, "failures": [NOT_ONLINED]}),
     FAIL, "hotplug: plug of lab-cpu2", ("hotplug-failure", "workload-failed")),
    ("QEMU refused device_add", Observed(workload_exit=0, hotplug={**HP_OK, "refused": 1,
                                                                   "failures": ["plug of lab-cpu2: device_add refused"]}),
     ERROR, "hotplug: QEMU refused a request", ("hotplug-refused",)),
    ("no confirmed plug", Observed(workload_exit=0, hotplug={**HP_OK, "plugged": 0}), ERROR,
     "hotplug exercised nothing: 0 plugs and 4 unplugs", ("hotplug-idle",)),
    ("no confirmed unplug", Observed(workload_exit=0, hotplug={**HP_OK, "plugged": 0, "unplugged": 0}), ERROR,
     "hotplug exercised nothing", ("hotplug-idle",)),
    ("a report in an idle hotplug run", Observed(reports=("A in f",), hotplug={**HP_OK, "plugged": 0}), FAIL, "A in f",
     ("splat", "hotplug-idle")),
    ("nothing observed", Observed(), ERROR, "the workload's end was not observed", ("incomplete",)),
    ("selftests failed", Observed(workload_exit=0, selftest_failures=("selftest a failed (exit 1)", "selftest b timed out")),
     FAIL, "selftest a failed (exit 1) (and 1 more)", ("selftest-failed",)),
    ("a report, then a selftest failed", Observed(reports=("A in f",), workload_exit=0,
                                                  selftest_failures=("selftest a failed (exit 1)",)),
     FAIL, "A in f; then selftest a failed (exit 1)", ("splat", "selftest-failed")),
]


@pytest.mark.parametrize("what,observed,verdict,reason,flags", CASES, ids=[c[0] for c in CASES])
def test_verdict_table(what, observed, verdict, reason, flags):
    v = judge(observed)
    assert (v.verdict, v.reason[:len(reason)]) == (verdict, reason), v
    if flags is not None:
        assert v.flags == flags


def test_a_parser_failure_is_recorded_and_the_console_goes_on(monkeypatch):
    from labrunner.analysis import splats
    from labrunner.run.collect import SplatCollector
    collector = SplatCollector(ignore=())
    real_feed = splats.Parser.feed

    def feed(self, line):
        if "boom" in line:
            raise IndexError("a rule tripped")
        return real_feed(self, line)
    monkeypatch.setattr(splats.Parser, "feed", feed)
    collector.feed("boom")  # from the console thread: must not raise
    for line in ["WARNING: CPU: 0 PID: 1 at virt/kvm/kvm_main.c:5 kvm_online_cpu+0x1/0x2", "Call Trace:",
                 " kvm_online_cpu+0x1/0x2", " cpuhp_invoke_callback+0x1/0x2", "end"]:
        collector.feed(line)
    collector.finish_console()
    (error,) = collector.errors
    assert error.startswith("splat parser (console") and error.endswith("IndexError: a rule tripped")
    assert [r.title for r in collector.failures()] == ["WARNING in kvm_online_cpu"]
    v = judge(Observed(workload_exit=0, analysis_errors=tuple(collector.errors)))
    assert v.verdict == ERROR and "IndexError: a rule tripped" in v.reason


def test_the_collector_keeps_reports_in_the_order_they_began_and_says_while_one_prints():
    from labrunner.run.collect import SplatCollector
    collector = SplatCollector(ignore=())
    for line in ["[    1.000000][   T98] WARNING: possible circular locking dependency detected",
                 "[    1.000000][   T98] vm-churn/98 is trying to acquire lock:",
                 "[    1.100000][    T0] WARNING: CPU: 1 PID: 0 at kernel/time/tick-sched.c:1 tick_nohz_idle_enter+0x1/0x2",
                 "[    1.000000][   T98] ffff (cpu_hotplug_lock){++++}-{0:0}, at: kvm_dev_ioctl+0x61f/0xa90",
                 "[    1.100000][    T0] Call Trace:", "[    1.100000][    T0]  do_idle+0x3e/0x260",
                 "[    1.100000][    T0] ---[ end trace 0000000000000000 ]---"]:
        collector.feed(line)
    assert [r.title for r in collector.failures()] == ["WARNING in do_idle"] and collector.printing()
    for line in ["[    1.000000][   T98] stack backtrace:", "[    1.000000][   T98]  kvm_dev_ioctl+0x1/0x2",
                 "[    1.000000][   T98]  __x64_sys_ioctl+0x1/0x2", "[    1.000000][   T98]  </TASK>", "later"]:
        collector.feed(line)
    collector.finish_console()
    assert [r.title for r in collector.failures()] == ["possible deadlock in kvm_dev_ioctl", "WARNING in do_idle"]
    assert not collector.printing()


LOCKDEP_REPORT = ["[    8.710519][   T67] ======================================================",
                  "[    8.710519][   T67] WARNING: possible circular locking dependency detected",
                  "[    8.710519][   T67] kworker/u16:1/67 is trying to acquire lock:",
                  "[    8.710519][   T67] ff176819c1356a58 (kn->active){++++}-{0:0}, at: __kernfs_remove+0xa2/0x1d0",
                  "[    8.722251][   T67] stack backtrace:", "[    8.722251][   T67] Call Trace:",
                  "[    8.722251][   T67]  kernfs_drain+0x1e5/0x200", "[    8.722251][   T67]  __kernfs_remove+0xa2/0x1d0",
                  "[    8.722251][   T67]  </TASK>"]
RCU_REPORT = ["[    9.000000][    T1] =============================", "[    9.000000][    T1] WARNING: suspicious RCU usage",
              "[    9.000000][    T1] include/linux/rcupdate.h:1 suspicious rcu_dereference_check() usage!",
              "[    9.000000][    T1] Call Trace:", "[    9.000000][    T1]  kvm_online_cpu+0x1/0x2",
              "[    9.000000][    T1]  </TASK>"]


@pytest.mark.parametrize("lines,ignore,off", [
    (LOCKDEP_REPORT, ["__kernfs_remove$"], "possible deadlock in __kernfs_remove"),
    (LOCKDEP_REPORT, [], None),  # not ignored: the run fails on it anyway
    (RCU_REPORT, ["suspicious RCU usage"], None),  # lockdep stays on after a suspicious RCU usage
])
def test_the_collector_says_when_an_ignored_report_switched_lockdep_off(lines, ignore, off):
    from labrunner.run.collect import SplatCollector
    collector = SplatCollector(ignore=ignore)
    for line in lines + ["later"]:
        collector.feed(line)
    collector.finish_console()
    assert len(collector.summary()) == 1 and collector.lockdep_off() == off
