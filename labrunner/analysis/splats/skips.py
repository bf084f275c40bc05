"""Which stack frames cannot be the guilty one, by category: the one table to read for it.

A report's title names the first frame of its stack that is not a helper. A helper is code that only
prints the report, takes a lock, waits, allocates, or does generic work on its caller's object: when
it trips, the bug is in whoever called it with a bad argument, a bad object or the wrong context. Each
row says which kind of helper it is and why its frames are skipped, so that a rule is added to the
category it belongs to and never for one log. syzkaller's pkg/report does the same with lists of its
own; these are written from the kernel's code, not copied.

Patterns match a whole function name, after the compiler's suffixes (.isra.N, .part.N, .cold) are gone.
"""

import re
from typing import List, NamedTuple


class Category(NamedTuple):
    name: str
    why: str
    patterns: List[str]


CATEGORIES = [
    Category("report printing", "they print the report, a stack or a formatted value: a bad pointer "
             "handed to printk faults in the formatter, not in the caller that passed it", [
                 r"dump_stack\w*", r"__dump_stack", r"show_stack", r"show_regs\w*", r"sched_show_task",
                 r"print_\w+", r"\w*printk\w*", r"dump_backtrace", r"dump_cpu_task", r"stack_trace_\w+",
                 r"arch_stack_walk", r"v?snprintf", r"sprintf", r"v?scnprintf", r"k?v?asprintf", r"va_format",
                 r"pointer", r"string\w*", r"\w*string", r"hex_string", r"hex_dump\w*",
                 r"_?_?dev_(?:v?printk\w*|info|warn|err|notice|dbg|alert|crit|emerg)",
                 r"netdev_(?:info|warn|err|printk)"]),
    # console_lock() itself is not here: it sleeps, and a sleep in atomic context is named by it.
    Category("console flushing", "unlocking the console flushes every console's backlog; a report "
             "raised there comes from whatever printed", [
                 r"console_unlock", r"console_flush\w*", r"console_emit\w*", r"__console_\w+"]),
    Category("panic, WARN and BUG plumbing", "the path from a WARN_ON, BUG_ON or panic to the report: "
             "the check that fired is in the caller", [
                 r"panic", r"\w+_panic", r"assertfail", r"__warn\w*", r"warn_\w+", r"report_bug",
                 r"handle_bug", r"fixup_bug", r"do_error_trap", r"do_trap\w*", r"do_invalid_op",
                 r"invalid_op", r"exc_\w+", r"asm_exc_\w+", r"\w*_trap", r"oops_\w+", r"die\w*", r"__die\w*",
                 r"do_general_protection", r"general_protection", r"search_exception_tables",
                 r"panic_saved_regs", r"__rela_dyn_start", r"handle_overflow",
                 # Rust's panic machinery (names as demangled).
                 r"__rustc::\w+", r"core::panicking::[\w:]+", r"rust_helper_BUG"]),
    Category("fault handling", "the page-fault and exception path a bad access goes through, by "
             "architecture: the access was made by the frame below it", [
                 r"fault_in_\w*", r"handle_mm_fault", r"__handle_mm_fault", r"do_user_addr_fault",
                 r"page_fault\w*", r"do_page_fault", r"__do_page_fault", r"no_context", r"__bad_area\w*",
                 r"bad_area\w*", r"kernelmode_fixup\w*", r"do_tag_check_fault", r"do_mem_abort",
                 r"__do_kernel_fault", r"do_bad_area", r"do_translation_fault", r"__phys_addr",
                 r"irqentry_\w+"]),
    Category("fault injection", "a forced failure prints its stack where it was injected, inside the "
             "allocator or the copy, not where the failure is mishandled", [
                 r"__should_\w+", r"should_\w+", r"should_fail\w*"]),
    Category("sanitizer runtimes", "KASAN, KMSAN, KCSAN, KFENCE, UBSAN and KCOV hooks run inside the "
             "instrumented function and report on its behalf", [
                 r"_*kasan\w*", r"check_memory_region\w*", r"__asan_\w+", r"asan_\w+", r"kmsan_\w+",
                 r"__msan_\w+", r"_*kcsan_\w+", r"__tsan_\w+", r"_*kfence_\w+", r"(?:__)?ubsan_\w+",
                 r"__hwasan\w*", r"__sanitizer_\w+", r"write_comp_data", r"kcov_\w+",
                 r"read_word_at_a_time"]),
    Category("fortify checks", "FORTIFY_SOURCE reports an overflow from inside the checked string or "
             "memory function; the caller passed the bad size", [
                 r"_*fortify_\w+"]),
    Category("lockdep", "the lock validator's own work: it reports a locking problem of the caller", [
        r"register_lock_class", r"reacquire_held_locks", r"validate_chain", r"check_\w+", r"mark_lock\w*",
        r"mark_held_locks", r"lockdep_\w+", r"__lockdep_\w+", r"debug_check_\w+", r"debug_locks_off",
        r"lock_is_held\w*", r"__lock_is_held", r"__\w*lock_acquire\w*", r"lock_acquire\w*", r"lock_release",
        r"lock_acquired", r"lock_contended", r"rcu_lockdep_\w+", r"lockdep_rcu_suspicious"]),
    Category("lock internals", "spinlocks, mutexes, rwsems, rt-mutexes and their slow paths: a lock "
             "bug or a stall inside them is the caller's use of the lock", [
                 r"_?_?raw_\w+", r"queued_\w*lock\w*", r"native_queued\w+", r"\w*spin_lock\w*",
                 r"\w*spin_unlock\w*", r"\w*read_lock\w*", r"\w*write_lock\w*", r"__mutex_\w+",
                 r"mutex_\w+", r"\w*ww_mutex\w*", r"\w*rwsem\w*", r"rwbase_\w+", r"down_\w+", r"down",
                 r"up_\w+", r"up", r"__down\w*", r"__up\w*", r"(?:__)?percpu_(?:down|up)_\w+",
                 r"percpu_rwsem_\w+", r"lock_sock\w*", r"release_sock", r"(?:__)?rt_mutex\w*", r"osq_lock",
                 r"\w+_lock_pair\w*", r"ldsem_\w+"]),
    Category("seqlock assertions", "a seqcount writer asserts that its lock is held and readers retry; "
             "the caller is the one that did not take the lock", [
                 r"\w*seqcount\w*", r"\w*seqlock\w*", r"read_seq(?:begin|retry)\w*"]),
    Category("sleep and preemption checks", "might_sleep(), cant_sleep() and the preemption checks "
             "report the context their caller is in", [
                 r"___might_sleep", r"__might_sleep", r"might_sleep\w*", r"__might_fault", r"might_fault",
                 r"__might_resched", r"__cant_sleep", r"schedule_debug", r"__schedule_bug", r"preempt_\w+",
                 r"__preempt\w*", r"__local_bh_enable\w*", r"local_bh_enable", r"__this_cpu_preempt_check"]),
    Category("scheduler and waiting", "where a task sleeps or switches: a hung or sleeping task is "
             "named by what it waits for, not by the wait", [
                 r"__schedule", r"schedule", r"schedule_\w+", r"io_schedule\w*", r"preempt_schedule\w*",
                 r"__wait_\w+", r"wait_for_\w+", r"do_wait_\w+", r"wait_event\w*", r"prepare_to_wait\w*",
                 r"finish_wait", r"bit_wait\w*", r"out_of_line_wait\w*", r"__wait_on_bit\w*", r"wait_on_\w+",
                 r"__switch_to\w*", r"context_switch", r"complete", r"__wake_up\w*", r"kthread_stop",
                 r"__lock_page\w*", r"folio_wait\w*", r"__folio_lock\w*", r"folio_unlock", r"unlock_page"]),
    Category("RCU and SRCU internals", "grace-period machinery and its waits: a stall or a hang seen "
             "there is the reader or the waiter's", [
                 r"rcu_gp_kthread", r"rcu_is_watching", r"rcu_print_\w+", r"rcu_\w*barrier", r"rcu_dump_\w+",
                 r"rcu_sched_clock_irq", r"rcu_pending", r"rcu_check_\w+", r"rcu_core\w*",
                 r"(?:__)?wait_rcu_gp", r"_*srcu_\w+", r"process_srcu"]),
    Category("timers", "arming, deleting and running timers and hrtimers: a bad timer is its owner's", [
        r"lock_timer_base", r"(?:__)?try_to_del_timer\w*", r"(?:__)?(?:timer_delete|del_timer)\w*",
        r"sk_stop_timer\w*", r"(?:__)?mod_timer\w*", r"add_timer\w*", r"tick_\w+", r"__hrtimer\w*",
        r"hrtimer_\w+", r"update_process_times", r"scheduler_tick", r"sched_tick"]),
    Category("workqueues", "queueing, flushing and cancelling work: the work item and its owner are the "
             "caller's", [
                 r"__queue_work", r"queue_\w*work_on", r"__queue_delayed_work", r"insert_work",
                 r"__flush_work", r"flush_work", r"(?:__)?flush_workqueue", r"__cancel_work\w*",
                 r"cancel_work\w*", r"cancel_delayed_work\w*", r"mod_delayed_work\w*",
                 r"try_to_grab_pending", r"drain_workqueue", r"destroy_workqueue"]),
    Category("task entry and kernel threads", "how a task got into the kernel: syscall entry, fork "
             "return, the kthread and worker loops, return-to-user work", [
                 r"entry_SYSCALL\w*", r"do_syscall_\w+", r"do_fast_syscall\w*", r"syscall_\w+",
                 r"ret_from_fork\w*", r"kthread", r"worker_thread", r"process_scheduled_works",
                 r"smpboot_thread_fn", r"el\d\w*", r"task_work_run", r"fput\w*"]),
    Category("interrupts, softirqs and cross-CPU calls", "entry from an interrupt, the softirq loop, "
             "the NMI and watchdog that print a stall, and IPIs: they run the handler that is guilty", [
                 r"__do_softirq", r"do_softirq\w*", r"handle_softirqs", r"irq_exit\w*", r"__irq_exit\w*",
                 r"\w*apic_timer_interrupt", r"asm_sysvec_\w+", r"sysvec_\w+", r"__sysvec_\w+",
                 r"common_interrupt", r"trace_hardirqs\w*", r"nmi_\w+", r"watchdog\w*", r"arch_trigger\w*",
                 r"trigger_\w+_backtrace", r"print_cpu_stall\w*", r"check_cpu_stall", r"flush_smp_call\w*",
                 r"generic_smp_call\w*", r"smp_call_function\w*", r"on_each_cpu\w*", r"csd_lock_wait",
                 r"lru_add_drain\w*"]),
    Category("string, memory, copy and CRC helpers", "library routines that walk the buffer their "
             "caller gave them", [
                 r"str(?:n?cpy|l?cat|n?cmp|n?len|r?chr|n?str|sep|scpy|lcpy|ncat|n?casecmp|n?dup|pbrk|c?spn)\w*",
                 r"mem(?:cmp|chr|scan|dup)\w*", r"(?:__)?mem(?:cpy|set|move)\w*", r"copy_user\w*",
                 r"\w*copy_(?:to|from)_user\w*", r"usercopy_\w+", r"__check_\w+",
                 r"(?:copy|_copy)_(?:to|from)_iter\w*", r"copy_page_(?:to|from)_iter\w*", r"_*crc\w*",
                 r"(?:__)?read_once\w*"]),
    Category("atomics and bit operations", "instrumented atomics and bitops touch their caller's word", [
        r"\w*atomic_\w+", r"test_and_\w+", r"(?:__)?(?:set|clear|change)_bit"]),
    Category("memory allocation and freeing", "the slab, page and vmalloc allocators: a bad free or a "
             "corrupted object is the caller's, and dropping the last page reference frees the page", [
                 r"__kmalloc\w*", r"kmalloc\w*", r"___kmalloc\w*", r"__do_kmalloc\w*", r"kmem_cache_\w+",
                 r"__kmem_cache_\w+", r"slab_\w+", r"__slab_\w+", r"___slab_\w+", r"kfree\w*", r"__kfree\w*",
                 r"kzalloc\w*", r"kvmalloc\w*", r"kvfree\w*", r"krealloc\w*", r"kmemdup\w*",
                 r"free_large_kmalloc", r"(?:__)?alloc_pages?\w*", r"__alloc_frozen_pages\w*",
                 r"(?:__)?free_(?:unref_)?pages?\w*", r"free_the_page", r"__free_one_page", r"free_pcp\w*",
                 r"(?:__)?folio_put\w*", r"(?:__)?put_page\w*", r"release_pages",
                 r"__vmalloc\w*", r"vmalloc\w*", r"vzalloc\w*", r"(?:__)?vfree\w*", r"__vunmap", r"v?unmap\w*"]),
    Category("reference counts, lists and trees", "the generic containers check their caller's object", [
        r"refcount_\w+", r"__refcount_\w+", r"kref_put", r"list_\w+", r"__list_\w+", r"(?:__)?rb_\w+"]),
    Category("debug objects", "debugobjects reports a timer or work item its owner misused", [
        r"debug_object\w*", r"__debug_object\w*", r"\w+_is_static_object", r"debug_print_object"]),
    Category("library data structures", "hash tables, xarrays, id allocators, ref trackers and page "
             "cache walks operate on their caller's structure", [
                 r"rhashtable_\w+", r"__rhashtable_\w+", r"xas_\w+", r"xa_\w+", r"__xa_\w+",
                 r"find_lock_entries", r"truncate_inode_pages\w*", r"ida_\w+", r"idr_\w+",
                 r"ref_tracker_\w+"]),
    Category("driver core and sysfs", "adding, removing and releasing devices, kobjects and sysfs "
             "files: the driver that registered them is guilty", [
                 r"(?:__)?kobject_\w+", r"sysfs_\w+", r"device_remove_\w+", r"device_add", r"device_del",
                 r"device_destroy", r"device_release", r"device_unregister", r"device_for_each_child\w*",
                 r"bus_remove_device", r"(?:__)?device_release_driver\w*", r"get_device_parent",
                 r"add_uevent_var", r"devres_release_all", r"proc_create\w*"]),
    Category("USB teardown and synchronous transfers", "killing, poisoning and waiting for URBs and the "
             "host controller's submit path: the driver that owns the URB is guilty", [
                 r"usb_kill_urb", r"usb_kill_anchored_urbs", r"usb_poison_urb", r"usb_start_wait_urb",
                 r"usb_control_msg", r"usb_bulk_msg", r"usb_interrupt_msg", r"\w+_wait_urb",
                 r"usb_hcd_submit_urb"]),
    Category("network device teardown and skb checks", "unregistering a netdev and the skb bounds "
             "checks report on the driver or protocol that passed them", [
                 r"rollback_registered\w*", r"unregister_netdevice\w*", r"unregister_netdev",
                 r"skb_(?:put|push|pull|over_panic|under_panic|panic)\w*"]),
    Category("VFS reference drops", "dropping the last reference to an inode, dentry or file runs "
             "teardown on the caller's object", [
                 r"iput", r"d?put", r"fast_dput", r"drop_nlink", r"mark_buffer_dirty", r"do_read_cache_\w+"]),
    Category("tracing and retpolines", "trace event glue and indirect-call thunks only pass control on", [
        r"perf_trace_\w+", r"__x86_indirect_thunk_\w+"]),
]

SKIP = re.compile("^(?:" + "|".join(p for c in CATEGORIES for p in c.patterns) + ")$")


def category(func: str) -> str:
    """The name of the first category whose patterns skip FUNC, or "" (for tests and for reading)."""
    return next((c.name for c in CATEGORIES if any(re.fullmatch(p, func) for p in c.patterns)), "")
