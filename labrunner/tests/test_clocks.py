"""Stopped CPU clocks read from a stuck guest's NMI backtraces."""
from labrunner.analysis import clocks

from . import corpus


def test_a_cpu_whose_tick_stopped_is_named_with_its_times():
    lines = (corpus.DATA / "lab" / "clock-stopped-6.12.117.log").read_text().splitlines()
    assert clocks.stopped(lines) == [clocks.Stopped(2, 7.603656, 141.121333)]
    assert clocks.stopped(lines)[0].describe() == \
        "CPU 2 had stopped ticking: its clock stood at 7.6 s while the kernel's read 141.1 s"


def test_backtraces_stamped_with_the_kernel_time_name_no_cpu():
    lines = ["[  141.121333][  T110] Sending NMI from CPU 0 to CPUs 2-3:",
             "[  141.091607][    C3] NMI backtrace for cpu 3",   # behind, but by less than STALE_S
             "[  100.000000] NMI backtrace for cpu 1",             # no caller id: the same rule
             "[    7.6][    C2] NMI backtrace for cpu 2 skipped: idling at intel_idle+0x1/0x2"]
    assert clocks.stopped(lines) == [clocks.Stopped(1, 100.0, 141.121333)]
