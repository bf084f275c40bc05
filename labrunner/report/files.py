"""Which reports each folder gets, and finding a folder by its id: what the CLI calls.

A run folder gets report.html; a nightly folder gets report.html, junit.xml and kcidb.json, and its
runs their pages if they have none.
"""

from pathlib import Path
from typing import List, Optional

from ..config import Lab
from ..errors import UserError
from . import folders, html, junit, kcidb


def locate(results: Path, ident: str) -> Path:
    """The nightly or run folder called IDENT under RESULTS (a run may sit in a nightly's runs/)."""
    if (results / ident / "nightly.json").is_file():
        return results / ident
    found = [p for p in [results / ident, *results.glob(f"*/runs/{ident}")] if p.is_dir()]
    if not found:
        raise UserError(f"no nightly or run '{ident}' under {results} (labrunner results ls)")
    return found[0]


def write_run(folder: Path, lab: Optional[Lab] = None) -> Path:
    return html.write(folder, lab)


def write_nightly(folder: Path, lab: Optional[Lab] = None) -> List[Path]:
    """The nightly's three reports, and the page of each of its runs that has none (a run stopped by a
    signal ends before writing its own)."""
    nightly = folders.load_nightly(folder, lab)
    for run in nightly["runs"].values():
        if run["folder"].is_dir() and not (run["folder"] / "report.html").exists():
            write_run(run["folder"], lab)
    return [html.write(folder, lab, nightly), junit.write(folder, nightly), kcidb.write(folder, nightly, lab)]


def write(folder: Path, lab: Optional[Lab] = None) -> List[Path]:
    """Every report FOLDER gets; their paths, the page first."""
    return write_nightly(folder, lab) if (folder / "nightly.json").is_file() else [write_run(folder, lab)]
