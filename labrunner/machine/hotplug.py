"""vCPU hotplug from the host: unplug and re-plug the machine's hot-pluggable vCPUs over QMP.

The slots are the vCPUs cold-plugged with ids by qemu.hotplug_cpu_devices() (see there why). On a
schedule (a period, randomised by a recorded seed), the controller picks a slot and unplugs it or
plugs it back, and confirms each action within a bound:
- a plug: the guest onlined the CPU, announced by lab-cpu-agent on the console with its APIC ID; or
  refused to, when the plug's CPU properties (cpu_props: {svm: false}) make it one the kernel should
  refuse (expect_online: false), and lab-cpu-agent says so with the errno;
- an unplug: the slot shows empty again in query-hotpluggable-cpus (QEMU 10 sends DEVICE_DELETED
  for the CPU's lapic child, not always for the CPU, so the slot is polled).
A slot whose unplug is unconfirmed is never plugged again until it shows empty: QEMU aborts on that.
Every action and its outcome goes to qmp.jsonl beside the QMP traffic.
"""

import dataclasses
import logging
import random
import re
import threading
import time
from typing import Any, Dict, List, Optional

from ..config import HotplugSpec, Machine
from ..errors import InfraError, UserError
from .console import Console
from .qemu import HOTPLUG_ID_PREFIX, NO_HOTPLUG_MACHINES, Accel, cpu_driver
from .qmp import Monitor

log = logging.getLogger(__name__)

# "lab-cpu-agent: cpu3 online apicid 3", or "lab-cpu-agent: cpu3 online refused (EIO) apicid 3"
AGENT_LINE = re.compile(r"lab-cpu-agent: cpu(\d+) online (?:refused \((\w+)\) )?apicid (-?\d+)")
# The kernel's own word on a CPU it brings up: a CPU it then refused is in no /proc/cpuinfo, so the
# agent cannot tell its APIC ID (apicid -1); this line can.
BOOTING_LINE = re.compile(r"Booting Node \d+ Processor (\d+) APIC (0x[0-9a-f]+)")


@dataclasses.dataclass
class Slot:
    id: str
    socket: int
    plugged: bool = True  # cold-plugged at boot
    unplug_pending: bool = False


def check_machine(machine: Machine) -> None:
    """Refuse machines that cannot hot-plug CPUs, before anything boots."""
    if machine.machine_type.split(",")[0] in NO_HOTPLUG_MACHINES:
        raise UserError(f"machine '{machine.name}' is {machine.machine_type}, which cannot hot-plug CPUs; "
                        f"use machine_type: q35")
    if machine.max_cpus <= machine.cpus:
        raise UserError(f"machine '{machine.name}' has no hot-pluggable vCPU: max_cpus ({machine.max_cpus}) "
                        f"must be more than cpus ({machine.cpus})")


class Controller:
    def __init__(self, qmp: Monitor, console: Console, machine: Machine, accel: Accel, spec: HotplugSpec):
        check_machine(machine)
        self.qmp, self.console, self.spec = qmp, console, spec
        self.seed = spec.seed if spec.seed is not None else random.SystemRandom().randrange(2 ** 32)
        self.rng = random.Random(self.seed)
        self.driver = cpu_driver(machine, accel)
        sockets = range(machine.cpus, min(machine.max_cpus, machine.cpus + spec.slots))
        self.slots = [Slot(f"{HOTPLUG_ID_PREFIX}{s}", s) for s in sockets]
        # Multi-threaded TCG needs a fresh vCPU context per plug (see qemu.declared_cpus).
        self.plugs_left: Optional[int] = machine.tcg_plug_budget if accel.name == "tcg" else None
        # plug_failures and unplug_timeouts are the guest's (a kernel failure), refused is QEMU's.
        # online_refused: plugs with cpu_props that the guest refused, as expect_online: false wants.
        self.stats = {"plugged": 0, "unplugged": 0, "plug_failures": 0, "unplug_timeouts": 0, "refused": 0,
                      "abandoned": 0, "online_refused": 0}
        self.failures: List[str] = []  # what went wrong, slot and CPU named, for the verdict's reason
        self.error: Optional[BaseException] = None
        self._announced: List[tuple] = []  # (monotonic time, apicid, guest cpu, errno or None) from lab-cpu-agent
        self._apic_of_cpu: Dict[int, int] = {}  # from the kernel's "Booting ... Processor C APIC 0xA"
        self._announce_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        present = {c["props"].get("socket-id") for c in self._slots_state() if "qom-path" in c}
        missing = [s.id for s in self.slots if s.socket not in present]
        if missing:
            raise InfraError(f"hot-pluggable vCPUs {', '.join(missing)} are not present at start")
        self.console.add_listener(self._on_console)
        self.qmp.note({"action": "hotplug-start", "seed": self.seed, "period_s": self.spec.period_s,
                       "slots": [s.id for s in self.slots], "plug_budget": self.plugs_left})
        self._thread = threading.Thread(target=self._run, name="hotplug", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            # Bounded: one action at most is under way, and each has its own timeout.
            self._thread.join(self.spec.confirm_timeout + 30)
        self.console.remove_listener(self._on_console)

    def summary(self) -> Dict[str, Any]:
        return {**self.stats, "failures": list(self.failures), "seed": self.seed, "period_s": self.spec.period_s,
                "slots": [s.id for s in self.slots], "plug_budget_left": self.plugs_left}

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.spec.period_s * self.rng.uniform(0.5, 1.5)):
                self.step()
        except BaseException as e:  # handed to the run, which judges it (QEMU gone: an infra error)
            self.error = e
            log.info("hotplug controller stopped: %s", e)

    # --- one scheduled action -------------------------------------------------------------------

    def step(self) -> None:
        self._recheck_pending()
        choices = [("unplug", s) for s in self.slots if s.plugged and not s.unplug_pending]
        if self.plugs_left is None or self.plugs_left > 0:
            choices += [("plug", s) for s in self.slots if not s.plugged and not s.unplug_pending]
        if not choices:
            return
        action, slot = self.rng.choice(choices)
        (self.plug if action == "plug" else self.unplug)(slot)

    def _draw_props(self) -> Dict[str, Any]:
        """This plug's CPU properties: cpu_props for a share cpu_props_share of the plugs. The draw is
        made only for tests that have cpu_props, so other tests' seeded schedules stay as they were."""
        if not self.spec.cpu_props or self.rng.random() >= self.spec.cpu_props_share:
            return {}
        return dict(self.spec.cpu_props)

    def plug(self, slot: Slot) -> None:
        t0 = time.monotonic()
        props = {"socket-id": slot.socket, "core-id": 0, "thread-id": 0}
        cpu_props = self._draw_props()
        if not self._request("plug", slot, t0, "device_add", {"driver": self.driver, "id": slot.id, **props, **cpu_props},
                             cpu_props):
            return
        slot.plugged = True
        if self.plugs_left is not None:
            self.plugs_left -= 1
        apic = self.qmp.execute("qom-get", {"path": f"/machine/peripheral/{slot.id}", "property": "apic-id"})
        what = f"plug of {slot.id} (apicid {apic}" + "".join(  # QEMU's own spelling: svm=off
            f", {k}={('on' if v else 'off') if isinstance(v, bool) else v}" for k, v in cpu_props.items()) + ")"
        refusable = bool(cpu_props) and not self.spec.expect_online
        ok = self._wait(lambda: self._answers(apic, t0), t0, 0.1)
        errno = self._answers(apic, t0)[0] if ok else None  # the guest's first word, once it said one
        if ok is None:
            self._outcome("plug", slot, None, t0, "the run ended before the guest onlined it")
        elif not ok:
            self._outcome("plug", slot, False, t0, f"{what}: the guest did not online it within "
                                                      f"{self.spec.confirm_timeout} s")
        elif errno is None and refusable:
            self._outcome("plug", slot, False, t0, f"{what}: the guest onlined it, though a kernel should refuse "
                                                      f"such a CPU (expect_online: false)")
        elif errno is None:
            self._outcome("plug", slot, True, t0, f"guest onlined apicid {apic}")
        elif refusable:
            self.stats["online_refused"] += 1
            self._outcome("plug", slot, True, t0, f"guest refused to online apicid {apic} ({errno}), as expected")
        else:
            self._outcome("plug", slot, False, t0, f"{what}: the guest refused to online it ({errno})")

    def unplug(self, slot: Slot) -> None:
        t0 = time.monotonic()
        apic = self.qmp.execute("qom-get", {"path": f"/machine/peripheral/{slot.id}", "property": "apic-id"})
        cpu = self._cpu_of(apic)
        if not self._request("unplug", slot, t0, "device_del", {"id": slot.id}):
            return
        slot.unplug_pending = True
        ok = self._wait(lambda: self._slot_empty(slot), t0, 0.2)
        if ok is None:
            self._outcome("unplug", slot, None, t0, "the run ended before the slot emptied")
        elif ok:
            slot.unplug_pending, slot.plugged = False, False
            self._outcome("unplug", slot, True, t0, "slot empty")
        else:
            self._outcome("unplug", slot, False, t0, f"unplug of {slot.id} (apicid {apic}{cpu}): the guest did not "
                                                        f"release it within {self.spec.confirm_timeout} s")

    def _request(self, action: str, slot: Slot, t0: float, command: str, args: Dict[str, Any],
                 cpu_props: Optional[Dict[str, Any]] = None) -> bool:
        """Journal ACTION and send COMMAND; False (and a failed outcome) if QEMU refused it. A lost
        monitor is not a refusal: it propagates, and the run judges it."""
        self.qmp.note({"action": action, "slot": slot.id, **({"cpu_props": cpu_props} if cpu_props else {})})
        try:
            self.qmp.execute(command, args)
            return True
        except InfraError as e:
            if not self.qmp.connected():
                raise
            self._outcome(action, slot, False, t0, f"{action} of {slot.id}: {command} refused: {e}", refused=True)
            return False

    def _wait(self, confirmed, t0: float, interval: float) -> Optional[bool]:
        """Poll CONFIRMED() until it holds or confirm_timeout has passed since T0; None when the run
        stops first (a hung guest would otherwise hold the run's end for the whole timeout)."""
        deadline = t0 + self.spec.confirm_timeout
        while time.monotonic() < deadline:
            if confirmed():
                return True
            if self._stop.wait(interval):
                return None
        return False

    def _recheck_pending(self) -> None:
        for slot in self.slots:
            if slot.unplug_pending and self._slot_empty(slot):
                slot.unplug_pending, slot.plugged = False, False
                self.qmp.note({"action": "unplug-late", "slot": slot.id, "ok": True})

    # --- helpers --------------------------------------------------------------------------------

    def _outcome(self, action: str, slot: Slot, ok: Optional[bool], t0: float, detail: str,
                 refused: bool = False) -> None:
        """OK None: abandoned, the run stopped while it was being confirmed."""
        key = "refused" if refused else {("plug", True): "plugged", ("plug", False): "plug_failures",
                                         ("unplug", True): "unplugged",
                                         ("unplug", False): "unplug_timeouts"}.get((action, ok), "abandoned")
        self.stats[key] += 1
        if ok is False and len(self.failures) < 10:
            self.failures.append(detail)
        self.qmp.note({"action": f"{action}-done", "slot": slot.id, "ok": ok,
                       "seconds": round(time.monotonic() - t0, 3), "detail": detail})

    def _slots_state(self) -> List[Dict[str, Any]]:
        return self.qmp.execute("query-hotpluggable-cpus")

    def _slot_empty(self, slot: Slot) -> bool:
        return any(c["props"].get("socket-id") == slot.socket and "qom-path" not in c for c in self._slots_state())

    def _on_console(self, line: str) -> None:
        m = AGENT_LINE.search(line)
        if m:
            cpu, apic = int(m.group(1)), int(m.group(3))
            with self._announce_lock:
                if apic < 0:
                    apic = self._apic_of_cpu.get(cpu, apic)
                self._announced.append((time.monotonic(), apic, cpu, m.group(2)))
                del self._announced[:-64]
        elif "Booting" in line and (b := BOOTING_LINE.search(line)):
            with self._announce_lock:
                self._apic_of_cpu[int(b.group(1))] = int(b.group(2), 16)

    def _cpu_of(self, apic: int) -> str:
        """", cpuN" for the guest's last announcement of APIC, if any."""
        with self._announce_lock:
            cpus = [c for _, a, c, _ in self._announced if a == apic]
        return f", cpu{cpus[-1]}" if cpus else ""

    def _answers(self, apic: int, since: float) -> List[Optional[str]]:
        """What the guest has said of APIC since SINCE, in order: None for an online, else the errno of
        a refusal."""
        with self._announce_lock:
            return [errno for t, a, _, errno in self._announced if t >= since and a == apic]
