"""Which frame of a stack is guilty, as syzbot's titles name it: frames that only print a report, take a
lock, or trip over their caller's object are skipped (SKIP); some names stand for one thing whatever
variant the stack shows (CANONICAL); a stall is named by an anchor frame, not by where it looped."""

import re
from typing import List, Optional

from . import demangle
from . import text

# Patterns bound by assignment, not by import: see parser.py.
_SUFFIX = text.SUFFIX
_SYSCALL = text.SYSCALL


# Frames that say where the report was printed or how a lock was taken, not who is guilty.
SKIP = re.compile("^(?:" + "|".join([
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
