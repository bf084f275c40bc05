"""Title rules that belong to one kind of report: each is a function of a Draft, named in the
`refine` field of the format rows that use it (formats.FORMATS), and run in that order when the report
ends. They read the report's lines and may change the header's fields, the guilty frame, the corrupted
flag or the title template."""

import dataclasses
import re
from typing import Dict, List, Optional

from . import stacks
from .frames import good_frame, stall_frame
from . import text

# Patterns bound by assignment, not by import: see parser.py.
_SUFFIX = text.SUFFIX
_OFFSET = re.compile(r"\+0x[0-9a-f]+(?:/0x[0-9a-f]+)?")



@dataclasses.dataclass
class Draft:
    """A report being titled. LINES, FMS (each line's frame match), MATCH (the header's) and FRAMES are
    read; FIELDS (the header's named groups), FRAME, CORRUPTED and TITLE (a template) may change."""
    lines: List[str]
    fms: List
    match: re.Match
    frames: List[Dict[str, str]]
    fields: Dict[str, str]
    frame: Optional[str]
    corrupted: bool
    title: str


# A BUG() in a checker names the check, as the checker's own report would.
_BUG_KINDS = {"lib/list_debug.c": "BUG: corrupted list", "mm/usercopy.c": "BUG: bad usercopy"}

# A WARNING's title says which subsystem's check fired, by the file it fired in or a message it printed.
# The rules see "FILE:LINE FUNC" of the header, then its first lines.
_WARNING_KINDS = [
    (re.compile(r"^lib/refcount\.c|refcount_t: "), "WARNING: refcount bug"),
    (re.compile(r"^kernel/locking/lockdep\.c"), "WARNING: locking bug"),
    (re.compile(r"^lib/debugobjects\.c|ODEBUG: "), "WARNING: ODEBUG bug"),
    (re.compile(r"^mm/\S+ (?:__)?kv?malloc\w*$"), "WARNING: kmalloc bug"),
    (re.compile(r"^lib/kobject\.c"), "WARNING: kobject bug"),
    (re.compile(r"^fs/proc/generic\.c"), "WARNING: proc registration bug"),
    (re.compile(r"^mm/usercopy\.c"), "WARNING: bad usercopy"),
    (re.compile(r"zero-size vmalloc|^mm/vmalloc\.c\S* __vmalloc_node"), "WARNING: zero-size vmalloc"),
]


def warning_kind(d: Draft) -> None:
    """{warning}: the subsystem check that fired; for a check, the checker's caller is the culprit."""
    where = f'{d.fields.get("src", "")} {_SUFFIX.sub("", d.fields.get("func", ""))}'
    text = "\n".join(d.lines[:6])
    d.fields["warning"] = next((title for rx, title in _WARNING_KINDS if rx.search(where) or rx.search(text)),
                               "WARNING")
    if d.fields["warning"] != "WARNING":
        checker = d.match.group("func")
        d.frame = next((name for f in stacks.after_rip(d.lines, d.fms, checker)
                        if f != checker and (name := good_frame(f)) is not None), d.frame)


def no_frame_if_corrupted(d: Draft) -> None:
    """A stack that lost its trace, or was mixed with another, names no frame ("in corrupted")."""
    if d.corrupted:
        d.frame = None


def usb_submit_urb_caller(d: Draft) -> None:
    """A bad URB: the driver that submitted it is the news, usb_submit_urb the constant."""
    func = d.match.group("func")
    if func and _SUFFIX.sub("", func) == "usb_submit_urb":
        caller = next((f["function"] for f in d.frames if f["function"] != "usb_submit_urb"
                       and good_frame(f["function"]) is not None), None) if not d.corrupted else None
        d.frame = f"{caller or 'corrupted'}/usb_submit_urb"


def stall_anchor(d: Draft) -> None:
    """A stall is named by its stacks' anchor frame (frames.stall_frame); a blocked task that only gave
    up the CPU is not looping, so its stack says where it stopped, not why: corrupted."""
    found = [s for s in stacks.stacks(d.lines, d.fms) if s]
    if found and _SUFFIX.sub("", found[0][0]) == "__schedule" and len(found[0]) > 1 \
            and found[0][1] == "preempt_schedule_common":
        d.frame, d.corrupted = None, True
    else:
        d.frame = next(filter(None, map(stall_frame, found)), d.frame)


def message_on_next_line(d: Draft) -> None:
    """{why}: the line after the header (a Rust panic's message)."""
    d.fields["why"] = d.lines[1].strip() if len(d.lines) > 1 else "panicked"


def trusty_why(d: Draft) -> None:
    d.fields["why"] = "ASSERT FAILED:" if d.fields["why"] == "ASSERT FAILED" else f"panic: {d.fields['why']}"


def bug_kind(d: Draft) -> None:
    """{bug}: a BUG() in a checker's file names the check."""
    d.fields["bug"] = _BUG_KINDS.get(d.fields["src"].removeprefix("./"), "kernel BUG")


def ubsan_kind(d: Draft) -> None:
    if d.fields["kind"] == "Undefined behaviour":
        d.fields["kind"] = "undefined-behaviour"


def _address_printed(d: Draft) -> bool:
    """The unwinder printed the bad address itself, not a hashed "(ptrval)" in its place."""
    return re.fullmatch(r"[0-9a-f]+", d.fields["addr"]) is not None


def stack_regs_bp(d: Draft) -> None:
    """{bp}: "'bp' " when the bad value is an address."""
    d.fields["bp"] = "'bp' " if _address_printed(d) else ""


def stack_fp_what(d: Draft) -> None:
    """{what}: "frame pointer" when the bad frame's address is printed, "regs" (the generic title) when
    the kernel printed a hashed "(ptrval)" in its place."""
    d.fields["what"] = "frame pointer" if _address_printed(d) else "regs"


def plain_functions(d: Draft) -> None:
    """{where}: "f / g" with compiler suffixes removed."""
    d.fields["where"] = " / ".join(_SUFFIX.sub("", f) for f in d.fields["where"].split(" / "))


def header_title(d: Draft) -> None:
    """An unknown report: its header line is its title, "in F" added when its stack names a frame. A
    bare "WARNING: <message>" (no file:line: a driver's or an unwinder's own words) is its message alone,
    a function in it without its offset."""
    d.fields["header"] = d.match.group(0).strip()[:100]
    if d.fields["header"].startswith("WARNING: "):
        d.fields["header"] = _OFFSET.sub("", d.fields["header"])
        d.title = "{header}"
    elif d.frame is None:
        d.title = "{header}"


def kasan_access(d: Draft) -> None:
    """{access} (" Read"/" Write") from the report's first lines; old kernels name the address in the
    header, kept only when the access is unknown; a wild access ("on address") names no function."""
    if d.fields["kind"] == "double-free or invalid-free":
        d.fields["kind"] = "invalid-free"
    d.fields["access"] = next((" " + am.group(1) for ln in d.lines[:4]
                               if (am := re.match(r"(Read|Write) (?:of size|at addr)", ln))), "")
    if d.fields["access"]:
        d.fields["at"] = ""
    if d.fields["on"]:
        d.title = "KASAN: {kind}{access}"
