"""CPUs whose clock stood still, read from the NMI backtraces of a stuck guest (sysrq l, an NMI).

With an unstable sched clock (TCG marks the TSC unstable), printk's time on a CPU cannot run ahead of
that CPU's last tick by more than a tick. A backtrace that CPU prints far behind the time the others
have reached says its tick stopped then: a CPU that takes no timer interrupt, so that RCU callbacks
and wake-ups queued on it wait for ever. Under TCG that is QEMU's known wedge (README: findings).
"""

import dataclasses
import re
from typing import Iterable, List

from .splats import text

STALE_S = 30.0  # an idle CPU is woken by some timer well within this
_TIME = re.compile(r"^\[\s*(\d+\.\d+)\]")
_NMI = re.compile(r"\bNMI backtrace for cpu (\d+)$")


@dataclasses.dataclass(frozen=True)
class Stopped:
    cpu: int
    at: float   # the kernel time its backtrace printed
    now: float  # the latest kernel time any CPU had printed before it

    def describe(self) -> str:
        return (f"CPU {self.cpu} had stopped ticking: its clock stood at {self.at:.1f} s "
                f"while the kernel's read {self.now:.1f} s")


def stopped(lines: Iterable[str]) -> List[Stopped]:
    """The CPUs whose NMI backtrace was stamped more than STALE_S behind the latest time, once each."""
    found: List[Stopped] = []
    latest = 0.0
    for line in lines:
        line = text.CONSOLE_LOG.sub("", line, count=1)
        m = _TIME.match(line)
        if m is None:
            continue
        t = float(m.group(1))
        nmi = _NMI.search(line.rstrip())
        if nmi and latest - t > STALE_S and all(s.cpu != int(nmi.group(1)) for s in found):
            found.append(Stopped(int(nmi.group(1)), t, latest))
        latest = max(latest, t)
    return found
