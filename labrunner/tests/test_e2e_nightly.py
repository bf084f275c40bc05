"""End to end, real QEMU: two nightlies of one suite, the second with an injected-bug kernel in a clean
kernel's place, reports exactly that regression (in its pages, looked at in chromium, its JUnit and its
KCIDB document); a nightly stopped halfway leaves no QEMU and resumes.

The suite lives in a lab.yaml of its own in a temporary folder, on top of the built-in lab; every cache
key is by content, not place, so kernels and images come from the cache.
"""
import json
import re
import signal
import subprocess

import junitparser
import pytest
from kcidb_io.schema import V5_3

from .test_e2e import LABRUNNER, child_pids, is_qemu, qemu_children, wait_for
from .test_report_browser import check_nightly_page, check_run_page

pytestmark = pytest.mark.e2e

SUITE = """
suites:
  e2e:
    - kernels: [{kernel}]
      tests: [vm-churn-hotplug]
      repeats: 2
      duration: 15
  smoke:
    - kernels: [debian-6.12]
      tests: [kvm-smoke]
      repeats: 2
      duration: 10
  blind:
    - kernels: [debian-6.12]
      tests: [kvm-smoke]
      duration: 10
      expect: "^possible deadlock in "
"""


def _lab(tmp_path, kernel):
    """A lab of its own: the built-in lab plus these suites."""
    lab = tmp_path / "lab"
    lab.mkdir(exist_ok=True)
    (lab / "lab.yaml").write_text(SUITE.format(kernel=kernel).lstrip("\n") + "defaults:\n  suite: smoke\n")
    return lab / "lab.yaml"


def nightly(lab, *args, timeout=1800):
    return subprocess.run([*LABRUNNER[:-2], "--lab", str(lab), "nightly", *args, "--results",
                           str(lab.parent / "results")], capture_output=True, text=True, timeout=timeout)


def test_an_injected_bug_is_the_one_new_regression(tmp_path):
    clean = nightly(_lab(tmp_path, "stable-debug"), "e2e")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    bad = nightly(_lab(tmp_path, "inject-sleep-in-atomic"), "e2e")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    folder = sorted((tmp_path / "lab" / "results").glob("nightly-*-e2e"))[-1]  # names start with the time
    comparison = json.loads((folder / "comparison.json").read_text())
    new = [c for c in comparison["cells"] if c["state"] == "new regression"]
    assert [c["cell"] for c in new] == ["inject-sleep-in-atomic/vm-churn-hotplug"], comparison["cells"]
    assert new[0]["after"] == "2:2"
    titles = {s["title"] for s in comparison["splats"] if s["state"] == "new"}
    assert "BUG: sleeping function called from invalid context in kvm_offline_cpu" in titles, titles
    assert "new regression" in bad.stdout and "1 new regressions" in bad.stdout
    # its reports: a page a person reads, a JUnit file, a valid KCIDB document, a page per run
    assert f"report: {folder / 'report.html'}" in bad.stdout
    V5_3.validate_exactly(json.loads((folder / "kcidb.json").read_text()))
    cases = [c for suite in junitparser.JUnitXml.fromfile(str(folder / "junit.xml")) for c in suite]
    assert len(cases) == 2 and all(isinstance(c.result[0], junitparser.Failure) for c in cases)
    runs = sorted((folder / "runs").iterdir())
    assert len(runs) == 2 and all((r / "report.html").is_file() for r in runs)
    check_nightly_page(folder, "e2e-nightly")
    check_run_page(runs[0], "e2e-run")


def test_a_stopped_nightly_leaves_no_qemu_and_resumes(tmp_path):
    lab = _lab(tmp_path, "stable-debug")
    results = lab.parent / "results"
    proc = subprocess.Popen([*LABRUNNER[:-2], "--lab", str(lab), "nightly", "smoke", "--jobs", "1", "--results",
                             str(results)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        doc = lambda: json.loads(next(results.glob("nightly-*-smoke/nightly.json")).read_text())  # noqa: E731
        wait_for(lambda: results.exists() and list(results.glob("nightly-*/nightly.json"))
                 and any(c["attempts"] for c in doc()["cells"].values()), 600, "the first run to end")
        guests = wait_for(lambda: [q for c in child_pids(proc.pid) for q in qemu_children(c)], 300, "the second guest")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=180)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, out + err
    for pid in guests:
        wait_for(lambda: not is_qemu(pid), 15, f"QEMU {pid} to exit")
    stopped = doc()
    assert not stopped["complete"] and sum(bool(c["attempts"]) for c in stopped["cells"].values()) >= 1
    resumed = nightly(lab, "--resume", stopped["id"])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    final = doc()
    assert final["complete"] and all(c["attempts"][-1]["verdict"] == "pass" for c in final["cells"].values())
    # the index, deleted, comes back from the folders
    listed = subprocess.run([*LABRUNNER[:-2], "--lab", str(lab), "results", "ls", "--results", str(results)],
                            capture_output=True, text=True, timeout=60).stdout
    (results / "lab.db").unlink()
    subprocess.run([*LABRUNNER[:-2], "--lab", str(lab), "results", "import", "--results", str(results)], check=True,
                   capture_output=True, timeout=60)
    assert subprocess.run([*LABRUNNER[:-2], "--lab", str(lab), "results", "ls", "--results", str(results)],
                          capture_output=True, text=True, timeout=60).stdout == listed


def test_a_canary_that_stops_failing_is_lost(tmp_path):
    """A kernel expected to fail that passes: the lab can no longer see what it is for."""
    p = nightly(_lab(tmp_path, "stable-debug"), "blind")
    assert p.returncode == 1, p.stdout + p.stderr
    assert re.search(r"canary lost\s+debian-6.12/kvm-smoke\s+-\s+0:1", p.stdout), p.stdout
    assert "1 canaries lost" in p.stdout
