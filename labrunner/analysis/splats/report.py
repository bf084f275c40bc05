"""A kernel report as the lab keeps it: its title, crash type and the signature that identifies one bug
across runs, kernels and nights. The crash type is a table of title prefixes, as in syzkaller."""

import dataclasses
import hashlib
import re
from typing import Dict, List, Optional, Tuple

from . import text

# Patterns bound by assignment, not by import: see parser.py.
_CONTROL = text.CONTROL


# The crash type follows from the title alone, as in syzkaller: first matching prefix wins.
_TITLE_TYPES = [(re.compile(p), t) for p, t in [
    (r"^KMSAN: uninit-value", "KMSAN-UNINIT-VALUE"),
    (r"^general protection fault", "DoS"),
    (r"^BUG: unable to handle kernel NULL pointer dereference", "NULL-POINTER-DEREFERENCE"),
    (r"^BUG: (?:unable to handle kernel paging request|corrupted list)", "MEMORY_SAFETY_BUG"),
    (r"^UBSAN: array-index-out-of-bounds", "MEMORY_SAFETY_UBSAN"),
    (r"^UBSAN", "UBSAN"),
    (r"^(?:possible deadlock|inconsistent lock state|(?:BUG|WARNING): (?:bad unlock balance|held lock freed|"
     r"still has locks held|nested lock|lock held when returning|locking bug)|BUG: Invalid wait context)", "LOCKDEP"),
    (r"^WARNING: refcount bug", "REFCOUNT_WARNING"),
    (r"^WARNING", "WARNING"),
    (r"^BUG: (?:sleeping function called|scheduling while atomic)", "ATOMIC_SLEEP"),
    (r"^(?:INFO: task hung|INFO: rcu detected stall|BUG: soft lockup|BUG: hard lockup|BUG: workqueue lockup)",
     "HANG"),
    (r"^KCSAN: data-race", "DATARACE"),
    (r"^(?:kernel BUG|BUG: bad usercopy|BUG: Bad page)", "BUG"),
    (r"^BUG: (?:spinlock|rwlock) ", "LOCKDEP"),
    (r"^(?:kernel panic|trusty: )", "DoS"),
    (r"^INVARIANT: ", "INVARIANT"),  # the lab's own checker in the guest, not a kernel report
]]
_KASAN_TITLE = re.compile(r"^KASAN: ([\w-]+)(?: (Read|Write))?")


def title_type(title: str) -> str:
    km = _KASAN_TITLE.match(title)
    if km:
        kind, access = km.groups()
        if kind in ("invalid-free", "double-free"):
            return "KASAN-INVALID-FREE"
        base = {"use-after-free": "-USE-AFTER-FREE", "slab-use-after-free": "-USE-AFTER-FREE",
                "vmalloc-use-after-free": "-USE-AFTER-FREE", "null-ptr-deref": "-NULL-POINTER-DEREFERENCE"}.get(kind, "")
        return f"KASAN{base}-{(access or 'Read').upper()}"
    for rx, type_ in _TITLE_TYPES:
        if rx.match(title):
            return type_
    return "UNKNOWN"


@dataclasses.dataclass
class Report:
    title: str
    type: str
    corrupted: bool
    frame: Optional[str]
    start_line: int
    end_line: int
    text: str
    format: str
    frames: List[Dict[str, str]] = dataclasses.field(default_factory=list)
    locks: List[str] = dataclasses.field(default_factory=list)
    cpu: Optional[int] = None
    pid: Optional[int] = None
    comm: Optional[str] = None
    taint: Optional[str] = None
    release: Optional[str] = None
    timestamp: Optional[float] = None  # the kernel's time on the header line, when printed

    @property
    def key(self) -> Tuple[str, object]:
        """Identifies one occurrence: a report seen on the console and again in dmesg has one key."""
        return (self.title, self.timestamp if self.timestamp is not None else self.text.split("\n", 1)[0])

    @property
    def signature(self) -> str:
        return signature(self.title)

    def to_dict(self) -> Dict:
        d = dataclasses.asdict(self)
        d["signature"] = self.signature
        return d


def normalize_title(title: str) -> str:
    """syzkaller's title normalisation: no addresses, numbers, line numbers; at most 120 characters."""
    t = re.sub(r"0x[0-9a-f]+|\b[0-9a-f]{8,}\b", "ADDR", title)
    t = re.sub(r"(\.[ch]):\d+", r"\1:LINE", t)
    t = re.sub(r"CPU#\d+", "CPU", t)
    t = re.sub(r"syz-executor\d+", "syz-executor", t)
    t = re.sub(r"(?<![\w.])\d+(?![\w])", "NUM", t)
    t = re.sub(r"\s+", " ", _CONTROL.sub("", t)).strip()
    return t[:120]


def signature(title: str) -> str:
    """A stable id per distinct bug: the normalised title, hashed. Same bug, same id, across runs,
    kernels and nights."""
    return hashlib.sha256(normalize_title(title).encode()).hexdigest()[:12]
