"""End to end on a real upstream bug, not an injected one: cpu-online-compat (a VM alive, vCPUs plugged
without SVM) on Debian 12's own 6.1 kernel, which onlines such a CPU, and on 6.12, which refuses it.

On 6.1 the guest's invariant checker reports the CPU online with EFER.SVME clear, and the first vCPU
run there ends in kvm_spurious_fault's BUG: both reports are in the run, whichever came first. On
6.12 (stable-debug, built for the other e2e tests) every such plug is refused, as expected, and the
run passes. The 6.1 kernel is Debian's prebuilt one: no build, a download of about 70 MB.
"""
import json

import pytest

from .test_e2e import run_clean_kernel, run_record

pytestmark = pytest.mark.e2e

INVARIANT = "INVARIANT: online CPU without virtualization enabled"
BUG = "kernel BUG in kvm_spurious_fault"


def test_cpu_online_compat_fails_on_debian_6_1_with_the_real_bug(tmp_path):
    p, record, _ = run_record(tmp_path, "cpu-online-compat", "--kernel", "debian-6.1", "--duration", "20")
    assert p.returncode == 1, p.stdout + p.stderr
    assert record["kernel"]["release"].startswith("6.1."), record["kernel"]
    titles = [s["title"] for s in record["splats"]]
    assert INVARIANT in titles and BUG in titles, json.dumps(titles)
    assert record["reason"].startswith((INVARIANT, BUG)), record["reason"]
    invariant = next(s for s in record["splats"] if s["title"] == INVARIANT)
    assert invariant["type"] == "INVARIANT" and invariant["cpu"] >= 2, invariant  # a hot-plugged CPU
    # the plug itself is a failure too: the kernel onlined a CPU it should have refused
    assert record["hotplug"]["plug_failures"] >= 1 and "expect_online: false" in record["reason"], record["hotplug"]


def test_cpu_online_compat_passes_on_6_12_which_refuses_the_cpu(tmp_path):
    p, record, _ = run_clean_kernel(tmp_path, "cpu-online-compat", "--kernel", "stable-debug", "--duration", "20")
    assert p.returncode == 0, p.stdout + p.stderr
    assert record["verdict"] == "pass", record["reason"]
    hp = record["hotplug"]
    assert hp["online_refused"] >= 1 and hp["plugged"] == hp["online_refused"] and hp["unplugged"] >= 1, hp
    assert hp["plug_failures"] == 0, hp
    assert record["workload"]["vcpu_runs"] >= 20 and record["workload"]["errors"] == {}, record["workload"]
