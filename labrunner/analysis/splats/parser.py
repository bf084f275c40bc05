"""The parser: a pure, line-fed state machine. feed() takes one console line at a time (from a file, or
live from the console) and returns the reports that line completed; flush() ends the input. It knows
nothing of QEMU. It keeps only the current report, so memory stays bounded whatever the input.

What each kind of report looks like and how it is titled is in formats.FORMATS; this module only finds
where a report starts and ends, and assembles it.

Two reports printed at once interleave line by line. When the kernel names each line's task or CPU
(CONFIG_PRINTK_CALLER: "[ T98]", "[ C1]"), a header from another caller than the open report's opens
a report of its own beside it, and each caller's lines go to its own report. Without caller ids, a
lockdep report interrupted in its first lines by another kind's header is set aside until that one ends.
"""

import itertools
import re
from typing import Dict, Iterable, List, Optional, Tuple

from . import formats, stacks, text
from .formats import FORMATS, Format
from .report import Report, normalize_title, title_type
from .rules import Draft
from .text import clean

# Bound by assignment, not imported by name: CPython 3.11 compiles PATTERN.method() on a name an import
# bound as an attribute load and a call rather than a method call, about 5% of the parser's time.
_ANY_HEADER = formats.ANY_HEADER
_CONSOLE_LOG = text.CONSOLE_LOG
_FRAME = text.FRAME
_KTIME = text.KTIME
_TRACE_START = text.TRACE_START


_END = re.compile(r"^(?:---\[ end trace|---\[ end Kernel panic|Kernel Offset:|Rebooting in|==========+$)")
_REG = re.compile(r"^(?:Exception stack\(|[0-9a-f]{4}: |[RE]?(?:AX|BX|CX|DX|SI|DI|BP|SP|IP|FLAGS)|R\d+|CS|DS|ES|FS|GS|CR\d|DR\d|Code|RSP|RIP|"
                  r"Stack|EFLAGS|ORIG_RAX|PKRU|\s*<(?:/?TASK|/?IRQ|/?NMI|/?SOFTIRQ|EOI)>)")
MAX_LINES = 400
_KNOWN = tuple(f for f in FORMATS if not f.fallback)
FALLBACK_WINDOW = 8  # lines in which a report no row knows must show a stack or a CPU/PID line
MAX_FRAMES = 64  # kept per report
_HELD_LOCK = re.compile(r"^\s*#\d+: ")  # lockdep's " #0: ffff... (lock){....}, at: f+0x10/0x20"
_UNSEEN = object()  # a line not matched against _FRAME yet
MAX_FOREIGN = 3  # non-trace lines a trace may hold before its end is declared
_CPU_PID = re.compile(r"CPU: (\d+) (?:UID: \d+ )?PID: (\d+) Comm: (.+?) (Not tainted|Tainted: [A-Z ]+?) +(\S+)")
_LOCK_NAME = re.compile(r"\(([^()]+?)\)\{[^}]*\}")
_CALLER = re.compile(r"\[\s*\d+\.\d+\] ?\[\s*([TC]\d+)\]")  # "[   4.17] [   T98]"
MAX_SIDE = 8  # reports of other callers open beside the first
SIDE_SILENT = 50  # lines of others after which a report beside the first is over
# Lines after a report's end in which a panic is its consequence (Format.aftermath): x86 prints the
# oops' RIP, Code and registers again after its end trace, 13 lines on 6.12, before panicking.
AFTERMATH_LINES = 20
INTERRUPT_WITHIN = 6  # lines of a lockdep report in which another kind's header interrupts it
# What a parser holds of its open report (swapped out while another interrupts it).
_REPORT_STATE = ("_fmt", "_match", "caller", "_lines", "_start", "_fms", "_last", "_pending", "_in_trace",
                 "_trace_seen", "_locks_seen", "_time")



def _caller(raw: str) -> Optional[str]:
    """printk's caller id on a console line ("T98", "C1"), if the kernel prints it."""
    m = _CALLER.search(raw, 0, 80)
    return m.group(1) if m else None


def _shows_stack(lines: List[str]) -> bool:
    """A kernel report prints a stack, or at least dump_stack's "CPU: N PID: N" line, right after its header."""
    return any(_TRACE_START.match(ln) or _CPU_PID.search(ln) for ln in lines[:FALLBACK_WINDOW])


class Parser:
    """Feed lines; get reports. See the module docstring. A parser holds one report at a time; the
    reports of other callers printed beside it are each held by a parser of their own, in _side."""

    def __init__(self, nested: bool = False):
        self.line_no = 0
        self.caller: Optional[str] = None  # printk's caller on the open report's header line
        self._side: Dict[str, "Parser"] = {}  # caller -> the parser of that caller's report, beside this one
        self._nested = nested  # a parser in another's _side
        self._held: Optional["Parser"] = None  # holds a report another interrupted (see _interruptible)
        self._ended_at = -AFTERMATH_LINES - 1  # the last line of the report closed last
        self._fmt: Optional[Format] = None
        self._lines: List[str] = []
        self._start = self._last = 0
        self._pending: List[str] = []
        self._fms: List[Optional[re.Match]] = []  # _FRAME's match of each line in _lines
        self._fm = _UNSEEN
        self._match: Optional[re.Match] = None
        self._in_trace = self._locks_seen = False
        self._trace_seen = False
        self._time: Optional[float] = None

    @property
    def in_report(self) -> bool:
        return self._fmt is not None or bool(self._side)

    def feed(self, raw: str) -> List[Report]:
        self.line_no += 1
        done: List[Report] = []
        if self._side:
            side = self._side.get(_caller(raw))
            if side is not None:
                done = side._feed_beside(self, raw)
                if side._fmt is None:
                    del self._side[side.caller]
                return done
            for caller, side in list(self._side.items()):
                if self.line_no - side._last > SIDE_SILENT:  # its caller has gone quiet: it is over
                    done += side.flush()
                    del self._side[caller]
        if self._fmt is None and raw.isprintable() and not _ANY_HEADER.search(raw):
            return done  # the common console line: no report open, no header word
        line = clean(raw)
        self._fm = _UNSEEN  # _trace_over may match it against _FRAME; _take reuses that
        header = self._header(line)
        caller = _caller(raw) if header is not None else None
        if self._fmt is not None:
            if header is not None and not self._continues(header[0]):
                if caller is not None and self.caller not in (None, caller) and not self._nested \
                        and len(self._side) < MAX_SIDE:
                    side = self._side[caller] = Parser(nested=True)  # another caller's report, beside this one
                    return side._feed_beside(self, raw)
                if caller is None and self._interruptible(header[0]):
                    self._held = Parser(nested=True)  # set aside; it goes on when the interrupting one ends
                    self._swap(self._held)
                else:
                    done += self._finish()
                    if self._fmt is not None:  # the report it had interrupted: this header ends it too
                        done += self._finish()
            elif line[:1] in "-KR=" and _END.match(line) and (self._trace_seen or not self._fmt.needs_frame):
                # (Consoles interleave: syzkaller's logs show the stack after the panic's last words.)
                self._take(line)
                done += self._finish()
                return done
            elif len(self._lines) >= MAX_LINES or (self._fmt.fallback and len(self._lines) == FALLBACK_WINDOW
                                                   and not _shows_stack(self._lines)):
                done += self._finish()
            elif self._trace_over(line):
                # Another CPU's or task's lines may land inside a trace: the trace is over only when
                # no frame follows them.
                self._pending.append(line)
                if len(self._pending) <= MAX_FOREIGN:
                    return done
                done += self._finish()
            else:
                self._take(line)
                return done
        if header is not None:
            if header[0].aftermath and self.line_no - self._ended_at <= AFTERMATH_LINES:
                return done  # the panic after the report that just ended is that report's end
            self._fmt, self._match, self.caller = header[0], header[1], caller
            self._lines, self._start = [line], self.line_no
            self._fms, self._fm = [_FRAME.match(line)], _UNSEEN
            self._last, self._pending = self.line_no, []
            self._in_trace = self._trace_seen = self._locks_seen = False
            tm = _KTIME.search(_CONSOLE_LOG.sub("", raw, count=1)[:40])
            self._time = float(tm.group(1)) if tm else None
        return done

    def _feed_beside(self, main: "Parser", raw: str) -> List[Report]:
        """A line of MAIN's input that is this side parser's caller's: at MAIN's line number."""
        self.line_no = main.line_no - 1
        return self.feed(raw)

    def flush(self) -> List[Report]:
        done: List[Report] = []
        while self._fmt is not None:
            done += self._finish()
        for side in self._side.values():
            done += side.flush()
        self._side = {}
        return sorted(done, key=lambda r: r.start_line)

    def _take(self, line: str) -> None:
        if self._pending:
            self._lines += self._pending
            self._fms += [_FRAME.match(ln) for ln in self._pending]
            self._pending = []
        self._lines.append(line)
        self._fms.append(_FRAME.match(line) if self._fm is _UNSEEN else self._fm)
        self._last = self.line_no

    def _header(self, line: str) -> Optional[Tuple[Format, re.Match]]:
        if not _ANY_HEADER.search(line):
            return None
        for fmt in FORMATS if self._fmt is None else _KNOWN:  # a fallback row never cuts an open report
            m = fmt.header.search(line)
            if m and (m.start() == 0 or fmt.anywhere):
                return fmt, m
        return None

    def _continues(self, fmt: Format) -> bool:
        """A header inside the open report that belongs to it (see Format.follows and Format.absorbs)."""
        if fmt.follows:
            return True
        return any(fmt.name in a.formats and (a.within is None or len(self._lines) < a.within)
                   and not (a.before_trace and self._trace_seen) for a in self._fmt.absorbs)

    def _trace_over(self, line: str) -> bool:
        """After the last stack trace of the report: the first line that is no part of one. A report
        that carries no stack ends after its held-lock list, if it has one."""
        if not self._fmt.needs_frame:
            if _HELD_LOCK.match(line):
                self._locks_seen = True
                return False
            return self._locks_seen
        if line[:1] in "CBSs" and _TRACE_START.match(line):
            self._in_trace = True
            return False
        if self._in_trace:
            frame = self._fm = _FRAME.match(line)
            if frame or _REG.match(line) or not line.strip():
                self._trace_seen = self._trace_seen or bool(frame)
                return False
            if self._trace_seen and self._fmt.needs_frame:
                return not line.startswith(("Showing", "Modules linked in", "Allocated by", "Freed by",
                                            "The buggy address", "Memory state", "Last potentially",
                                            # a stall's other CPUs, dumped after the first stack
                                            "Sending NMI", "NMI backtrace", "INFO: NMI handler", "rcu: ",
                                            "RCU grace-period", "task:"))
        return False


    def _interruptible(self, fmt: Format) -> bool:
        """Without caller ids, a report of another kind whose header lands in a lockdep report's first
        lines, before any "at:" line or stack of its own, is another CPU's printed at once: the
        lockdep report is set aside, not cut, and goes on when that one ends."""
        return (self._held is None and self._fmt.lockdep and not fmt.lockdep and fmt is not self._fmt
                and len(self._lines) <= INTERRUPT_WITHIN and not self._trace_seen
                and not any(text.AT.search(ln) for ln in self._lines))

    def _swap(self, other: "Parser") -> None:
        for name in _REPORT_STATE:
            mine = getattr(self, name)
            setattr(self, name, getattr(other, name))
            setattr(other, name, mine)

    def _finish(self) -> List[Report]:
        """The open report, closed; then the one it had interrupted, if any, is open again."""
        done = self._close()
        if self._held is not None:
            self._swap(self._held)
            self._held = None
        return done

    def _close(self) -> List[Report]:
        """The open report, closed: one report, or none for a fallback header that had no stack, such as a
        program's own "WARNING: ..." on the console."""
        fmt, m, lines, end_line = self._fmt, self._match, self._lines, self._last
        fms = self._fms  # each line's _FRAME match, made once
        self._fmt, self._ended_at = None, end_line
        if fmt.fallback and not _shows_stack(lines):
            return []
        frame = stacks.guilty(fmt.frame_from, m, lines, fms)
        # As syzkaller has it: a report that should carry a stack and lost it is corrupted, whatever title.
        corrupted = fmt.needs_frame and (frame is None or not stacks.has_trace(lines, fms))
        corrupted = corrupted or stacks.foreign_dump_first(lines, fms)
        d = Draft(lines=lines, fms=fms, match=m, frames=list(itertools.islice(stacks.frame_dicts(lines, fms), MAX_FRAMES)),
                  fields=dict(m.groupdict(default="")), frame=frame, corrupted=corrupted, title=fmt.title)
        for rule in fmt.refine:
            rule(d)
        if d.frame is None and fmt.lockdep and not m.group(0).startswith("["):
            title = m.group(0)  # a lockdep report without its frame keeps its own words (old "[ ...]" ones do not)
        else:
            title = d.title.format(frame=d.frame or "corrupted", **d.fields)
        title = normalize_title(title)  # as syzbot shows it: "at addr ADDR", "age=NUM"
        report = Report(title=title, type=title_type(title), corrupted=d.corrupted, frame=d.frame,
                        start_line=self._start, end_line=end_line, text="\n".join(lines), format=fmt.name,
                        frames=d.frames, timestamp=self._time)
        cm = next(filter(None, (_CPU_PID.search(ln) for ln in lines if "PID: " in ln)), None)
        if cm:
            report.cpu, report.pid, report.comm = int(cm.group(1)), int(cm.group(2)), cm.group(3)
            report.taint, report.release = cm.group(4), cm.group(5)
        if fmt.lockdep:
            report.locks = list(dict.fromkeys(lm.group(1) for ln in lines if "{" in ln
                                              for lm in _LOCK_NAME.finditer(ln)))
        return [report]


def parse_lines(lines: Iterable[str]) -> List[Report]:
    parser = Parser()
    reports: List[Report] = []
    for line in lines:
        reports += parser.feed(line)
    # in the order they started: a report that began first may end after one printed beside it
    return sorted(reports + parser.flush(), key=lambda r: r.start_line)


def parse_file(path) -> List[Report]:
    with open(path, "rb") as f:
        return parse_lines(raw.decode("utf-8", "replace").rstrip("\r\n") for raw in f)
