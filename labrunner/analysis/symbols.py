"""Splat frames to file:line, with the kernel's own vmlinux (debug.config keeps line tables in it).

A frame "f+0x1a/0x40" is an offset into f. `nm -S` gives f's address and size (the size, padded,
tells apart static functions that share a name); `addr2line -i` turns the address into file:line,
inlined callers included. A return address points after its call, so a frame below the top is looked
up one byte earlier. One nm and one addr2line process per run, no shell.
"""

import posixpath
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .. import process

PADDING = 64  # at most between a function's end and the next symbol: alignment, the next __pfx_
TIMEOUT = 300  # reading a debug vmlinux's line tables takes seconds; a bound all the same
_OFFSET = re.compile(r"([A-Za-z_.$][\w.$]*)\+0x([0-9a-f]+)/0x([0-9a-f]+)")
# Where a lab-built kernel's sources sit in the cache: dropped, so paths read as in the kernel tree.
_TREE = re.compile(r"^.*?/build/[^/]+/(?:src|out)/")


def nm_argv(vmlinux: Path) -> List[str]:
    return ["nm", "-S", "--defined-only", str(vmlinux)]


def addr2line_argv(vmlinux: Path) -> List[str]:
    return ["addr2line", "-e", str(vmlinux), "-f", "-i", "-p"]


def parse_nm(text: str) -> Dict[str, List[Tuple[int, int]]]:
    """Text symbols: name -> [(address, size), ...]."""
    table: Dict[str, List[Tuple[int, int]]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tTwW":
            table.setdefault(parts[3], []).append((int(parts[0], 16), int(parts[1], 16)))
    return table


def frame_address(raw: str, table: Dict[str, List[Tuple[int, int]]], top: bool) -> Optional[int]:
    """The address a printed frame stands for, or None when the symbol is unknown or ambiguous."""
    m = _OFFSET.search(raw)
    if not m:
        return None
    candidates = table.get(m.group(1), [])
    offset, size = int(m.group(2), 16), int(m.group(3), 16)
    # The kernel prints the distance to the next symbol: the ELF size plus alignment padding.
    sized = [addr for addr, sz in candidates if sz <= size <= sz + PADDING] or [None]
    if len(sized) > 1:
        sized = [addr for addr, sz in candidates if sz == size] or [None]
    if len(sized) != 1 or sized[0] is None:
        return None
    return sized[0] + offset - (0 if top or offset == 0 else 1)


def parse_addr2line(text: str) -> List[List[str]]:
    """`addr2line -f -i -p` output, one entry per address: ["file:line", then each inlining caller's]."""
    entries: List[List[str]] = []
    for line in text.splitlines():
        inlined = line.startswith(" (inlined by) ")
        _, at, where = line.partition(" at ")
        where = where.split(" (discriminator")[0].strip()
        if at and ":" in where:
            path, _, line_no = where.rpartition(":")
            where = f"{posixpath.normpath(_TREE.sub('', path))}:{line_no}"  # arch/x86/kvm/../../../virt/..
        else:
            where = "??"
        if inlined and entries:
            entries[-1].append(where)
        else:
            entries.append([where])
    return entries


def symbolize(reports: Sequence[Dict], vmlinux: Path) -> int:
    """Add "source" (file:line in the frame's function) and "inlined" (the inlined code there, innermost
    first) to the frames of REPORTS (run.json's splat dicts) in
    place. Returns how many frames got a source; 0 when vmlinux has no line tables."""
    table = parse_nm(process.run(nm_argv(vmlinux), timeout=TIMEOUT, what="nm"))
    wanted: List[Tuple[Dict, int]] = []
    for report in reports:
        for i, frame in enumerate(report.get("frames", [])):
            addr = frame_address(frame.get("raw", ""), table, top=i == 0)
            if addr is not None:
                wanted.append((frame, addr))
    if not wanted:
        return 0
    out = process.run(addr2line_argv(vmlinux), timeout=TIMEOUT, what="addr2line",
                      input="".join(f"{addr:#x}\n" for _, addr in wanted))
    done = 0
    for (frame, _), where in zip(wanted, parse_addr2line(out)):
        if where[0].startswith("??"):
            continue
        # addr2line starts with the innermost inlined code; the frame's own function is the last entry.
        frame["source"] = where[-1]
        if len(where) > 1:
            frame["inlined"] = where[:-1]
        done += 1
    return done
