"""The format table: every kind of kernel report the parser knows, one row each, and everything that
row does. Adding a format is adding a row; a behaviour special to some formats is a field here, and a
title rule of its own is a function in rules.py named in the row's `refine`.

Titles follow syzkaller's conventions ("WARNING in F", "possible deadlock in F", "INFO: task hung in
F"), so they can be looked up on syzbot and the mailing lists.
"""

import dataclasses
import re
from typing import Callable, FrozenSet, List, Optional, Pattern, Tuple

from . import rules


@dataclasses.dataclass(frozen=True)
class Absorb:
    """Headers of FORMATS that, inside an open report, are part of it rather than a new report: within
    its first WITHIN lines, or before its stack trace."""
    formats: FrozenSet[str]
    within: Optional[int] = None
    before_trace: bool = False


@dataclasses.dataclass(frozen=True)
class Format:
    """One kind of report.

    - TITLE may use {frame} and the header's named groups; the crash type follows from the title
      (report.title_type).
    - FRAME_FROM lists where the guilty function is looked for, in order: "header" (the header's <func>
      group), "at" (lockdep's 'at: F+0x' lines), "safe-at" (the stack under lockdep's "became
      ...-irq-safe at:"), "rip" (RIP/PC line), "trace" (call trace frames, or indented frames before one),
      "backtrace" (only frames under a "Call Trace:" line), "caller" (a preemption check's "caller is F").
    - NEEDS_FRAME: a report without a stack is corrupted; one that carries none ends after its
      held-lock list, if it has one.
    - ANYWHERE: the header may follow other text on its line ("watchdog: BUG: soft lockup").
    - LOCKDEP: its held locks are collected; without a frame its header's own words are its title.
    - LOCKDEP_OFF: lockdep switches itself off once it has printed one (debug_locks_off()), so no
      report of a LOCKDEP format can follow in that boot. Not so for suspicious RCU usage.
    - FOLLOWS: a consequence of whatever report is open (the panic after a WARNING, an oops after a
      BUG): it joins that report instead of starting one.
    - AFTERMATH: a consequence of the report that just ended, too (the panic after an oops's "end
      trace" line): within AFTERMATH_LINES of its end it starts no report of its own.
    - ABSORBS: other formats' headers that belong to an open report of this one.
    - REFINE: title rules of its own (rules.py), run in order when the report ends.
    - FALLBACK: tried after every other row, and only when no report is open: a catch-all, so that a
      report no row knows still fails the run, while lines such as "INFO: lockdep is turned off."
      inside a known report do not cut it.
    """
    name: str
    header: Pattern
    title: str
    frame_from: Tuple[str, ...] = ("rip", "trace")
    needs_frame: bool = True
    anywhere: bool = False
    lockdep: bool = False
    lockdep_off: bool = False
    follows: bool = False
    aftermath: bool = False
    absorbs: Tuple[Absorb, ...] = ()
    refine: Tuple[Callable[[rules.Draft], None], ...] = ()
    fallback: bool = False


def _f(name, header, title, frame_from=("rip", "trace"), **more) -> Format:
    return Format(name, re.compile(header), title, tuple(frame_from), **more)


# Lockdep faulting on a bad lock before it printed a stack: one report, not two.
# Lines in a report's words that are no bug: the catch-all row never opens on them. (A stack often
# follows them: the NMI backtraces that the lab's own hang evidence asks for.)
NOT_REPORTS = [
    r"INFO: NMI handler \(\w+\) took too long to run",  # perf or a backtrace NMI was slow
    r"INFO: lockdep is turned off",
]

_FAULT_IN_LOCKDEP = Absorb(frozenset({"gpf", "kasan", "null-deref", "paging"}), before_trace=True)
_LOCKDEP = dict(lockdep=True, lockdep_off=True, absorbs=(_FAULT_IN_LOCKDEP,))
_LOCKDEP_AT = ("at", "trace")
_LD = r"(?:\[ )?(?P<kind>WARNING|BUG|INFO): "

FORMATS: List[Format] = [
    # Lockdep: the header is a WARNING line, so these rows come before the generic WARNING. Old kernels
    # print "[ INFO: ... ]" or "[ BUG: ... ]"; the word before the colon stays in the title.
    _f("circular", _LD + r"possible circular locking dependency detected", "possible deadlock in {frame}", _LOCKDEP_AT,
       **_LOCKDEP),
    _f("recursive", _LD + r"possible recursive locking detected", "possible deadlock in {frame}", _LOCKDEP_AT,
       **_LOCKDEP),
    _f("irq-inversion", _LD + r"possible irq lock inversion dependency detected",
       "possible deadlock in {frame}", _LOCKDEP_AT, **_LOCKDEP),
    _f("irq-unsafe", _LD + r"(?:SOFT|HARD)IRQ-(?:safe|READ-safe) -> (?:SOFT|HARD)IRQ-unsafe lock order detected",
       "possible deadlock in {frame}", ("safe-at", "at", "trace"), **_LOCKDEP),
    _f("inconsistent", _LD + r"inconsistent lock state", "inconsistent lock state in {frame}",
       ("backtrace", "at"), **_LOCKDEP),
    _f("bad-unlock", _LD + r"bad unlock balance detected!", "{kind}: bad unlock balance in {frame}", ("at", "trace"),
       **_LOCKDEP),
    _f("held-freed", _LD + r"held lock freed!", "{kind}: held lock freed in {frame}", ("at", "trace"), **_LOCKDEP),
    # No stack: the report is the held-lock list, and ends after it.
    _f("held-return", _LD + r"lock held when returning to user space!",
       "{kind}: lock held when returning to user space in {frame}", ("at",), needs_frame=False, **_LOCKDEP),
    _f("still-held", _LD + r"(?:.*still has locks held!|.* is exiting with locks still held!)",
       "{kind}: still has locks held in {frame}", ("at", "trace"), **_LOCKDEP),
    _f("nested-lock", _LD + r"Nested lock was not taken", "{kind}: nested lock was not taken in {frame}",
       ("at", "trace"), **_LOCKDEP),
    _f("suspicious-rcu", _LD + r"suspicious RCU usage", "{kind}: suspicious RCU usage in {frame}", ("trace",),
       lockdep=True, refine=(rules.no_frame_if_corrupted,)),
    # syzbot files an invalid wait context under lockdep's generic "locking bug".
    _f("invalid-wait", _LD + r"Invalid wait context", "WARNING: locking bug in {frame}", ("trace", "at"), **_LOCKDEP),
    _f("stack-regs", r"WARNING: kernel stack regs at\s+(?P<addr>\S+)", "WARNING: kernel stack regs has bad {bp}value",
       needs_frame=False, refine=(rules.stack_regs_bp,)),
    # The frame-pointer unwinder's other complaint; a hashed "(ptrval)" pointer gets the generic title.
    _f("stack-fp", r"WARNING: kernel stack frame pointer at\s+(?P<addr>\S+)", "WARNING: kernel stack {what} has bad value",
       needs_frame=False, refine=(rules.stack_fp_what,)),
    _f("non-static-key", r"INFO: trying to register non-static key",
       "INFO: trying to register non-static key in {frame}", ("trace",), anywhere=True, **_LOCKDEP),
    _f("lockdep-limit", r"BUG: (?P<what>MAX_\w+ too low!|lock held at task exit)", "BUG: {what}",
       needs_frame=False, **_LOCKDEP),
    # CONFIG_DEBUG_SPINLOCK's own checks (no lockdep needed).
    _f("spinlock", r"BUG: (?P<lock>spinlock|rwlock) (?P<what>recursion|lockup suspected|already unlocked|"
                   r"wrong owner|wrong CPU|bad magic|cpu recursion|trylock failure on UP)",
       "BUG: {lock} {what} in {frame}", ("trace",)),
    # Atomicity.
    _f("sleep-atomic", r"BUG: sleeping function called from invalid context",
       "BUG: sleeping function called from invalid context in {frame}", ("trace",)),
    _f("sched-atomic", r"BUG: scheduling while atomic", "BUG: scheduling while atomic in {frame}", ("trace",)),
    # CONFIG_DEBUG_PREEMPT: per-CPU state used from preemptible code, such as enabling virtualization on
    # "this" CPU from a task that can migrate during CPU hotplug.
    _f("preemptible", r"BUG: using (?P<what>smp_processor_id|__this_cpu_\w+|this_cpu_\w+)\(\) in preemptible",
       "BUG: using {what}() in preemptible code in {frame}", ("caller", "trace")),
    # Memory safety. KASAN prints a second header line of its own just after the first.
    _f("kasan", r"BUG: KASAN: (?P<kind>double-free or invalid-free|[\w-]+)(?: in (?P<func>[\w.$]+)"
                r"(?:\+0x[0-9a-f]+/0x[0-9a-f]+)?)?(?P<at> at addr [0-9a-f]+)?(?P<on> on address)?",
       "KASAN: {kind}{access} in {frame}{at}", ("header", "trace"), anywhere=True,
       absorbs=(Absorb(frozenset({"kasan"}), within=3),), refine=(rules.kasan_access,)),
    # KCSAN names both racing functions in its header; its two stacks have no "Call Trace:" line.
    _f("kcsan", r"BUG: KCSAN: (?P<kind>[\w-]+) in (?P<where>\S+(?: / \S+)?)", "KCSAN: {kind} in {where}",
       needs_frame=False, refine=(rules.plain_functions,)),
    _f("kmsan", r"BUG: KMSAN: (?P<kind>[\w-]+)(?: in (?P<func>[\w.$]+))?", "KMSAN: {kind} in {frame}",
       ("header", "trace")),
    _f("ubsan", r"UBSAN: (?P<kind>[\w-]+|Undefined behaviour) in ", "UBSAN: {kind} in {frame}", ("trace",),
       anywhere=True, refine=(rules.ubsan_kind,)),
    # SLUB's object tracking on old kernels: who allocated or freed what a check then tripped over.
    _f("slub-track", r"INFO: (?P<what>Allocated|Freed) in (?P<func>[\w.$]+)\+0x[0-9a-f]+/0x[0-9a-f]+ "
                     r"(?P<rest>age=\d+ cpu=\d+ pid=\d+)",
       "INFO: {what} in {func} {rest}", needs_frame=False, anywhere=True),
    _f("gpf", r"(?:Oops: )?general protection fault(?!.* ip:)", "general protection fault in {frame}", anywhere=True),
    # x86's #DF handler: the faulting RIP is the only frame it names. Inside an open report it is that
    # report's fault handler faulting again, so it joins it.
    _f("double-fault", r"PANIC: double fault", "PANIC: double fault in {frame}", ("rip",), needs_frame=False,
       follows=True),
    _f("null-deref", r"(?:BUG: u|U)nable to handle kernel NULL pointer dereference|BUG: kernel NULL pointer dereference",
       "BUG: unable to handle kernel NULL pointer dereference in {frame}", anywhere=True),
    _f("paging", r"(?:BUG: u|U)nable to handle (?:kernel )?(?:paging request|page fault for address)",
       "BUG: unable to handle kernel paging request in {frame}", anywhere=True),
    # arm64's fault on a user address outside the uaccess routines (SMAP's like on x86 is an oops).
    _f("user-access", r"(?:BUG: u|U)nable to handle kernel access to user memory",
       "BUG: unable to handle kernel access to user memory in {frame}", anywhere=True),
    # (After "Bad or missing usercopy whitelist?" the WARNING that follows is the report.) Its check
    # ends in a BUG().
    _f("usercopy", r"(?:usercopy: )?(?<!whitelist\? )[Kk]ernel memory (?:exposure|overwrite) attempt detected",
       "BUG: bad usercopy in {frame}", ("trace",), anywhere=True, absorbs=(Absorb(frozenset({"kernel-bug"}), 12),)),
    # Hangs. A stall is named by an anchor frame; a WARNING the stall dump trips over is part of it.
    _f("soft-lockup", r"BUG: soft lockup", "BUG: soft lockup in {frame}", anywhere=True,
       refine=(rules.stall_anchor,)),
    # A work item that keeps its pool busy: the dump that follows lists pools, not one stack.
    _f("workqueue-lockup", r"BUG: workqueue lockup", "BUG: workqueue lockup", needs_frame=False),
    _f("hard-lockup", r"Watchdog detected hard LOCKUP", "BUG: hard lockup in {frame}", anywhere=True),
    # (A task name with bytes that broke the line still starts a report.)
    _f("hung-task", r"INFO: task (?:.* blocked (?:in I/O wait )?for more than \d+ seconds|.*[^\x00-\x7f])",
       "INFO: task hung in {frame}",
       ("trace",)),
    _f("rcu-stall", r"INFO: rcu_(?:preempt|sched|bh) (?:self-)?detected (?:expedited )?stall|"
                    r"INFO: rcu_(?:preempt|sched|bh|tasks\w*) detected stalls?|rcu: INFO: rcu_\w+ (?:self-)?detected",
       "INFO: rcu detected stall in {frame}", anywhere=True,
       absorbs=(Absorb(frozenset({"warning"}), before_trace=True),), refine=(rules.stall_anchor,)),
    # Crashes and corruption.
    _f("kernel-bug", r"kernel BUG at (?P<src>[^\s:]+)", "{bug} in {frame}", refine=(rules.bug_kind,)),
    _f("list", r"list_(?:add|del) corruption", "BUG: corrupted list in {frame}", ("rip", "trace"), anywhere=True,
       absorbs=(Absorb(frozenset({"kernel-bug"}), 12),)),
    _f("bad-page", r"BUG: Bad page (?:state|map)", "BUG: Bad page state in {frame}", ("trace",)),
    _f("warning", r"WARNING: (?:CPU: \d+ PID: -?\d+ at |at )?(?P<src>\S+:\d+)(?: (?P<func>[\w.$]+)\+0x[0-9a-f]+)?",
       "{warning} in {frame}", ("header", "rip", "trace"),
       refine=(rules.warning_kind, rules.no_frame_if_corrupted, rules.usb_submit_urb_caller)),
    # A breakpoint trap with no handler: under TCG, text patching (text_poke_bp) racing another vCPU's
    # translated code (README: findings).
    _f("int3", r"(?:Oops: )?int3: \d+ \[#\d+\]", "BUG: int3 in {frame}"),
    _f("oops", r"Oops: |Internal error: Oops", "BUG: unable to handle kernel in {frame}", follows=True),
    # A Rust panic: the message is on the next line, the guilty frame the first one outside
    # core::panicking; it ends in a BUG().
    _f("rust-panic", r"rust_kernel: panicked at ", "{why} in {frame}", ("trace",), anywhere=True,
       absorbs=(Absorb(frozenset({"kernel-bug"}), 12),), refine=(rules.message_on_next_line,)),
    _f("dentry", r"BUG: Dentry \S+ +still in use \(\d+\) \[(?P<what>unmount)", "BUG: Dentry still in use in {what}",
       needs_frame=False),
    # Android's trusty OS panics through the kernel's console.
    _f("trusty", r"trusty: panic \(caller .*?\): (?P<why>ASSERT FAILED|.*)", "trusty: {why}", needs_frame=False,
       anywhere=True, refine=(rules.trusty_why,)),
    # "Fatal exception in interrupt" is one panic with "Fatal exception" to syzbot; the kernel's own
    # trailing " ..." ("panic_on_warn set ...") is not part of why.
    _f("panic", r"Kernel panic - not syncing: (?P<why>Fatal exception|(?:(?! \.\.\.$).)*)", "kernel panic: {why}",
       needs_frame=False, follows=True, aftermath=True),
    # The lab's own invariant checker in the guest (lab-virt-check) reporting a state the kernel should
    # never be in, such as a CPU online with virtualization off while a VM exists: before any crash
    # that state may lead to, and often instead of one. Its header says what, the next lines the
    # evidence; it ends with an "end trace" line.
    _f("invariant", r"labrunner-invariant: (?P<what>[^:]+):", "INVARIANT: {what}", needs_frame=False),
    # Any other report header at the start of a line, unless it is one of NOT_REPORTS: titled by its own
    # words, and its stack's frame.
    _f("unknown", r"^(?!" + "|".join(NOT_REPORTS) + r")(?:(?:BUG|WARNING|INFO|UBSAN): |Oops\b|Kernel panic\b).*",
       "{header} in {frame}", ("rip", "trace"), fallback=True, refine=(rules.header_title,)),
]

# A word every header has (test_every_format_has_a_keyword checks it): most lines have none, and a
# search for plain words is far cheaper than trying each format's pattern.
ANY_HEADER = re.compile(r"WARNING|BUG|INFO|general protection|nable to handle|Kernel panic|Oops|UBSAN|"
                        r"KMSAN|list_(?:add|del) corruption|ernel memory|LOCKUP|trusty: panic|panicked at|"
                        r"labrunner-invariant|PANIC: double|int3: ")

# The formats whose reports need lockdep on, and those after which it is off: read by the run's
# verdict and by the bisection.
LOCKDEP_FORMATS = frozenset(f.name for f in FORMATS if f.lockdep)
LOCKDEP_OFF_FORMATS = frozenset(f.name for f in FORMATS if f.lockdep_off)

assert all(f.fallback for f in FORMATS[next(i for i, f in enumerate(FORMATS) if f.fallback):]), "fallback rows go last"
