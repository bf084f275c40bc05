"""Reports without QEMU: the timeline's parsers, JUnit and KCIDB on recorded nightlies (golden files),
every KCIDB document validated with kcidb-io, folders half-written or from an older labrunner, and
lab.yaml's reports section. The pages in a real browser are in test_report_browser.py.

Regenerate the golden files with LABRUNNER_RENDER=1 after a deliberate change.
"""
import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import junitparser
import pytest
from kcidb_io.schema import V5_3

from labrunner import config
from labrunner.build import kbuild
from labrunner.errors import ConfigError
from labrunner.report import files, folders, html, junit, kcidb, timeline

from .conftest import GOOD

DATA = Path(__file__).parent / "data" / "nightlies"
NIGHTLIES = sorted(p.name for p in DATA.iterdir() if (p / "nightly.json").is_file())
RENDER = os.environ.get("LABRUNNER_RENDER") == "1"


def _golden(path: Path, text: str) -> None:
    if RENDER:
        path.write_text(text)
    assert text == path.read_text(), f"{path.name} changed; LABRUNNER_RENDER=1 regenerates it after a deliberate change"


@pytest.fixture
def copy(tmp_path):
    """A recorded nightly copied into a results folder of its own (reports write beside it)."""
    def make(name: str) -> Path:
        shutil.copytree(DATA / name, tmp_path / "results" / name)
        return tmp_path / "results" / name
    return make


def test_console_times_follow_cpus_and_clock():
    t = timeline.ConsoleTimes()
    for line in ["[+    1.000] [    0.500000] smpboot: Total of 4 processors activated (40000.00 BogoMIPS)",
                 "[+    2.000] [    1.400000] smpboot: CPU 2 is now offline",
                 "[+    2.500] no kernel time on this line",
                 "[+    3.000] [    2.300000] smpboot: Booting Node 0 Processor 2 APIC 0x2",
                 "[+    4.000] [    3.100000] smpboot: CPU 3 is now offline",
                 "[+    4.100] [    3.150000] smpboot: CPU 3 is now offline",  # twice: still one CPU less
                 "garbage without a host time"]:
        t.feed(line)
    assert t.online == [(1.0, 4), (2.0, 3), (3.0, 4), (4.0, 3)]
    assert t.host_time(2.4) == pytest.approx(3.1)  # from the nearest earlier line: 3.0 + 0.1
    assert t.host_time(0.1) is None
    t.feed("[+    5.000] [    4.000000][   T98] smpboot: Booting Node 0 Processor 3 APIC 0x3")  # printk's caller
    assert t.clock[-1] == (4.0, 5.0) and t.online[-1] == (5.0, 4)


def test_qmp_events_and_present_vcpus():
    records = [{"t": 100.0, "dir": "recv", "msg": {"return": [{"vcpus-count": 1, "qom-path": "/a"},
                                                                {"vcpus-count": 1}]}},
               {"t": 101.5, "dir": "send", "msg": {"execute": "device_del", "arguments": {"id": "lab-cpu3"}}},
               {"t": 103.0, "dir": "lab", "action": "unplug-done", "ok": False, "detail": "unplug timed out"},
               {"t": 104.0, "dir": "recv", "msg": {"return": {}}},
               {"t": 105.0, "dir": "lab", "action": "plug-done", "ok": True, "detail": "guest onlined apicid 3"},
               {"t": 106.0, "dir": "lab", "action": "unplug-done", "ok": None, "detail": "abandoned"}]
    present, events = timeline.qmp_shapes(records, 100.0)
    assert present == [(0.0, 1), (5.0, 2)]
    assert events == [(1.5, "unplug", "unplug lab-cpu3"), (3.0, "failed", "unplug timed out")]


def test_timeline_of_a_run_with_nothing_but_run_json():
    tl = timeline.build({"splats": [{"title": "x", "timestamp": 1.0}]}, None, None, None)
    assert tl.splats == [] and len(tl.notes) == 3
    shapes = timeline.layout(tl)
    assert shapes["lanes"][0].points == "" and shapes["ticks"][0]["label"] == "0 s"


def test_timeline_places_a_real_report_on_its_console_time(copy):
    run = next((copy(NIGHTLIES[0]) / "runs").glob("*sleep-in-atomic*"))
    record = json.loads((run / "run.json").read_text())
    texts = folders.run_texts(run)
    tl = timeline.build(record, texts["console.log"], texts["qmp.jsonl"], texts["progress.jsonl"])
    lines = texts["console.log"].splitlines()
    assert len(tl.splats) == len(record["splats"]) == 2
    for (t, title), splat in zip(tl.splats, record["splats"]):
        assert title == splat["title"]
        first = lines[splat["start_line"] - 1]  # the report's first line, by its host time prefix
        assert t == pytest.approx(float(first[2:first.index("]")]), abs=0.01)
    assert max(v for _, v in tl.online) == 4 and tl.present


@pytest.mark.parametrize("name", NIGHTLIES)
def test_junit_golden(name, copy):
    folder = copy(name)
    path = junit.write(folder)
    _golden(DATA / name / "junit.golden.xml", path.read_text())
    doc = json.loads((folder / "nightly.json").read_text())
    cells = len(doc["cells"])
    xml = junitparser.JUnitXml.fromfile(str(path))
    cases = [c for suite in xml for c in suite]
    assert len(cases) == cells == len(ET.parse(path).getroot().findall("./testsuite/testcase"))
    assert all(c.classname == f"labrunner.{s.name}" for s in xml for c in s)
    assert len({(c.classname, c.name) for c in cases}) == len(cases), "GitLab keeps only the first of duplicates"
    for key, cell in doc["cells"].items():
        case = next(c for c in cases if c.name == f"{cell['kernel']} #{cell['repeat']}"
                    and c.classname == f"labrunner.{cell['test']}")
        last = cell["attempts"][-1]
        kinds = [type(r).__name__ for r in case.result]
        if cell.get("expect"):
            assert kinds == ([] if last["reports"] else ["Failure"]), key
        else:
            assert kinds == {"pass": [], "fail": ["Failure"], "error": ["Error"]}[last["verdict"]], key
        for r in case.result:
            if last["reports"] and isinstance(r, junitparser.Failure):
                assert r.message.removeprefix("known issue: ") in {x["title"] for x in last["reports"]}
                assert r.message.startswith("known issue: ") == all(x["known"] for x in last["reports"])
                splats = json.loads((folder / "runs" / last["run"] / "run.json").read_text())["splats"]
                title = r.message.removeprefix("known issue: ")
                assert r.text == next(x["text"] for x in splats if x["title"] == title)


@pytest.mark.parametrize("name", NIGHTLIES)
def test_kcidb_golden_and_valid(name, copy):
    folder = copy(name)
    settings = json.loads((DATA / name / "reports.json").read_text())  # the recording lab's, in short
    reports = config.Reports(settings["origin"], settings["results_url"])
    known = [config.KnownIssue(k["title"], k["note"], k["link"], (), ()) for k in settings["known_issues"]]
    text = json.dumps(kcidb.document(folders.load_nightly(folder), reports, known), indent=2) + "\n"
    _golden(DATA / name / "kcidb.golden.json", text)
    data = json.loads(text)
    V5_3.validate_exactly(data)
    doc = json.loads((folder / "nightly.json").read_text())
    runs = [a for c in doc["cells"].values() for a in c["attempts"] if a.get("run")]
    assert len([t for t in data["tests"] if t["status"] != "SKIP"]) == len(runs)
    assert {t["path"] for t in data["tests"]} == {f"labrunner.{c['test']}" for c in doc["cells"].values()}
    occurrences = sum(len(a["reports"]) + sum(r["known"] for r in a["reports"]) for a in runs)
    assert len(data["incidents"]) == occurrences and all(i["present"] for i in data["incidents"])
    assert all(t.get("log_url", "https://").startswith("https://") for t in data["tests"])
    assert all(i["id"].startswith(reports.origin + ":") for kind in data.values() if isinstance(kind, list)
               for i in kind)


def test_an_invalid_kcidb_document_is_never_written(copy, monkeypatch):
    folder = copy(NIGHTLIES[0])
    monkeypatch.setattr(kcidb, "test_path", lambda test: "not a path!")
    with pytest.raises(Exception, match="does not match"):
        kcidb.write(folder)
    assert not (folder / "kcidb.json").exists()


def test_half_written_and_old_folders_still_render(copy):
    """A killed nightly: a run with no run.json, one without its console, a cut-short qmp.jsonl line,
    a cell never run, an attempt whose folder is gone, no comparison.json, no host in nightly.json."""
    folder = copy(NIGHTLIES[0])
    doc = json.loads((folder / "nightly.json").read_text())
    runs = sorted((folder / "runs").iterdir())
    runs[1] = next(r for r in runs if "sleep-in-atomic" in r.name)
    (runs[0] / "run.json").unlink()
    (runs[1] / "console.log").unlink()
    with open(runs[1] / "qmp.jsonl", "a") as f:
        f.write('{"t": 12, "dir": "re')
    key = next(iter(doc["cells"]))
    doc["cells"][key]["attempts"].append({"run": "gone", "verdict": "error", "reason": "x", "flags": [],
                                          "reports": []})
    doc["cells"]["extra/never#1"] = {"kernel": "extra", "test": "never", "repeat": 1, "attempts": []}
    doc.update(complete=False, finished_at=None)
    doc.pop("host", None)
    (folder / "nightly.json").write_text(json.dumps(doc))
    (folder / "comparison.json").unlink(missing_ok=True)
    paths = files.write(folder)
    page = paths[0].read_text()
    assert "incomplete" in page and "not recorded" in page
    for run in runs:
        text = files.write(run)[0].read_text()
        assert "Missing from this folder" in text or run != runs[0]
    assert "run.json is missing" in (runs[0] / "report.html").read_text()
    assert "console.log" in (runs[1] / "report.html").read_text()
    V5_3.validate_exactly(json.loads((folder / "kcidb.json").read_text()))
    skipped = junitparser.JUnitXml.fromfile(str(folder / "junit.xml"))
    assert any(isinstance(r, junitparser.Skipped) for s in skipped for c in s for r in c.result)


def test_a_run_from_before_console_times_were_recorded_is_placed_approximately(copy):
    run = next((copy(NIGHTLIES[0]) / "runs").glob("*sleep-in-atomic*"))
    record = json.loads((run / "run.json").read_text())
    texts = folders.run_texts(run)
    exact = timeline.build(record, texts["console.log"], texts["qmp.jsonl"], texts["progress.jsonl"])
    del record["console_started_at"]
    old = timeline.build(record, texts["console.log"], texts["qmp.jsonl"], texts["progress.jsonl"])
    assert any("approximate" in n for n in old.notes) and not any("approximate" in n for n in exact.notes)
    assert old.splats == exact.splats and abs(old.present[0][0] - exact.present[0][0]) < 5


def test_a_nightly_writes_the_pages_its_runs_lack(copy):
    folder = copy(NIGHTLIES[0])
    written = files.write(folder)
    assert [p.name for p in written] == ["report.html", "junit.xml", "kcidb.json"]
    assert all((r / "report.html").is_file() for r in (folder / "runs").iterdir())


def test_a_run_page_links_its_files_and_names_its_verdict(copy):
    run = next((copy(NIGHTLIES[0]) / "runs").glob("*sleep-in-atomic*"))
    page = html.run_page(run)
    assert 'id="verdict" class="verdict v-fail"' in page and "kvm_offline_cpu" in page
    assert 'href="console.log"' in page and "virt/kvm/kvm_main.c:" in page  # a symbolised frame
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_locate_finds_nightlies_and_their_runs(copy):
    folder = copy(NIGHTLIES[0])
    run = sorted((folder / "runs").iterdir())[0]
    assert files.locate(folder.parent, folder.name) == folder
    assert files.locate(folder.parent, run.name) == run
    with pytest.raises(Exception, match="no nightly or run 'nope'"):
        files.locate(folder.parent, "nope")


def test_patchset_hash_is_kcidbs(tmp_path):
    """KCIDB's own definition: sha256sum *.patch | cut -c-64 | sha256sum | cut -c-64."""
    for name, text in (("0001-a.patch", "one\n"), ("0002-b.patch", "two\n")):
        (tmp_path / name).write_text(text)
    shell = subprocess.run("sha256sum *.patch | cut -c-64 | sha256sum | cut -c-64", shell=True, cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert kbuild.patchset_hash(sorted(tmp_path.glob("*.patch"))) == shell
    assert kbuild.patchset_hash([]) == ""


def test_reports_section(write_lab):
    lab = config.load(write_lab(GOOD + "reports:\n  kcidb: {origin: my_lab}\n  results_url: https://x.org/r/\n"))
    assert (lab.reports.origin, lab.reports.results_url) == ("my_lab", "https://x.org/r")
    assert config.load(write_lab(GOOD)).reports.origin == "labrunner"
    with pytest.raises(ConfigError, match=r":25: reports.kcidb.origin: 'My-Lab' is not a KCIDB origin"):
        config.load(write_lab(GOOD + "reports:\n  kcidb:\n    origin: My-Lab\n"))
    with pytest.raises(ConfigError, match=r"reports.results_url: 'http://x' is not an https:// URL"):
        config.load(write_lab(GOOD + "reports:\n  results_url: http://x\n"))
