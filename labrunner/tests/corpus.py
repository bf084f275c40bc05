"""Reading syzkaller's report test files (see data/syzkaller-linux-reports/SOURCE.md for the format)."""
import dataclasses
from pathlib import Path
from typing import Dict, List

DATA = Path(__file__).parent / "data"
CORPUS = DATA / "syzkaller-linux-reports"


@dataclasses.dataclass
class Case:
    name: str
    category: str
    headers: Dict[str, str]
    log: List[str]

    @property
    def title(self) -> str:
        return self.headers.get("TITLE", "")

    @property
    def type(self) -> str:
        return self.headers.get("TYPE", "UNKNOWN")

    @property
    def corrupted(self) -> bool:
        return self.headers.get("CORRUPTED", "N") == "Y"


def load(path: Path, category: str = "") -> Case:
    lines = path.read_bytes().decode("utf-8", "replace").replace("\r", "").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    headers: Dict[str, str] = {}
    i = 0
    while i < len(lines) and lines[i] != "":
        if not lines[i].startswith("#") and ":" in lines[i]:
            key, _, value = lines[i].partition(":")
            headers.setdefault(key.strip(), value.strip())
        i += 1
    log = lines[i + 1:]
    for j in range(1, len(log)):
        if log[j] == "REPORT:" and log[j - 1] == "":
            log = log[:j]
            break
    return Case(path.name, category, headers, log)


def cases() -> List[Case]:
    categories = {}
    for row in (CORPUS / "MANIFEST.tsv").read_text().splitlines()[1:]:
        cols = row.split("\t")
        categories[cols[0]] = cols[1]
    return [load(CORPUS / name, cat) for name, cat in sorted(categories.items(), key=lambda kv: int(kv[0]))]
