"""Console lines as the parser sees them: the kernel's own text without prefixes or escapes, and the
patterns every rule reads a line with (stack frames, RIP/PC lines, lockdep's "at:", trace starts)."""

import re
from typing import Optional

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]")
CONSOLE_LOG = re.compile(r"^\[\+\s*\d+\.\d{3}\] ")  # labrunner's console.log prefix
_PREFIX = re.compile(
    r"^(?:<\d+>)?"                                  # syslog level
    r"(?:\[\s*\d+\.\d+\])?"                          # [   12.345678]
    r"(?:\[\s*[TC]\d+\])?"                           # [ T123] / [  C1] (CONFIG_PRINTK_CALLER)
    r"(?:\s*\[\s*[TC]\d+\])?"
    r"(?<=[>\]]) ?"                                  # and the space after a prefix
)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
KTIME = re.compile(r"\[\s*(\d+\.\d+)\]")
# A kernel line printed into the middle of another (a shell prompt's): the kernel's part starts at its time.
_MIDLINE = re.compile(r"\S\s*(\[\s*\d+\.\d{6}\])")


def clean(line: str) -> str:
    """The kernel's own text of a console line: no console.log, time or caller prefix, no escapes."""
    if line.startswith("[+"):
        line = CONSOLE_LOG.sub("", line, count=1)
    if "\x1b" in line:
        line = _ANSI.sub("", line)
    if not line.isprintable():  # the common line is, and skips the substitution
        line = CONTROL.sub("", line.replace("\t", " "))
    if line[:1] not in "<[":
        mid = _MIDLINE.search(line) if "] " in line else None
        if mid is None:
            return line.rstrip()
        line = line[mid.start(1):]
    m = _PREFIX.match(line)
    if m:
        line = line[m.end():]
    return line.rstrip()



_FUNC = r"([A-Za-z_.$][\w.$]*)"
# "f+0x1a/0x40", or a symbolised inlined frame "f mm/slub.c:123 [inline]" that has no offset.
# ARM prints "[<pc>] (f) from [<lr>] (g+0x10/0x20)": the frame is f.
FRAME = re.compile(r"^\s*(?:\[<?[0-9a-f]+>?\]\s*)*(\?\s+)?\(?" + _FUNC
                    + r"(?:(?:\+0x[0-9a-f]+/0x[0-9a-f]+)?\) from |\+0x[0-9a-f]+/0x[0-9a-f]+| \S+:\d+ \[inline\])")
_RIP = re.compile(r"(?:RIP: \d{4}:|RIP: |(?:^|\s)IP: |EIP: (?:\d{4}:)?|PC is at |pc : |epc : |NIP \[[0-9a-f]+\] )(?:\[<[0-9a-f]+>\]\s*)*"
                  + _FUNC + r"\+0x")


def rip(line: str) -> Optional[re.Match]:
    """The RIP/PC line's match; most lines have none of its words, and a plain search is cheap."""
    return _RIP.search(line) if ("IP" in line or "PC is" in line or "pc :" in line) else None


# The preemption checks name the culprit on their second line: "caller is f+0x10/0x20".
CALLER = re.compile(r"^caller is " + _FUNC + r"\+0x")
AT = re.compile(r"\bat: (?:[0-9a-f]{8,}\s+)?(?:\[<[0-9a-f]+>\]\s*)*" + _FUNC + r"\+0x")
TRACE_START = re.compile(r"^(?:Call Trace:|Call trace:|Backtrace:|stack backtrace:|Stack:)")
SUFFIX = re.compile(r"(\.(?:isra|constprop|part|cold|llvm|lto_priv)(?:\.\d+)?)+$")
SYSCALL = re.compile(r"^(?:__x64_sys_|__ia32_sys_|__arm64_sys_|__se_sys_|__do_sys_|__sys_|ksys_|SyS_|sys_|compat_SyS_|__se_compat_sys_|__do_compat_sys_|__x64_compat_sys_)")
