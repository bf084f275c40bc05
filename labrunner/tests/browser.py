"""A real browser for the report tests: Debian's chromium, headless, for screenshots and the DOM.

Screenshots are kept as test artifacts in .test-artifacts/screenshots/ (not in git), so a person can
look at what the tests looked at.
"""
import html.parser
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, List, Tuple

from PIL import Image

from .conftest import REPO

ARTIFACTS = REPO / ".test-artifacts" / "screenshots"


def chromium() -> str:
    found = shutil.which("chromium")
    assert found, "chromium is not installed: make setup installs it (scripts/setup-host.sh)"
    return found


def _run(page: Path, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="labrunner-chromium-") as profile:
        # --no-sandbox: the tests may run as root, where chromium's sandbox refuses to start.
        return subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                               f"--user-data-dir={profile}", "--window-size=1280,1000", *args, page.as_uri()],
                              capture_output=True, text=True, timeout=120, check=True)


def screenshot(page: Path, name: str) -> Image.Image:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"{name}.png"
    shot.unlink(missing_ok=True)
    _run(page, f"--screenshot={shot}")
    return Image.open(shot).convert("RGB")


def dom(page: Path) -> str:
    return _run(page, "--dump-dom").stdout


class Elements(html.parser.HTMLParser):
    """Every element of a DOM dump as (tag, attributes), and the text inside elements of a class."""

    def __init__(self, text: str):
        super().__init__()
        self.elements: List[Tuple[str, Dict[str, str]]] = []
        self.texts: Dict[str, List[str]] = {}
        self._open: List[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        self.elements.append((tag, a))
        self._open.append(a.get("class", ""))

    def handle_endtag(self, tag):
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        for cls in self._open[-1:]:
            for c in cls.split():
                self.texts.setdefault(c, []).append(data)

    def find(self, tag: str, **attrs: str) -> List[Dict[str, str]]:
        return [a for t, a in self.elements if t == tag and all(a.get(k.replace("_", "-")) == v
                                                                  for k, v in attrs.items())]


def share(image: Image.Image, colour: Tuple[int, int, int], tolerance: int = 12) -> float:
    """The fraction of IMAGE's pixels within TOLERANCE of COLOUR."""
    near = sum(n for n, px in image.getcolors(image.width * image.height)
               if all(abs(a - b) <= tolerance for a, b in zip(px, colour)))
    return near / (image.width * image.height)
