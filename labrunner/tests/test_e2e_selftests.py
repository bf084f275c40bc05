"""End to end, a real kernel: the KVM selftests of stable-debug's own tree, built by labrunner, run in
its guest while CPUs are toggled and vCPUs plugged and unplugged; one selftest is made to fail."""

import json

import pytest

from .test_e2e import run_clean_kernel

pytestmark = pytest.mark.e2e

# One round: a lifecycle test, two SVM tests, one more, and one given an option it does not have
# (its usage assertion exits 254), which must fail the run with its name.
LAB = """tests:
  selftests-e2e:
    kernel: stable-debug
    command: /lab/tests/kvm-selftests/run.sh
    duration: 1
    cmdline: kvm.enable_virt_at_load=0
    env: {LAB_TOGGLE_MS: 300}
    selftests:
      timeout: 90
      run:
        - kvm_create_max_vcpus
        - x86_64/svm_vmcall_test
        - x86_64/svm_nested_shutdown_test
        - {name: x86_64/xapic_ipi_test, args: "-z"}
        - kvm_binary_stats_test
        - x86_64/amx_test
      skip: {x86_64/amx_test: "TCG has no AMX"}
    ignore_splats: ["^possible deadlock in __kernfs_remove$"]
    hotplug: {period: 3, slots: 2}
"""


def test_selftests_run_while_cpus_come_and_go_and_a_failing_one_fails_the_run(tmp_path):
    (tmp_path / "lab.yaml").write_text(LAB)
    p, record, run_dir = run_clean_kernel(tmp_path / "results", "selftests-e2e", lab=tmp_path / "lab.yaml")
    assert p.returncode == 1, p.stdout + p.stderr
    assert record["verdict"] == "fail" and "selftest-failed" in record["flags"], record["reason"]
    assert record["reason"].startswith("selftest x86_64/xapic_ipi_test failed (exit 254)"), record["reason"]
    status = {s["name"]: s["status"] for s in record["subtests"]}
    assert status == {"kvm_create_max_vcpus": "pass", "x86_64/svm_vmcall_test": "pass",
                      "x86_64/svm_nested_shutdown_test": "pass", "x86_64/xapic_ipi_test": "fail",
                      "kvm_binary_stats_test": "pass", "x86_64/amx_test": "skip"}, json.dumps(record["subtests"])
    failed = next(s for s in record["subtests"] if s["status"] == "fail")
    assert "Usage: -s <runtime seconds>" in (run_dir / failed["log"]).read_text()
    # vCPUs went (and came) during the selftests: the schedule first unplugs the two cold-plugged vCPUs
    # (3 s, 6 s), so a round that ends within 9 s has no plug yet (CI met one of 8 s).
    hp = record["hotplug"]
    assert hp["plugged"] + hp["unplugged"] >= 1 and not hp["failures"], json.dumps(hp)
    assert not [s for s in record["splats"] if not s["ignored"]]
