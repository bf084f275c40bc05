"""The selftest results parser (analysis.tap) and what a run records of them (run.subtests)."""

import json
import os
from pathlib import Path

from labrunner.analysis import tap
from labrunner.config.tests import Selftest
from labrunner.run import subtests

# kselftest harness output as KVM selftests print it, between run.sh's markers.
OUTPUT = """\
lab-selftest: begin kvm_create_max_vcpus round 1 uptime 10.50
KVM_CAP_MAX_VCPU_ID: 1024
KVM_CAP_MAX_VCPUS: 1024
Testing creating 1024 vCPUs, with IDs 0...1023.
lab-selftest: end kvm_create_max_vcpus exit 0 uptime 14.75
lab-selftest: begin x86_64/svm_vmcall_test round 1 uptime 14.80
1..1
# SKIP - Requirement not met: kvm_cpu_has(X86_FEATURE_SVM)
lab-selftest: end x86_64/svm_vmcall_test exit 4 uptime 15.00
lab-selftest: begin set_memory_region_test round 1 uptime 15.00
TAP version 13
1..3
ok 1 move_in_use_region
    # KTAP version 1
    # 1..2
    not ok 1 nested-detail
    ok 2 nested-other
not ok 2 delete_in_use_region
ok 3 zero_memory_regions # SKIP not on this host
lab-selftest: end set_memory_region_test exit 0 uptime 20.00
lab-selftest: begin hardware_disable_test round 1 uptime 20.00
==== Test Assertion Failure ====
  hardware_disable_test.c:100: r == 0
lab-selftest: end hardware_disable_test exit 1 uptime 21.00
lab-selftest: begin rseq_test round 1 uptime 21.00
Random seed: 0x6b8b4567
lab-selftest: end rseq_test exit 137 uptime 81.00
lab-selftest: begin kvm_create_max_vcpus round 2 uptime 81.00
Testing creating 1024 vCPUs, with IDs 0...10"""


def test_results_statuses_and_top_level_tap_counts():
    rs = tap.parse(OUTPUT.splitlines())
    assert [(r.name, r.round, r.exit) for r in rs] == [
        ("kvm_create_max_vcpus", 1, 0), ("x86_64/svm_vmcall_test", 1, 4), ("set_memory_region_test", 1, 0),
        ("hardware_disable_test", 1, 1), ("rseq_test", 1, 137), ("kvm_create_max_vcpus", 2, None)]
    assert [tap.status(r) for r in rs] == ["pass", "skip", "fail", "fail", "timeout", "incomplete"]
    smr = rs[2]
    assert smr.tap == {"ok": 1, "not ok": 1, "skip": 1, "xfail": 0}  # the nested "not ok" is not counted
    assert smr.first_failure == "delete_in_use_region"
    assert rs[0].duration_s == 4.25 and rs[0].lines[-1].startswith("Testing creating 1024")
    assert rs[-1].lines == ["Testing creating 1024 vCPUs, with IDs 0...10"]  # cut off mid-line, kept
    assert tap.describe(rs[2], "fail") == "selftest set_memory_region_test failed (exit 0, first: not ok delete_in_use_region)"
    assert tap.describe(rs[4], "timeout") == "selftest rseq_test timed out (killed after 60 s)"


def test_exit_codes_are_kselftests():
    r = tap.Result("t", 1)
    for code, want in [(0, "pass"), (1, "fail"), (2, "xfail"), (3, "pass"), (4, "skip"), (134, "fail"), (137, "timeout")]:
        r.exit = code
        assert tap.status(r) == want, code
    r.exit = 1
    assert tap.status(r, expect_fail="needs what TCG lacks") == "xfail"


def test_xfail_and_todo_directives_and_stray_markers():
    lines = ["lab-selftest: end nothing exit 0 uptime 1",  # an end without a begin: ignored
             "lab-selftest: begin a round 1 uptime 1", "ok 1 x # XFAIL known", "not ok 2 y # TODO later",
             "ok 3 - z", "lab-selftest: end b exit 0 uptime 2",  # another's end: still a's output
             "lab-selftest: end a exit 0 uptime 3"]
    (r,) = tap.parse(lines)
    assert r.tap == {"ok": 1, "not ok": 0, "skip": 0, "xfail": 2} and tap.status(r) == "pass"
    assert r.lines[-1] == "lab-selftest: end b exit 0 uptime 2"


def test_a_log_is_bounded():
    p = tap.Parser()
    p.feed("lab-selftest: begin chatty round 1 uptime 0")
    for i in range(tap.MAX_LOG_LINES + 100):
        p.feed(f"line {i}")
    assert len(p.flush().lines) == tap.MAX_LOG_LINES


def test_subtests_for_run_json_with_logs_failures_and_skips(tmp_path):
    plan = [Selftest("kvm_create_max_vcpus"), Selftest("x86_64/svm_vmcall_test"), Selftest("set_memory_region_test"),
            Selftest("hardware_disable_test", expect_fail="a reason"), Selftest("rseq_test"),
            Selftest("x86_64/amx_test", skip="TCG has no AMX")]
    entries, failures = subtests.collect(plan, OUTPUT, tmp_path)
    assert [(e["name"], e["round"], e["status"]) for e in entries] == [
        ("kvm_create_max_vcpus", 1, "pass"), ("x86_64/svm_vmcall_test", 1, "skip"), ("set_memory_region_test", 1, "fail"),
        ("hardware_disable_test", 1, "xfail"), ("rseq_test", 1, "timeout"), ("kvm_create_max_vcpus", 2, "incomplete"),
        ("x86_64/amx_test", None, "skip")]
    assert entries[3]["reason"] == "a reason" and entries[-1]["reason"] == "TCG has no AMX"
    assert failures == ("selftest set_memory_region_test failed (exit 0, first: not ok delete_in_use_region)",
                        "selftest rseq_test timed out (killed after 60 s)")
    log = tmp_path / entries[1]["log"]
    assert log.read_text() == "1..1\n# SKIP - Requirement not met: kvm_cpu_has(X86_FEATURE_SVM)\n"
    assert entries[1]["log"] == "selftests/1/x86_64/svm_vmcall_test.log"
    json.dumps(entries)  # run.json takes it as it is


GOLDEN = Path(__file__).parent / "data" / "selftests"


def test_a_recorded_round_golden():
    results = tap.parse((GOLDEN / "survey-6.12.117.log").read_text().splitlines())
    got = [{"name": r.name, "status": tap.status(r), "exit": r.exit, "tap": r.tap, "first_failure": r.first_failure}
           for r in results]
    golden = GOLDEN / "survey-6.12.117.log.json"
    if os.environ.get("LABRUNNER_RENDER"):
        golden.write_text(json.dumps(got, indent=1) + "\n")
    assert got == json.loads(golden.read_text())
    assert len(results) == 35 and sum(tap.status(r) == "pass" for r in results) == 23
