import dataclasses

import pytest

from labrunner.config import HotplugSpec
from labrunner.errors import ConfigError, UserError
from labrunner.machine import hotplug
from labrunner.machine.qemu import Accel
from labrunner.run import runner as runs

from .test_qemu import MACHINE


def test_microvm_and_machines_without_spare_slots_are_refused():
    with pytest.raises(UserError, match="microvm, which cannot hot-plug CPUs"):
        hotplug.check_machine(dataclasses.replace(MACHINE, machine_type="microvm"))
    with pytest.raises(UserError, match="no hot-pluggable vCPU"):
        hotplug.check_machine(dataclasses.replace(MACHINE, max_cpus=2))
    hotplug.check_machine(MACHINE)


def test_agent_line_is_recognised_with_kernel_prefixes():
    m = hotplug.AGENT_LINE.search("[   12.345678] lab-cpu-agent: cpu3 online apicid 3")
    assert m and m.groups() == ("3", None, "3")
    m = hotplug.AGENT_LINE.search("[   12.345678] lab-cpu-agent: cpu3 online refused (EIO) apicid -1")
    assert m and m.groups() == ("3", "EIO", "-1")
    assert not hotplug.AGENT_LINE.search("smpboot: Booting Node 0 Processor 3 APIC 0x3")


def test_last_json_line_is_the_workloads_counts():
    text = 'progress vm_cycles=5\n{"vm_cycles": 9, "errors": {}}\nnot json {\n'
    assert runs._last_json(text) == {"vm_cycles": 9, "errors": {}}
    assert runs._last_json("{broken\nprogress\n") is None


def test_lab_yaml_hotplug_config(write_lab):
    from labrunner import config

    from .conftest import GOOD
    lab = config.load(write_lab(GOOD.replace("    duration: 5", "    duration: 5\n    env: {N: 3}\n"
                                             "    hotplug: {period: 2, slots: 1, seed: 7}")))
    t = lab.tests["smoke"]
    assert t.env == {"N": "3"}
    assert (t.hotplug.period_s, t.hotplug.slots, t.hotplug.seed, t.hotplug.confirm_timeout) == (2.0, 1, 7, 30)
    assert t.timeouts.hang == 120


def test_lab_yaml_cpu_props(write_lab):
    from labrunner import config

    from .conftest import GOOD
    lab = config.load(write_lab(GOOD.replace("    duration: 5", "    duration: 5\n    hotplug:\n      slots: 1\n"
                                             "      cpu_props: {svm: \"off\", avx: on, level: 13}\n"
                                             "      cpu_props_share: 0.5\n      expect_online: false")))
    hp = lab.tests["smoke"].hotplug
    # QMP wants booleans: QEMU's command-line on/off (quoted or not) become true/false.
    assert hp.cpu_props == (("svm", False), ("avx", True), ("level", 13))
    assert (hp.cpu_props_share, hp.expect_online) == (0.5, False)


@pytest.mark.parametrize("hotplug, message", [
    ("{expect_online: false}", r"lab.yaml:\d+: tests.smoke.hotplug.expect_online: applies to plugs with 'cpu_props'"),
    ("{cpu_props: {id: x}}", r"tests.smoke.hotplug.cpu_props.id: set by the hotplug controller itself"),
    ("{cpu_props: {svm: [1]}}", r"tests.smoke.hotplug.cpu_props.svm: expected true/false, a number or a string"),
    ("{cpu_props: {svm: false}, cpu_props_share: 2}", r"cpu_props_share: a share of the plugs, from 0 to 1"),
    ("{cpu_props: {}}", r"tests.smoke.hotplug.cpu_props: expected a mapping of QEMU CPU properties"),
])
def test_lab_yaml_cpu_props_errors_name_their_line(write_lab, hotplug, message):
    from labrunner import config

    from .conftest import GOOD
    with pytest.raises(ConfigError, match=message):
        config.load(write_lab(GOOD.replace("    duration: 5", f"    duration: 5\n    hotplug: {hotplug}")))


class FakeGuest:
    """QMP and console for a Controller: each device_add is answered on the console as a guest would,
    with the kernel's "Booting" line and lab-cpu-agent's word (ANSWER: None onlines, else an errno)."""

    def __init__(self, answer, agent_knows_apic=True):
        self.answer, self.agent_knows_apic = answer, agent_knows_apic
        self.added, self.notes, self.controller = [], [], None

    def execute(self, command, args=None, timeout=None):
        if command == "query-hotpluggable-cpus":
            return [{"props": {"socket-id": s}, "qom-path": f"/x/{s}"} for s in (2, 3)]
        if command == "qom-get":
            return 7
        if command == "device_add":
            self.added.append(args)
            c = self.controller
            c._on_console("[   20.100000] smpboot: Booting Node 0 Processor 5 APIC 0x7")
            if self.answer is None:
                c._on_console("[   20.200000] lab-cpu-agent: cpu5 online apicid 7")
            else:
                apic = 7 if self.agent_knows_apic else -1
                c._on_console(f"[   20.200000] lab-cpu-agent: cpu5 online refused ({self.answer}) apicid {apic}")
        return {}

    def note(self, entry):
        self.notes.append(entry)

    def connected(self):
        return True

    def add_listener(self, fn):
        pass

    remove_listener = add_listener


def _plug(answer, **spec):
    guest = FakeGuest(answer, agent_knows_apic=spec.pop("agent_knows_apic", True))
    spec = HotplugSpec(period_s=1, slots=1, seed=1, confirm_timeout=2, **spec)
    c = guest.controller = hotplug.Controller(guest, guest, MACHINE, Accel("tcg", "test"), spec)
    c.plug(c.slots[0])
    return c, guest


def test_a_refused_online_confirms_a_plug_that_expects_it():
    c, guest = _plug("EIO", cpu_props=(("svm", False),), expect_online=False, agent_knows_apic=False)
    assert guest.added[0] == {"driver": "max-x86_64-cpu", "id": "lab-cpu2", "socket-id": 2, "core-id": 0,
                              "thread-id": 0, "svm": False}
    assert (c.stats["plugged"], c.stats["online_refused"], c.stats["plug_failures"]) == (1, 1, 0)
    assert {"action": "plug", "slot": "lab-cpu2", "cpu_props": {"svm": False}} in guest.notes


def test_an_online_fails_a_plug_that_expects_a_refusal():
    c, _ = _plug(None, cpu_props=(("svm", False),), expect_online=False)
    assert (c.stats["plugged"], c.stats["plug_failures"]) == (0, 1)
    assert c.failures == ["plug of lab-cpu2 (apicid 7, svm=off): the guest onlined it, though a kernel should "
                          "refuse such a CPU (expect_online: false)"]


def test_a_refused_online_fails_an_ordinary_plug_at_once():
    c, _ = _plug("EBUSY")
    assert c.stats["plug_failures"] == 1 and c.failures == ["plug of lab-cpu2 (apicid 7): the guest refused to "
                                                            "online it (EBUSY)"]
    c, guest = _plug(None)
    assert (c.stats["plugged"], c.stats["plug_failures"]) == (1, 0) and "svm" not in guest.added[0]


def test_cpu_props_go_to_their_share_of_plugs_only():
    spec = HotplugSpec(period_s=1, slots=1, seed=3, confirm_timeout=2, cpu_props=(("svm", False),),
                       cpu_props_share=0.25)
    c = hotplug.Controller(FakeGuest(None), FakeGuest(None), MACHINE, Accel("tcg", "test"), spec)
    draws = [c._draw_props() for _ in range(400)]
    assert 60 < sum(d == {"svm": False} for d in draws) < 140
    assert all(d in ({}, {"svm": False}) for d in draws)
