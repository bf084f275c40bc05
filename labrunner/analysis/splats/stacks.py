"""Reading a finished report's stacks: its frames, its stacks one by one, whether it has a trace at all,
and the guilty frame by a format's FRAME_FROM sources. Each function takes the report's LINES and FMS,
each line's FRAME match (made once by the parser)."""

import re
from typing import Dict, Iterator, List, Optional, Sequence

from .frames import frame_name, good_frame
from . import text
from .text import rip

# Patterns bound by assignment, not by import: see parser.py.
_AT = text.AT
_CALLER = text.CALLER
_TRACE_START = text.TRACE_START


_FOREIGN_DUMP = re.compile(r"^(?:FAULT_INJECTION: forcing a failure|\S+ cpuset=|\s*mems_allowed=)")


def frame_dicts(lines: List[str], fms: List) -> Iterator[Dict[str, str]]:
    """Each reliable frame (not "? f+0x..") as {"function", "raw"}."""
    for ln, fm in zip(lines, fms):
        if fm and not fm.group(1):
            yield {"function": frame_name(fm.group(2)), "raw": ln.strip()}


def stacks(lines: List[str], fms: List) -> List[List[str]]:
    """The report's stacks (one per trace or NMI backtrace), each top first with its RIP: a stall's
    anchor may be in the interrupted context or in the softirq the interrupt ran."""
    out: List[List[str]] = [[]]
    for ln, fm in zip(lines, fms):
        if (_TRACE_START.match(ln) or ln.startswith("NMI backtrace")) and out[-1]:
            out.append([])
        if fm and not fm.group(1):
            out[-1].append(fm.group(2))
        elif rm := rip(ln):
            out[-1].append(rm.group(1))
    return out


def after_rip(lines: List[str], fms: List, func: Optional[str]) -> List[str]:
    """The trace frames of the stack FUNC's RIP line belongs to (all of them without such a line):
    another task's stack may come first."""
    start = next((i for i, ln in enumerate(lines) if func and (rm := rip(ln)) and rm.group(1) == func), 0)
    return [fm.group(2) for fm in fms[start:] if fm and not fm.group(1)]


def foreign_dump_first(lines: List[str], fms: List) -> bool:
    """Fault injection or an allocation failure printed its own stack before the report's RIP: the two
    are mixed up."""
    for ln, fm in zip(lines, fms):
        if rip(ln):
            return False
        if (fm and fm.group(2).startswith("should_fail")) or (
                ("FAULT_INJECTION" in ln or "cpuset=" in ln or "mems_allowed=" in ln) and _FOREIGN_DUMP.match(ln)):
            return True
    return False


def has_trace(lines: List[str], fms: List) -> bool:
    in_trace = False
    for ln, fm in zip(lines, fms):
        if _TRACE_START.match(ln):
            in_trace = True
        elif in_trace and fm and not fm.group(1):
            return True
    return False


def guilty(frame_from: Sequence[str], m: re.Match, lines: List[str], fms: List) -> Optional[str]:
    """The first good frame from FRAME_FROM's sources, in order (see formats.Format)."""
    for source in frame_from:
        if source == "header":
            func = m.groupdict().get("func")
            if func and (name := good_frame(func)):
                return name
        elif source == "at":
            for i, ln in enumerate(lines):
                am = _AT.search(ln)
                if am is None and ln.endswith(" at:") and i + 1 < len(lines):
                    am = fms[i + 1]  # "... lock (x) at:" then the frame alone
                    am = am if am and not am.group(1) else None
                func = am.group(am.lastindex) if am else None
                if func and (name := good_frame(func)):
                    return name
        elif source == "caller":
            for ln in lines[1:3]:
                if (cm := _CALLER.match(ln)) and (name := good_frame(cm.group(1))):
                    return name
        elif source == "safe-at":
            # The irq-safe lock's first use, from an interrupt: where the inversion bites.
            at = next((i for i, ln in enumerate(lines) if re.search(r"became \S+-irq-safe at:$", ln)), None)
            for fm in fms[at + 1:] if at is not None else []:
                if not fm:
                    break
                if not fm.group(1) and (name := good_frame(fm.group(2))):
                    return name
        elif source == "rip":  # the first one: later ones are other contexts (an interrupt's, a CPU's)
            rm = next(filter(None, map(rip, lines)), None)
            if rm and (name := good_frame(rm.group(1))):
                return name
        elif source in ("trace", "backtrace"):  # backtrace: only frames under a "Call Trace:" line
            in_trace = False
            for ln, fm in zip(lines, fms):
                if _TRACE_START.match(ln):
                    in_trace = True
                    continue
                # An inlined frame is part of its caller, the function that was really called.
                if fm and not fm.group(1) and (in_trace or (source == "trace" and ln.startswith(" "))) \
                        and not ln.endswith("[inline]"):
                    if name := good_frame(fm.group(2)):
                        return name
    return None
