"""Which frame of a stack is guilty, as syzbot's titles name it: helpers are skipped (the categories
are in skips.py); some names stand for one thing whatever variant the stack shows (CANONICAL); a
stall is named by an anchor frame, not by where it looped."""

import re
from typing import List, Optional

from . import demangle, skips, text

# Patterns bound by assignment, not by import: see parser.py.
_SUFFIX = text.SUFFIX
_SYSCALL = text.SYSCALL


SKIP = skips.SKIP  # which frames cannot be guilty, by category: skips.CATEGORIES

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
    # A netlink dump is named by its dump function, before netlink's dispatchers that started it.
    (r"^(?:genl_dumpit|rtnl_dumpit|netlink_dump)$", "callee"),
    (r"^(?:__netif_receive_skb\w*|rtnetlink_rcv_msg|nfnetlink_rcv_msg|genl_family_rcv_msg\w*|genl_rcv_msg|"
     r"sock_common_setsockopt|sock_common_getsockopt)$",
     "callee"),
    (r"^(?:mmap_region|__fput|task_work_run|__vfs_write|__vfs_read|new_sync_write|new_sync_read|__kernel_write|"
     r"do_iter_readv_writev|__do_fault|do_dentry_open|cpu_startup_entry|__run_hrtimer|__hrtimer_run_queues|"
     r"process_one_work)$",
     "callee"),
    # A socket call is named by the protocol's own sendmsg/recvmsg (the innermost dispatcher of a row
    # wins: inet_sendmsg's callee over sock_sendmsg's).
    (r"^(?:inet6?_sendmsg|inet6?_recvmsg|sock_sendmsg_nosec|__sock_sendmsg|"
     r"sock_sendmsg|sock_recvmsg_nosec|sock_recvmsg)$", "callee"),
    (r"^\w+_ioctl$", "ioctl"),
    (r"^(?:ksys_|__x64_sys_|__ia32_sys_|__arm64_sys_|__se_sys_|__do_sys_|(?:compat_)?(?:SyS|sys)_)\w+$", "syscall"),
    # With no syscall below (ksoftirqd, an idle CPU), a timer's or a tasklet's handler; io_uring's SQ
    # thread is a loop of its own.
    (r"^(?:call_timer_fn|tasklet_action_common|tasklet_(?:hi_)?action)$", "callee"),
    (r"^io_sq_thread$", "self"),
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
                if callee and not SKIP.match(callee):
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


def frame_name(func: str) -> str:
    """FUNC as a title prints it: no compiler suffix, demangled, canonical, no syscall prefix."""
    if "." in func:
        func = _SUFFIX.sub("", func)
    if func.startswith("_R"):
        return demangle.rust(func) or func
    if func.startswith("_Z"):
        func = demangle.cpp(func)
    if func.startswith(("synchronize", "__synchronize", "smp_call", "on_each")):
        for rx, name in _CANONICAL:
            if rx.match(func):
                return name
    return _SYSCALL.sub("", func) or func


def good_frame(func: str) -> Optional[str]:
    """FUNC's title name, or None when the rules say it cannot be guilty."""
    name = _SUFFIX.sub("", func)
    if SKIP.match(name):
        return None
    shown = frame_name(name)
    return None if shown != name and SKIP.match(shown) else shown
