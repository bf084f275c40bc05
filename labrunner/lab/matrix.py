"""A suite's cells: one per (kernel, test, repeat), with what a canary expects."""

import dataclasses
from typing import List, Optional

from ..config import Suite


@dataclasses.dataclass(frozen=True)
class Cell:
    kernel: str
    test: str
    repeat: int
    duration: Optional[int]
    expect: Optional[str]  # a canary's title regex

    @property
    def key(self) -> str:
        """Stable across nights: the comparison lines cells up by it."""
        return f"{self.kernel}/{self.test}#{self.repeat}"

    @property
    def group(self) -> str:
        """The repeats of one kernel x test, counted together as fail:runs."""
        return f"{self.kernel}/{self.test}"


def cells(suite: Suite) -> List[Cell]:
    """Each kernel x test of each entry, REPEATS times (lab.yaml allows a pair in one entry only)."""
    return [Cell(kernel, test, r, entry.duration, entry.expect) for entry in suite.entries for kernel in entry.kernels
            for test in entry.tests for r in range(1, entry.repeats + 1)]
