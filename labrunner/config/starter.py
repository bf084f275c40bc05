"""`labrunner init`: a small, commented lab.yaml of one's own (builtin/starter.yaml), never over
another file."""

from pathlib import Path

from ..errors import UserError
from . import builtin


def write_starter(folder: Path) -> Path:
    path = folder / "lab.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "x") as f:  # exclusive: an existing lab.yaml is the user's, never replaced
            f.write((builtin.BUILTIN / "starter.yaml").read_text())
    except FileExistsError:
        raise UserError(f"{path} exists; labrunner init never overwrites a file") from None
    return path
