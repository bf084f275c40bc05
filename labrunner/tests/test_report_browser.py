"""The report pages in a real browser (chromium --headless): a recorded nightly's page and one of its
runs' pages are screenshotted (kept in .test-artifacts/screenshots/) and their DOM is checked.
The end-to-end nightly test does the same on a nightly it has just run."""
import json
import shutil
from pathlib import Path

import pytest

from labrunner.report import files

from .browser import Elements, dom, screenshot, share
from .test_report import DATA, NIGHTLIES

NEW_RED = (0x8B, 0x00, 0x00)  # .new in base.html


def check_nightly_page(folder: Path, name: str) -> None:
    """The page of the nightly in FOLDER (reports written) shows its cells, states and reports."""
    page = folder / "report.html"
    comparison = json.loads((folder / "comparison.json").read_text())
    image = screenshot(page, name)
    assert share(image, (255, 255, 255)) < 0.97, "the screenshot is blank"
    new = [c["cell"] for c in comparison["cells"] if c["state"] == "new regression"]
    if new:  # a person sees the new regressions at a glance: the one dark red of the page
        assert share(image, NEW_RED) > 0.002, "no new-regression cell visible"
    els = Elements(dom(page))
    shown = {a["data-cell"]: a["data-state"] for a in els.find("td") if "data-cell" in a}
    assert shown == {c["cell"]: c["state"] for c in comparison["cells"]}
    titles = {t.strip() for t in els.texts.get("splat-title", [])}
    assert titles == {s["title"] for s in comparison["splats"]}
    doc = json.loads((folder / "nightly.json").read_text())
    runs = {a["run"] for c in doc["cells"].values() for a in c["attempts"] if a.get("run")}
    assert {a["href"] for a in els.find("a") if a.get("href", "").startswith("runs/")} == \
        {f"runs/{r}/report.html" for r in runs}


def check_run_page(run: Path, name: str) -> None:
    page = run / "report.html"
    record = json.loads((run / "run.json").read_text())
    image = screenshot(page, name)
    assert share(image, (255, 255, 255)) < 0.97, "the screenshot is blank"
    els = Elements(dom(page))
    assert els.find("svg", id="timeline"), "no timeline"
    assert len(els.find("polyline", **{"class": "series"})) >= 2  # online CPUs and QEMU's vCPUs at least
    placed = [s for s in record["splats"] if s.get("timestamp") is not None]
    assert len(els.find("g", **{"class": "splat"})) == len(placed)
    assert [t.strip() for t in els.texts.get("splat-title", []) if t.strip()][:len(record["splats"])] == \
        [s["title"] for s in record["splats"]]
    assert "".join(els.texts.get("verdict", [])).strip() == record["verdict"].upper()


@pytest.mark.parametrize("name", NIGHTLIES)
def test_recorded_nightly_pages_in_a_browser(name, tmp_path):
    folder = tmp_path / "results" / name
    shutil.copytree(DATA / name, folder)
    files.write(folder)
    check_nightly_page(folder, f"recorded-{name}")
    for run in sorted((folder / "runs").iterdir()):
        if (run / "console.log").is_file() and json.loads((run / "run.json").read_text())["splats"]:
            files.write(run)
            check_run_page(run, f"recorded-{run.name}")
            break
    else:
        pytest.fail("the recorded nightly has no run with a report and its console")
