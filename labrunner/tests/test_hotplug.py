import dataclasses

import pytest

from labrunner.errors import UserError
from labrunner.machine import hotplug
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
    assert m and m.groups() == ("3", "3")
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
