"""Kernel bug reports ("splats") in console output, titled the way syzbot titles them.

A pure, line-fed state machine: feed() takes one line at a time (from a file, or live from the
console) and returns the reports that line completed; flush() ends the input. It knows nothing of
QEMU. It keeps only the current report, so memory stays bounded whatever the input.

Formats are a table (FORMATS): a header pattern, a title template, a crash type, and where the guilty
function comes from. Adding a format is adding a row. Titles follow syzkaller's conventions ("WARNING in
F", "possible deadlock in F", "INFO: task hung in F"), so they can be looked up on syzbot and the lists.
"""

import dataclasses
import hashlib
import itertools
import re
from typing import Dict, Iterable, Iterator, List, Optional, Pattern, Tuple

# --- line clean-up -------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]")
_CONSOLE_LOG = re.compile(r"^\[\+\s*\d+\.\d{3}\] ")  # labrunner's console.log prefix
_PREFIX = re.compile(
    r"^(?:<\d+>)?"                                  # syslog level
    r"(?:\[\s*\d+\.\d+\])?"                          # [   12.345678]
    r"(?:\[\s*[TC]\d+\])?"                           # [ T123] / [  C1] (CONFIG_PRINTK_CALLER)
    r"(?:\s*\[\s*[TC]\d+\])?"
    r"(?<=[>\]]) ?"                                  # and the space after a prefix
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_KTIME = re.compile(r"\[\s*(\d+\.\d+)\]")


def clean(line: str) -> str:
    """The kernel's own text of a console line: no console.log, time or caller prefix, no escapes."""
    if line.startswith("[+"):
        line = _CONSOLE_LOG.sub("", line, count=1)
    if "\x1b" in line:
        line = _ANSI.sub("", line)
    if not line.isprintable():  # the common line is, and skips the substitution
        line = _CONTROL.sub("", line.replace("\t", " "))
    m = _PREFIX.match(line) if line[:1] in "<[" else None
    if m:
        line = line[m.end():]
    return line.rstrip()


# --- frames --------------------------------------------------------------------------------------

_FUNC = r"([A-Za-z_.$][\w.$]*)"
# "f+0x1a/0x40", or a symbolised inlined frame "f mm/slub.c:123 [inline]" that has no offset.
# ARM prints "[<pc>] (f) from [<lr>] (g+0x10/0x20)": the frame is f.
_FRAME = re.compile(r"^\s*(?:\[<?[0-9a-f]+>?\]\s*)*(\?\s+)?\(?" + _FUNC
                    + r"(?:(?:\+0x[0-9a-f]+/0x[0-9a-f]+)?\) from |\+0x[0-9a-f]+/0x[0-9a-f]+| \S+:\d+ \[inline\])")
_RIP = re.compile(r"(?:RIP: \d{4}:|RIP: |(?:^|\s)IP: |EIP: (?:\d{4}:)?|PC is at |pc : |epc : |NIP \[[0-9a-f]+\] )(?:\[<[0-9a-f]+>\]\s*)*"
                  + _FUNC + r"\+0x")


def _rip(line: str) -> Optional[re.Match]:
    """The RIP/PC line's match; most lines have none of its words, and a plain search is cheap."""
    return _RIP.search(line) if ("IP" in line or "PC is" in line or "pc :" in line) else None


_AT = re.compile(r"\bat: (?:[0-9a-f]{8,}\s+)?(?:\[<[0-9a-f]+>\]\s*)*" + _FUNC + r"\+0x")
_TRACE_START = re.compile(r"^(?:Call Trace:|Call trace:|Backtrace:|stack backtrace:|Stack:)")
_SUFFIX = re.compile(r"(\.(?:isra|constprop|part|cold|llvm|lto_priv)(?:\.\d+)?)+$")
_SYSCALL = re.compile(r"^(?:__x64_sys_|__ia32_sys_|__arm64_sys_|__se_sys_|__do_sys_|__sys_|ksys_|SyS_|sys_|compat_SyS_|__se_compat_sys_|__do_compat_sys_|__x64_compat_sys_)")

# Frames that say where the report was printed or how a lock was taken, not who is guilty.
_SKIP = re.compile("^(?:" + "|".join([
    r"dump_stack\w*", r"__dump_stack", r"show_stack", r"show_regs\w*", r"sched_show_task", r"print_\w+",
    r"\w*printk\w*", r"panic", r"\w+_panic", r"assertfail", r"dump_backtrace",
    r"str(?:n?cpy|l?cat|n?cmp|n?len|r?chr|n?str|sep|scpy|lcpy|ncat|n?casecmp|n?dup|pbrk|c?spn)\w*",
    r"string\w*", r"mem(?:cmp|chr|scan|dup)\w*", r"\w*string", r"v?snprintf", r"sprintf", r"pointer",
    r"read_word_at_a_time", r"crc\d+\w*", r"\w*atomic_\w+", r"test_and_\w+", r"(?:__)?(?:set|clear|change)_bit",
    r"__wake_up\w*", r"console_unlock", r"register_lock_class", r"reacquire_held_locks",
    r"__should_\w+", r"should_\w+", r"__warn\w*", r"warn_\w+", r"report_bug", r"handle_bug", r"fixup_bug",
    r"do_error_trap", r"do_trap\w*", r"do_invalid_op", r"invalid_op", r"exc_\w+", r"asm_exc_\w+", r"\w*_trap",
    r"__\w*lock_acquire\w*", r"lock_acquire\w*", r"lock_release", r"lock_acquired", r"lock_contended",
    r"validate_chain", r"check_\w+", r"mark_lock\w*", r"mark_held_locks", r"lockdep_\w+", r"__lockdep_\w+",
    r"debug_check_\w+", r"debug_locks_off", r"lock_is_held\w*", r"__lock_is_held",
    r"_?_?raw_\w+", r"queued_\w*lock\w*", r"native_queued\w+",
    r"\w*spin_lock\w*", r"\w*spin_unlock\w*", r"\w*read_lock\w*", r"\w*write_lock\w*",
    r"__mutex_\w+", r"mutex_\w+", r"\w*rwsem\w*", r"down_\w+", r"down", r"up_\w+", r"up",
    r"__down\w*", r"__up\w*", r"(?:__)?percpu_(?:down|up)_\w+", r"percpu_rwsem_\w+", r"lock_sock\w*",
    r"release_sock", r"(?:__)?rt_mutex\w*",
    r"_*kasan\w*", r"check_memory_region\w*", r"__asan_\w+", r"asan_\w+", r"kmsan_\w+",
    r"__msan_\w+", r"(?:__)?ubsan_\w+", r"(?:__)?mem(?:cpy|set|move)\w*", r"copy_user\w*",
    r"\w*copy_(?:to|from)_user\w*",
    r"__kmalloc\w*", r"kmalloc\w*", r"kmem_cache_\w+", r"__kmem_cache_\w+", r"slab_\w+", r"__slab_\w+",
    r"___slab_\w+", r"kfree\w*", r"__kfree\w*", r"kzalloc\w*", r"kvmalloc\w*", r"kvfree\w*", r"__do_kmalloc\w*",
    r"krealloc\w*", r"kmemdup\w*", r"(?:__)?alloc_pages?\w*", r"should_fail\w*",
    r"refcount_\w+", r"__refcount_\w+", r"list_\w+", r"__list_\w+", r"debug_object\w*", r"__debug_object\w*",
    r"rcu_lockdep_\w+", r"lockdep_rcu_suspicious", r"___might_sleep", r"__might_sleep", r"might_sleep\w*",
    r"__might_fault", r"might_fault", r"__might_resched", r"__cant_sleep", r"schedule_debug", r"__schedule_bug",
    r"preempt_\w+", r"__preempt\w*", r"__local_bh_enable\w*", r"local_bh_enable",
    r"__schedule", r"schedule", r"schedule_\w+", r"io_schedule\w*", r"preempt_schedule\w*", r"__wait_\w+",
    r"wait_for_\w+", r"do_wait_\w+", r"__flush_work", r"flush_work", r"__cancel_work\w*", r"cancel_work\w*",
    r"\w+_lock_pair\w*", r"\w+_wait_urb", r"__x86_indirect_thunk_\w+", r"(?:__)?rb_\w+", r"\w+_is_static_object",
    r"osq_lock", r"__this_cpu_preempt_check", r"rcu_gp_kthread", r"rcu_is_watching", r"rcu_print_\w+",
    r"dump_cpu_task",
    r"rcu_\w*barrier", r"wait_event\w*", r"prepare_to_wait\w*", r"finish_wait", r"bit_wait\w*", r"out_of_line_wait\w*",
    r"__wait_on_bit\w*", r"wait_on_\w+", r"ldsem_\w+", r"kthread_stop", r"__switch_to\w*", r"context_switch",
    r"__lock_page\w*", r"folio_wait\w*", r"__folio_lock\w*",
    r"entry_SYSCALL\w*", r"do_syscall_\w+", r"do_fast_syscall\w*", r"syscall_\w+", r"ret_from_fork\w*",
    r"kthread", r"worker_thread", r"process_scheduled_works", r"smpboot_thread_fn",
    r"__do_softirq", r"do_softirq\w*", r"handle_softirqs", r"irq_exit\w*", r"__irq_exit\w*",
    r"\w*apic_timer_interrupt", r"asm_sysvec_\w+", r"sysvec_\w+", r"__sysvec_\w+", r"common_interrupt",
    r"el\d\w*", r"trace_hardirqs\w*", r"__sanitizer_\w+", r"write_comp_data", r"kcov_\w+",
    r"fault_in_\w*", r"handle_mm_fault", r"__handle_mm_fault", r"do_user_addr_fault", r"page_fault\w*",
    r"do_page_fault", r"__do_page_fault", r"no_context", r"__bad_area\w*", r"bad_area\w*", r"kernelmode_fixup\w*",
    r"oops_\w+", r"die\w*", r"__die\w*", r"do_general_protection", r"general_protection", r"search_exception_tables",
    r"nmi_\w+", r"watchdog\w*", r"arch_trigger\w*", r"trigger_\w+_backtrace", r"rcu_dump_\w+",
    r"rcu_sched_clock_irq", r"rcu_pending", r"rcu_check_\w+", r"update_process_times", r"tick_\w+", r"__hrtimer\w*",
    r"hrtimer_\w+", r"scheduler_tick", r"sched_tick", r"print_cpu_stall\w*", r"check_cpu_stall", r"rcu_core\w*",
    r"lru_add_drain\w*", r"flush_smp_call\w*", r"generic_smp_call\w*", r"smp_call_function\w*", r"on_each_cpu\w*",
    r"csd_lock_wait", r"irqentry_\w+", r"usercopy_\w+", r"__check_\w+",
    r"(?:__)?kobject_\w+", r"kref_put", r"debug_print_object", r"fput\w*", r"task_work_run",
    # Printing: a bad pointer handed to printk faults in the formatter, not in its caller.
    r"v?scnprintf", r"va_format", r"hex_string", r"hex_dump\w*", r"print_hex_dump\w*", r"vprintk\w*",
    r"_?_?dev_(?:v?printk\w*|info|warn|err|notice|dbg)", r"netdev_(?:info|warn|err|printk)",
    # Library helpers that trip over their caller's object: timers, work items, hash tables, xarrays,
    # id allocators, ref trackers, sysfs, inodes.
    r"lock_timer_base", r"(?:__)?try_to_del_timer\w*", r"(?:__)?(?:timer_delete|del_timer)\w*", r"sk_stop_timer\w*",
    r"__queue_work", r"queue_\w*work_on", r"__queue_delayed_work", r"insert_work",
    r"rhashtable_\w+", r"__rhashtable_\w+", r"xas_\w+", r"xa_\w+", r"__xa_\w+", r"find_lock_entries",
    r"truncate_inode_pages\w*", r"ida_\w+", r"idr_\w+", r"ref_tracker_\w+", r"sysfs_\w+", r"device_remove_\w+",
    r"device_add", r"get_device_parent", r"add_uevent_var", r"devres_release_all", r"iput", r"d?put", r"fast_dput",
    r"drop_nlink", r"mark_buffer_dirty", r"usb_kill_urb", r"__vmalloc\w*", r"vmalloc\w*", r"vzalloc\w*",
    r"(?:copy|_copy)_(?:to|from)_iter\w*", r"copy_page_(?:to|from)_iter\w*",
    r"stack_trace_\w+", r"arch_stack_walk",
    # Fault and BUG() plumbing, by architecture.
    r"do_tag_check_fault", r"do_mem_abort", r"__do_kernel_fault", r"panic_saved_regs", r"__rela_dyn_start",
    r"skb_(?:put|push|pull|over_panic|under_panic|panic)\w*", r"__phys_addr", r"folio_unlock", r"unlock_page",
    r"usb_start_wait_urb", r"usb_control_msg", r"usb_bulk_msg", r"(?:__)?wait_rcu_gp",
    r"proc_create\w*", r"device_release", r"device_unregister", r"device_del", r"rollback_registered\w*",
    r"unregister_netdevice\w*", r"unregister_netdev", r"__alloc_frozen_pages\w*", r"free_large_kmalloc",
    r"___kmalloc\w*", r"v?unmap\w*", r"__vunmap", r"(?:__)?vfree\w*", r"handle_overflow", r"do_bad_area",
    r"do_translation_fault", r"perf_trace_\w+", r"complete", r"do_read_cache_\w+", r"(?:__)?read_once\w*",
    r"__hwasan\w*", r"try_to_grab_pending", r"drain_workqueue", r"destroy_workqueue",
    # Rust's panic machinery (names as demangled).
    r"__rustc::\w+", r"core::panicking::[\w:]+", r"rust_helper_BUG",
]) + r")$")

# Names that stand for one thing whatever variant the stack shows, as syzbot's titles have them.
_CANONICAL = [(re.compile(p), name) for p, name in [
    (r"^(?:__)?synchronize_(?:rcu|sched|srcu)\w*$", "synchronize_rcu"),
    (r"^smp_call_function\w*$|^on_each_cpu\w*$", "smp_call_function"),
]]


# A stall loops somewhere inside a call, so its top frame is chance. It is named by an anchor: a frame
# that says what the looping code was doing. The rows are tried in order, most specific first; "callee"
# names the stall by the function the anchor called (the handler a dispatcher picked), "self" by the
# anchor itself, "ioctl" by the outermost driver ioctl handler, "syscall" by the syscall; a softirq
# comes last, as it can run under any of them.
_STALL_ANCHORS = [(re.compile(p), how) for p, how in [
    (r"^(?:smp_call_function|on_each_cpu)\w*$", "self"),
    (r"^(?:__netif_receive_skb\w*|rtnetlink_rcv_msg|nfnetlink_rcv_msg|genl_family_rcv_msg\w*|genl_rcv_msg|"
     r"sock_common_setsockopt|sock_common_getsockopt)$",
     "callee"),
    (r"^(?:mmap_region|__fput|task_work_run|__vfs_write|__vfs_read|new_sync_write|new_sync_read|__kernel_write|"
     r"do_iter_readv_writev|__do_fault|do_dentry_open|cpu_startup_entry|__run_hrtimer|__hrtimer_run_queues|"
     r"process_one_work)$",
     "callee"),
    (r"^\w+_ioctl$", "ioctl"),
    (r"^(?:ksys_|__x64_sys_|__ia32_sys_|__arm64_sys_|__se_sys_|__do_sys_|(?:compat_)?(?:SyS|sys)_)\w+$", "syscall"),
    (r"^__do_softirq$", "self"),
]]
_IRQ_ENTRY = re.compile(r"^(?:\w*apic_timer_interrupt\w*|asm_sysvec_\w+|sysvec_\w+|\w*common_interrupt|__irq_svc|"
                        r"el1h?_irq|gic_handle_irq)$")
_NOT_IOCTL = re.compile(r"^(?:do_vfs_ioctl|vfs_ioctl|ksys_ioctl|sock_ioctl|sock_do_ioctl|compat_\w*ioctl|"
                        r"__\w+_sys_ioctl|SyS_ioctl|sys_ioctl|blkdev_ioctl)$")


def stall_frame(functions: List[str]) -> Optional[str]:
    """The anchor-named frame of a stall's interrupted stack (top first); None when it has no anchor."""
    names = [_SUFFIX.sub("", f) for f in functions]
    for rx, how in _STALL_ANCHORS:
        for i, name in enumerate(names):
            if not rx.match(name):
                continue
            if how == "self":
                return frame_name(name)
            if how == "callee":
                callee = names[i - 1] if i else None
                if callee and not _SKIP.match(callee):
                    return callee
                # The callee is a helper: name the stall where the timer interrupt caught it, if shown.
                entry = max((j for j in range(i) if _IRQ_ENTRY.match(names[j])), default=None)
                if callee and entry is not None and entry + 1 < i:
                    return frame_name(names[entry + 1])
            if how == "ioctl":
                # The outermost driver ioctl handler, preferring a native one to its compat wrapper.
                handlers = [n for n in names if rx.match(n) and not _NOT_IOCTL.match(n)]
                if handlers:
                    return next((n for n in reversed(handlers) if "compat" not in n), handlers[-1])
            if how == "syscall":
                # syzbot writes "X" for ksys_X and the plain SyS_X/sys_X, "sys_X" for the arch wrappers.
                calls = [n for n in names if rx.match(n)]
                ksys = [n for n in calls if n.startswith("ksys_")]
                if ksys:
                    return ksys[-1].removeprefix("ksys_")
                outer = calls[-1]
                if re.match(r"(?:compat_)?(?:SyS|sys)_", outer):
                    return re.sub(r"^(?:compat_)?(?:SyS|sys)_", "", outer)
                return re.sub(r"^(?:__x64_|__ia32_|__arm64_|__se_|__do_)sys_", "sys_", outer)
    return None


class _RustV0:
    """Rust's v0 symbol mangling, the paths a kernel stack shows: crate roots, nested names, inherent and
    trait impls, back-references. Generic arguments are not handled: demangle() then returns None."""

    def __init__(self, text: str):
        self.s, self.i = text, 0

    def demangle(self) -> Optional[str]:
        try:
            return self.path()
        except (IndexError, ValueError):
            return None

    def _base62(self) -> int:
        if self.s[self.i] == "_":
            self.i += 1
            return 0
        j = self.s.index("_", self.i)
        digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
        n = 0
        for c in self.s[self.i:j]:
            n = n * 62 + digits.index(c)
        self.i = j + 1
        return n + 1

    def _disambiguator(self) -> None:
        if self.s[self.i] == "s":
            self.i += 1
            self._base62()

    def _ident(self) -> str:
        j = self.i
        while self.s[j].isdigit():
            j += 1
        n, self.i = int(self.s[self.i:j]), j
        if self.s[self.i] == "_":
            self.i += 1
        name = self.s[self.i:self.i + n]
        self.i += n
        return name

    def path(self) -> str:
        tag = self.s[self.i]
        self.i += 1
        if tag == "C":
            self._disambiguator()
            return self._ident()
        if tag == "N":
            self.i += 1  # namespace: value, type, closure... all print as ::
            parent = self.path()
            self._disambiguator()
            return f"{parent}::{self._ident()}"
        if tag in "MX":
            self._disambiguator()
            self.path()  # the impl's module: not printed
            type_ = self.path()
            return f"<{type_} as {self.path()}>" if tag == "X" else f"<{type_}>"
        if tag == "B":
            back = _RustV0(self.s)
            back.i = self._base62()
            return back.path()
        raise ValueError(tag)


def frame_name(func: str) -> str:
    if "." in func:
        func = _SUFFIX.sub("", func)
    if func.startswith("_R"):
        return _RustV0(func[2:]).demangle() or func
    # C++, as in a test module: _Z8fakeNameiii is fakeName
    if func.startswith("_Z") and (cm := re.match(r"_Z(\d+)", func)):
        func = func[cm.end():cm.end() + int(cm.group(1))] or func
    if func.startswith(("synchronize", "__synchronize", "smp_call", "on_each")):
        for rx, name in _CANONICAL:
            if rx.match(func):
                return name
    return _SYSCALL.sub("", func) or func


def good_frame(func: str) -> Optional[str]:
    name = _SUFFIX.sub("", func)
    if _SKIP.match(name):
        return None
    shown = frame_name(name)
    return None if shown != name and _SKIP.match(shown) else shown


# --- the format table ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Format:
    """One kind of report. TITLE may use {frame} and the header's named groups (its crash type follows from
    the title: title_type). FRAME_FROM lists where
    the guilty function is looked for, in order: "header" (the header's <func> group), "at" (lockdep's
    'at: F+0x' lines), "safe-at" (the stack under lockdep's "became ...-irq-safe at:"), "rip" (RIP/PC
    line), "trace" (call trace frames, or indented frames before one), "backtrace" (only frames under a
    "Call Trace:" line)."""
    name: str
    header: Pattern
    title: str
    frame_from: Tuple[str, ...] = ("rip", "trace")
    needs_frame: bool = True
    anywhere: bool = False  # the header may follow other text on its line ("watchdog: BUG: soft lockup")


def _f(name, header, title, frame_from=("rip", "trace"), needs_frame=True, anywhere=False) -> Format:
    return Format(name, re.compile(header), title, tuple(frame_from), needs_frame, anywhere)


_LOCKDEP_AT = ("at", "trace")
_LD = r"(?:\[ )?(?P<kind>WARNING|BUG|INFO): "

FORMATS: List[Format] = [
    # Lockdep: the header is a WARNING line, so these rows come before the generic WARNING. Old kernels
    # print "[ INFO: ... ]" or "[ BUG: ... ]"; the word before the colon stays in the title.
    _f("circular", _LD + r"possible circular locking dependency detected", "possible deadlock in {frame}", _LOCKDEP_AT),
    _f("recursive", _LD + r"possible recursive locking detected", "possible deadlock in {frame}", _LOCKDEP_AT),
    _f("irq-inversion", _LD + r"possible irq lock inversion dependency detected",
       "possible deadlock in {frame}", _LOCKDEP_AT),
    _f("irq-unsafe", _LD + r"(?:SOFT|HARD)IRQ-(?:safe|READ-safe) -> (?:SOFT|HARD)IRQ-unsafe lock order detected",
       "possible deadlock in {frame}", ("safe-at", "at", "trace")),
    _f("inconsistent", _LD + r"inconsistent lock state", "inconsistent lock state in {frame}",
       ("backtrace", "at")),
    _f("bad-unlock", _LD + r"bad unlock balance detected!", "{kind}: bad unlock balance in {frame}", ("at", "trace")),
    _f("held-freed", _LD + r"held lock freed!", "{kind}: held lock freed in {frame}", ("at", "trace")),
    # No stack: the report is the held-lock list, and ends after it.
    _f("held-return", _LD + r"lock held when returning to user space!",
       "{kind}: lock held when returning to user space in {frame}", ("at",), needs_frame=False),
    _f("still-held", _LD + r"(?:.*still has locks held!|.* is exiting with locks still held!)",
       "{kind}: still has locks held in {frame}", ("at", "trace")),
    _f("nested-lock", _LD + r"Nested lock was not taken", "{kind}: nested lock was not taken in {frame}", ("at", "trace")),
    _f("suspicious-rcu", _LD + r"suspicious RCU usage", "{kind}: suspicious RCU usage in {frame}", ("trace",)),
    # syzbot files an invalid wait context under lockdep's generic "locking bug".
    _f("invalid-wait", _LD + r"Invalid wait context", "WARNING: locking bug in {frame}", ("trace", "at")),
    _f("stack-regs", r"WARNING: kernel stack regs at\s+(?P<addr>\S+)", "WARNING: kernel stack regs has bad {bp}value",
       needs_frame=False),
    _f("non-static-key", r"INFO: trying to register non-static key",
       "INFO: trying to register non-static key in {frame}", ("trace",), anywhere=True),
    _f("lockdep-limit", r"BUG: (?P<what>MAX_\w+ too low!|lock held at task exit)", "BUG: {what}",
       needs_frame=False),
    # CONFIG_DEBUG_SPINLOCK's own checks (no lockdep needed).
    _f("spinlock", r"BUG: (?P<lock>spinlock|rwlock) (?P<what>recursion|lockup suspected|already unlocked|"
                   r"wrong owner|wrong CPU|bad magic|cpu recursion|trylock failure on UP)",
       "BUG: {lock} {what} in {frame}", ("trace",)),
    # Atomicity.
    _f("sleep-atomic", r"BUG: sleeping function called from invalid context",
       "BUG: sleeping function called from invalid context in {frame}", ("trace",)),
    _f("sched-atomic", r"BUG: scheduling while atomic", "BUG: scheduling while atomic in {frame}", ("trace",)),
    # Memory safety.
    _f("kasan", r"BUG: KASAN: (?P<kind>double-free or invalid-free|[\w-]+)(?: in (?P<func>[\w.$]+)"
                r"(?:\+0x[0-9a-f]+/0x[0-9a-f]+)?)?(?P<at> at addr [0-9a-f]+)?(?P<on> on address)?",
       "KASAN: {kind}{access} in {frame}{at}", ("header", "trace"), anywhere=True),
    _f("kmsan", r"BUG: KMSAN: (?P<kind>[\w-]+)(?: in (?P<func>[\w.$]+))?", "KMSAN: {kind} in {frame}",
       ("header", "trace")),
    _f("ubsan", r"UBSAN: (?P<kind>[\w-]+|Undefined behaviour) in ", "UBSAN: {kind} in {frame}", ("trace",),
       anywhere=True),
    # SLUB's object tracking on old kernels: who allocated or freed what a check then tripped over.
    _f("slub-track", r"INFO: (?P<what>Allocated|Freed) in (?P<func>[\w.$]+)\+0x[0-9a-f]+/0x[0-9a-f]+ "
                     r"(?P<rest>age=\d+ cpu=\d+ pid=\d+)",
       "INFO: {what} in {func} {rest}", needs_frame=False, anywhere=True),
    _f("gpf", r"(?:Oops: )?general protection fault(?!.* ip:)", "general protection fault in {frame}", anywhere=True),
    _f("null-deref", r"(?:BUG: u|U)nable to handle kernel NULL pointer dereference|BUG: kernel NULL pointer dereference",
       "BUG: unable to handle kernel NULL pointer dereference in {frame}", anywhere=True),
    _f("paging", r"(?:BUG: u|U)nable to handle (?:kernel )?(?:paging request|page fault for address)",
       "BUG: unable to handle kernel paging request in {frame}", anywhere=True),
    # (After "Bad or missing usercopy whitelist?" the WARNING that follows is the report.)
    _f("usercopy", r"(?:usercopy: )?(?<!whitelist\? )[Kk]ernel memory (?:exposure|overwrite) attempt detected",
       "BUG: bad usercopy in {frame}", ("trace",), anywhere=True),
    # Hangs.
    _f("soft-lockup", r"BUG: soft lockup", "BUG: soft lockup in {frame}", anywhere=True),
    _f("hard-lockup", r"Watchdog detected hard LOCKUP", "BUG: hard lockup in {frame}", anywhere=True),
    # (A task name with bytes that broke the line still starts a report.)
    _f("hung-task", r"INFO: task (?:.* blocked (?:in I/O wait )?for more than \d+ seconds|.*[^\x00-\x7f])",
       "INFO: task hung in {frame}",
       ("trace",)),
    _f("rcu-stall", r"INFO: rcu_(?:preempt|sched|bh) (?:self-)?detected (?:expedited )?stall|"
                    r"INFO: rcu_(?:preempt|sched|bh|tasks\w*) detected stalls?|rcu: INFO: rcu_\w+ (?:self-)?detected",
       "INFO: rcu detected stall in {frame}", anywhere=True),
    # Crashes and corruption.
    _f("kernel-bug", r"kernel BUG at (?P<src>[^\s:]+)", "{bug} in {frame}"),
    _f("list", r"list_(?:add|del) corruption", "BUG: corrupted list in {frame}", ("rip", "trace"), anywhere=True),
    _f("bad-page", r"BUG: Bad page (?:state|map)", "BUG: Bad page state in {frame}", ("trace",)),
    _f("warning", r"WARNING: (?:CPU: \d+ PID: -?\d+ at |at )?(?P<src>\S+:\d+)(?: (?P<func>[\w.$]+)\+0x[0-9a-f]+)?",
       "{warning} in {frame}", ("header", "rip", "trace")),
    _f("oops", r"Oops: |Internal error: Oops", "BUG: unable to handle kernel in {frame}"),
    # A Rust panic: the message is on the next line, the guilty frame the first one outside core::panicking.
    _f("rust-panic", r"rust_kernel: panicked at ", "{why} in {frame}", ("trace",), anywhere=True),
    _f("dentry", r"BUG: Dentry \S+ +still in use \(\d+\) \[(?P<what>unmount)", "BUG: Dentry still in use in {what}",
       needs_frame=False),
    # Android's trusty OS panics through the kernel's console.
    _f("trusty", r"trusty: panic \(caller .*?\): (?P<why>ASSERT FAILED|.*)", "trusty: {why}", needs_frame=False,
       anywhere=True),
    # "Fatal exception in interrupt" is one panic with "Fatal exception" to syzbot.
    _f("panic", r"Kernel panic - not syncing: (?P<why>Fatal exception|.*)", "kernel panic: {why}", needs_frame=False),
]

LOCKDEP_FORMATS = {f.name for f in FORMATS if f.header.pattern.startswith(_LD)} | {"non-static-key", "lockdep-limit"}

# A WARNING's title says which subsystem's check fired, by the file it fired in or a message it printed.
_BUG_KINDS = {"lib/list_debug.c": "BUG: corrupted list", "mm/usercopy.c": "BUG: bad usercopy"}

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

# A word every header has (test_every_format_has_a_keyword checks it): most lines have none, and a
# search for plain words is far cheaper than trying each format's pattern.
_ANY_HEADER = re.compile(r"WARNING|BUG|INFO|general protection|nable to handle|Kernel panic|Oops|UBSAN|"
                         r"KMSAN|list_(?:add|del) corruption|ernel memory|LOCKUP|trusty: panic|panicked at")

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
    (r"^(?:INFO: task hung|INFO: rcu detected stall|BUG: soft lockup|BUG: hard lockup)", "HANG"),
    (r"^(?:kernel BUG|BUG: bad usercopy|BUG: Bad page)", "BUG"),
    (r"^BUG: (?:spinlock|rwlock) ", "LOCKDEP"),
    (r"^(?:kernel panic|trusty: )", "DoS"),
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


_END = re.compile(r"^(?:---\[ end trace|---\[ end Kernel panic|Kernel Offset:|Rebooting in|==========+$)")
_REG = re.compile(r"^(?:Exception stack\(|[0-9a-f]{4}: |[RE]?(?:AX|BX|CX|DX|SI|DI|BP|SP|IP|FLAGS)|R\d+|CS|DS|ES|FS|GS|CR\d|DR\d|Code|RSP|RIP|"
                  r"Stack|EFLAGS|ORIG_RAX|PKRU|\s*<(?:/?TASK|/?IRQ|/?NMI|/?SOFTIRQ|EOI)>)")
MAX_LINES = 400
MAX_FRAMES = 64  # kept per report
_FOREIGN_DUMP = re.compile(r"^(?:FAULT_INJECTION: forcing a failure|\S+ cpuset=|\s*mems_allowed=)")
_HELD_LOCK = re.compile(r"^\s*#\d+: ")  # lockdep's " #0: ffff... (lock){....}, at: f+0x10/0x20"
_UNSEEN = object()  # a line not matched against _FRAME yet
MAX_FOREIGN = 3  # non-trace lines a trace may hold before its end is declared


# --- reports -------------------------------------------------------------------------------------


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


_CPU_PID = re.compile(r"CPU: (\d+) (?:UID: \d+ )?PID: (\d+) Comm: (.+?) (Not tainted|Tainted: [A-Z ]+?) +(\S+)")
_LOCK_NAME = re.compile(r"\(([^()]+?)\)\{[^}]*\}")


class Parser:
    """Feed lines; get reports. See the module docstring."""

    def __init__(self):
        self.line_no = 0
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
        return self._fmt is not None

    def feed(self, raw: str) -> List[Report]:
        self.line_no += 1
        if self._fmt is None and raw.isprintable() and not _ANY_HEADER.search(raw):
            return []  # the common console line: no report open, no header word
        line = clean(raw)
        self._fm = _UNSEEN  # _trace_over may match it against _FRAME; _take reuses that
        done: List[Report] = []
        header = self._header(line)
        if self._fmt is not None:
            if header is not None and not self._continues(header[0]):
                done.append(self._finish())
            elif line[:1] in "-KR=" and _END.match(line) and (self._trace_seen or not self._fmt.needs_frame):
                # (Consoles interleave: syzkaller's logs show the stack after the panic's last words.)
                self._take(line)
                done.append(self._finish())
                return done
            elif len(self._lines) >= MAX_LINES:
                done.append(self._finish())
            elif self._trace_over(line):
                # Another CPU's or task's lines may land inside a trace: the trace is over only when
                # no frame follows them.
                self._pending.append(line)
                if len(self._pending) <= MAX_FOREIGN:
                    return done
                done.append(self._finish())
            else:
                self._take(line)
                return done
        if header is not None:
            self._fmt, self._match = header
            self._lines, self._start = [line], self.line_no
            self._fms, self._fm = [_FRAME.match(line)], _UNSEEN
            self._last, self._pending = self.line_no, []
            self._in_trace = self._trace_seen = self._locks_seen = False
            tm = _KTIME.search(_CONSOLE_LOG.sub("", raw, count=1)[:40])
            self._time = float(tm.group(1)) if tm else None
        return done

    def flush(self) -> List[Report]:
        return [self._finish()] if self._fmt is not None else []

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
        for fmt in FORMATS:
            m = fmt.header.search(line)
            if m and (m.start() == 0 or fmt.anywhere):
                return fmt, m
        return None

    def _continues(self, fmt: Format) -> bool:
        """A header inside a report that belongs to it: the panic a report causes (panic_on_warn, oops),
        KASAN's own second header line, the BUG() a list or usercopy check ends in."""
        return (fmt.name in ("panic", "oops")
                or (self._fmt.name == "kasan" and fmt.name == "kasan" and len(self._lines) < 3)
                or (self._fmt.name in ("list", "usercopy", "rust-panic") and fmt.name == "kernel-bug"
                    and len(self._lines) < 12)
                # lockdep itself faulting on a bad lock before it printed a stack: one report
                or (self._fmt.name in LOCKDEP_FORMATS - {"suspicious-rcu"} and not self._trace_seen
                    and fmt.name in ("gpf", "kasan", "null-deref", "paging"))
                # a WARNING the stall dump itself trips over
                or (self._fmt.name == "rcu-stall" and fmt.name == "warning" and not self._trace_seen))

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

    def _finish(self) -> Report:
        fmt, m, lines, end_line = self._fmt, self._match, self._lines, self._last
        fms = self._fms  # each line's _FRAME match, made once
        self._fmt = None
        frames = list(itertools.islice(self._frame_dicts(lines, fms), MAX_FRAMES))
        frame = self._guilty(fmt, m, lines, fms)
        # As syzkaller has it: a report that should carry a stack and lost it is corrupted, whatever title.
        corrupted = fmt.needs_frame and (frame is None or not self._has_trace(lines, fms))
        # Fault injection and allocation failures print their own stack: when one comes before the
        # report's RIP, the two are mixed up.
        corrupted = corrupted or self._foreign_dump_first(lines, fms)
        fields = dict(m.groupdict(default=""))
        if fmt.name == "warning":
            where = f'{fields.get("src", "")} {_SUFFIX.sub("", fields.get("func", ""))}'
            fields["warning"] = self._warning_kind(where, lines)
            if fields["warning"] != "WARNING":
                # A subsystem's check: the function it fired in is the checker, its caller the culprit.
                checker = m.group("func")
                frame = next((name for f in self._after_rip(lines, fms, checker)
                              if f != checker and (name := good_frame(f)) is not None), frame)
            if corrupted:
                frame = None  # syzkaller names a WARNING without its stack "in corrupted"
            if m.group("func") and _SUFFIX.sub("", m.group("func")) == "usb_submit_urb":
                # A bad URB: the driver that submitted it is the news, usb_submit_urb the constant.
                caller = next((f["function"] for f in frames if f["function"] != "usb_submit_urb"
                               and good_frame(f["function"]) is not None), None) if not corrupted else None
                frame = f"{caller or 'corrupted'}/usb_submit_urb"
        if fmt.name in ("rcu-stall", "soft-lockup"):
            stacks = [s for s in self._stacks(lines, fms) if s]
            if stacks and _SUFFIX.sub("", stacks[0][0]) == "__schedule" and len(stacks[0]) > 1 \
                    and stacks[0][1] == "preempt_schedule_common":
                # The blocking task gave the CPU up, it is not looping: its stack says where it stopped, not why.
                frame, corrupted = None, True
            else:
                frame = next(filter(None, map(stall_frame, stacks)), frame)
        if fmt.name == "suspicious-rcu" and corrupted:
            frame = None  # its stack was mixed with another: no frame can be trusted
        if fmt.name == "rust-panic":
            fields["why"] = lines[1].strip() if len(lines) > 1 else "panicked"
        if fmt.name == "trusty":
            fields["why"] = "ASSERT FAILED:" if fields["why"] == "ASSERT FAILED" else f"panic: {fields['why']}"
        if fmt.name == "kernel-bug":  # a BUG() in a checker names the check, as the checker's own report would
            fields["bug"] = _BUG_KINDS.get(fields["src"].removeprefix("./"), "kernel BUG")
        if fmt.name == "ubsan" and fields["kind"] == "Undefined behaviour":
            fields["kind"] = "undefined-behaviour"
        if fmt.name == "stack-regs":
            fields["bp"] = "'bp' " if re.fullmatch(r"[0-9a-f]+", fields["addr"]) else ""
        if fmt.name == "kasan":
            if fields["kind"] == "double-free or invalid-free":
                fields["kind"] = "invalid-free"
            # Old kernels name the address in the header; syzbot keeps it only when the access is unknown.
            fields["access"] = self._kasan_access(lines)
            if fields["access"]:
                fields["at"] = ""
        if fmt.name == "kasan" and fields["on"]:
            title = f"KASAN: {fields['kind']}{fields['access']}"  # a wild access names no function
        elif frame is None and fmt.name in LOCKDEP_FORMATS and not m.group(0).startswith("["):
            title = m.group(0)  # a lockdep report without its frame keeps its own words (old "[ ...]" ones do not)
        else:
            title = fmt.title.format(frame=frame or "corrupted", **fields)
        report = Report(title=title, type=title_type(title), corrupted=corrupted, frame=frame, start_line=self._start,
                        end_line=end_line, text="\n".join(lines), format=fmt.name, frames=frames,
                        timestamp=self._time)
        cm = next(filter(None, (_CPU_PID.search(ln) for ln in lines if "PID: " in ln)), None)
        if cm:
            report.cpu, report.pid, report.comm = int(cm.group(1)), int(cm.group(2)), cm.group(3)
            report.taint, report.release = cm.group(4), cm.group(5)
        if fmt.name in LOCKDEP_FORMATS:
            report.locks = list(dict.fromkeys(lm.group(1) for ln in lines if "{" in ln
                                              for lm in _LOCK_NAME.finditer(ln)))
        return report

    @staticmethod
    def _frame_dicts(lines: List[str], fms: List) -> Iterator[Dict[str, str]]:
        for ln, fm in zip(lines, fms):
            if fm and not fm.group(1):
                yield {"function": frame_name(fm.group(2)), "raw": ln.strip()}

    @staticmethod
    def _stacks(lines: List[str], fms: List) -> List[List[str]]:
        """The report's stacks (one per trace or NMI backtrace), each top first with its RIP: a stall's
        anchor may be in the interrupted context or in the softirq the interrupt ran."""
        stacks: List[List[str]] = [[]]
        for ln, fm in zip(lines, fms):
            if (_TRACE_START.match(ln) or ln.startswith("NMI backtrace")) and stacks[-1]:
                stacks.append([])
            if fm and not fm.group(1):
                stacks[-1].append(fm.group(2))
            elif rm := _rip(ln):
                stacks[-1].append(rm.group(1))
        return stacks

    @staticmethod
    def _after_rip(lines: List[str], fms: List, func: Optional[str]) -> List[str]:
        """The trace frames of the stack FUNC's RIP line belongs to (all of them without such a line):
        another task's stack may come first."""
        start = next((i for i, ln in enumerate(lines) if func and (rm := _rip(ln)) and rm.group(1) == func), 0)
        return [fm.group(2) for fm in fms[start:] if fm and not fm.group(1)]

    @staticmethod
    def _foreign_dump_first(lines: List[str], fms: List) -> bool:
        for ln, fm in zip(lines, fms):
            if _rip(ln):
                return False
            if (fm and fm.group(2).startswith("should_fail")) or (
                    ("FAULT_INJECTION" in ln or "cpuset=" in ln or "mems_allowed=" in ln) and _FOREIGN_DUMP.match(ln)):
                return True
        return False

    @staticmethod
    def _has_trace(lines: List[str], fms: List) -> bool:
        in_trace = False
        for ln, fm in zip(lines, fms):
            if _TRACE_START.match(ln):
                in_trace = True
            elif in_trace and fm and not fm.group(1):
                return True
        return False

    @staticmethod
    def _warning_kind(src: str, lines: List[str]) -> str:
        text = "\n".join(lines[:6])
        for rx, title in _WARNING_KINDS:
            if rx.search(src) or rx.search(text):
                return title
        return "WARNING"

    @staticmethod
    def _kasan_access(lines: List[str]) -> str:
        for ln in lines[:4]:
            am = re.match(r"(Read|Write) (?:of size|at addr)", ln)
            if am:
                return " " + am.group(1)
        return ""

    @staticmethod
    def _guilty(fmt: Format, m: re.Match, lines: List[str], fms: List) -> Optional[str]:
        for source in fmt.frame_from:
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
            elif source == "safe-at":
                # The irq-safe lock's first use, from an interrupt: where the inversion bites.
                at = next((i for i, ln in enumerate(lines) if re.search(r"became \S+-irq-safe at:$", ln)), None)
                for fm in fms[at + 1:] if at is not None else []:
                    if not fm:
                        break
                    if not fm.group(1) and (name := good_frame(fm.group(2))):
                        return name
            elif source == "rip":  # the first one: later ones are other contexts (an interrupt's, a CPU's)
                rm = next(filter(None, map(_rip, lines)), None)
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


def parse_lines(lines: Iterable[str]) -> List[Report]:
    parser = Parser()
    reports: List[Report] = []
    for line in lines:
        reports += parser.feed(line)
    return reports + parser.flush()


def parse_file(path) -> List[Report]:
    with open(path, "rb") as f:
        return parse_lines(raw.decode("utf-8", "replace").rstrip("\r\n") for raw in f)
