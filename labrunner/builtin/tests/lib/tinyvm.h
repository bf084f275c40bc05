/*
 * tinyvm.h: the smallest useful KVM guest, shared by the lab's workloads.
 * One VM, a page of memory, N vCPUs in real mode running "mov al,0x42; out 0x10,al; hlt":
 * each run must end in an I/O exit to port 0x10 carrying 0x42, then a HLT exit.
 * Every function returns 0 or -errno and names the failing step in *step; tinyvm_run may also return
 * TINYVM_EMULATION_FAILURE (see there).
 */
#ifndef TINYVM_H
#define TINYVM_H

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define TINYVM_MAX_VCPUS 16
#define TINYVM_MEM 0x2000
#define TINYVM_CODE 0x1000
/*
 * KVM reported an emulation failure (KVM_EXIT_INTERNAL_ERROR, KVM_INTERNAL_ERROR_EMULATION). Under
 * QEMU's TCG, nested SVM gives about one in 400,000 vCPU runs of this guest, with or without CPU
 * hotplug: noise of the emulated host, counted apart from errors by the workloads.
 */
#define TINYVM_EMULATION_FAILURE 1

struct tinyvm {
	int kvm, vm, nvcpus, run_size;
	int vcpu[TINYVM_MAX_VCPUS];
	struct kvm_run *run[TINYVM_MAX_VCPUS];
	void *mem;
};

static const unsigned char tinyvm_code[] = { 0xb0, 0x42, 0xe6, 0x10, 0xf4 };

static inline void tinyvm_close(struct tinyvm *t)
{
	for (int i = 0; i < t->nvcpus; i++) {
		if (t->run[i])
			munmap(t->run[i], t->run_size);
		if (t->vcpu[i] >= 0)
			close(t->vcpu[i]);
	}
	if (t->vm >= 0)
		close(t->vm);
	if (t->kvm >= 0)
		close(t->kvm);
	if (t->mem)
		munmap(t->mem, TINYVM_MEM);
	memset(t, 0, sizeof(*t));
	t->kvm = t->vm = -1;
}

static inline int tinyvm_fail(struct tinyvm *t, const char **step, const char *what)
{
	int err = errno ? errno : EIO;
	*step = what;
	tinyvm_close(t);
	return -err;
}

/* Steps 1-4: open /dev/kvm, create the VM, add its memory, create NVCPUS vCPUs. */
static inline int tinyvm_open(struct tinyvm *t, int nvcpus, const char **step)
{
	memset(t, 0, sizeof(*t));
	t->kvm = t->vm = -1;
	for (int i = 0; i < TINYVM_MAX_VCPUS; i++)
		t->vcpu[i] = -1;
	t->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (t->kvm < 0)
		return tinyvm_fail(t, step, "open /dev/kvm");
	t->run_size = ioctl(t->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (t->run_size < 0)
		return tinyvm_fail(t, step, "KVM_GET_VCPU_MMAP_SIZE");
	t->vm = ioctl(t->kvm, KVM_CREATE_VM, 0);
	if (t->vm < 0)
		return tinyvm_fail(t, step, "KVM_CREATE_VM");
	t->mem = mmap(NULL, TINYVM_MEM, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (t->mem == MAP_FAILED) {
		t->mem = NULL;
		return tinyvm_fail(t, step, "mmap guest memory");
	}
	memcpy((char *)t->mem + TINYVM_CODE, tinyvm_code, sizeof(tinyvm_code));
	struct kvm_userspace_memory_region region = {
		.slot = 0, .memory_size = TINYVM_MEM, .userspace_addr = (unsigned long)t->mem,
	};
	if (ioctl(t->vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return tinyvm_fail(t, step, "KVM_SET_USER_MEMORY_REGION");
	for (t->nvcpus = 0; t->nvcpus < nvcpus && t->nvcpus < TINYVM_MAX_VCPUS; t->nvcpus++) {
		int i = t->nvcpus;
		t->vcpu[i] = ioctl(t->vm, KVM_CREATE_VCPU, i);
		if (t->vcpu[i] < 0)
			return tinyvm_fail(t, step, "KVM_CREATE_VCPU");
		t->run[i] = mmap(NULL, t->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, t->vcpu[i], 0);
		if (t->run[i] == MAP_FAILED) {
			t->run[i] = NULL;
			return tinyvm_fail(t, step, "mmap kvm_run");
		}
	}
	return 0;
}

/* An exit other than the one the guest code makes: say which, with what KVM reported about it. */
static inline int tinyvm_unexpected(struct kvm_run *run, const char **step, const char *wanted)
{
	static __thread char why[160];

	if (run->exit_reason == KVM_EXIT_INTERNAL_ERROR && run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION)
		return *step = "emulation failure", TINYVM_EMULATION_FAILURE;
	if (run->exit_reason == KVM_EXIT_INTERNAL_ERROR)
		snprintf(why, sizeof(why), "exit reason %u (internal error, suberror %u), wanted %s",
			 run->exit_reason, run->internal.suberror, wanted);
	else if (run->exit_reason == KVM_EXIT_FAIL_ENTRY)
		snprintf(why, sizeof(why), "exit reason %u (failed entry, reason 0x%llx), wanted %s",
			 run->exit_reason, (unsigned long long)run->fail_entry.hardware_entry_failure_reason, wanted);
	else
		snprintf(why, sizeof(why), "exit reason %u, wanted %s", run->exit_reason, wanted);
	*step = why;
	return -EPROTO;
}

/* Step 5: run vCPU I through the guest code; 0 when both exits are the expected ones. */
static inline int tinyvm_run(struct tinyvm *t, int i, const char **step)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs = { .rip = TINYVM_CODE, .rflags = 0x2 };
	struct kvm_run *run = t->run[i];

	if (ioctl(t->vcpu[i], KVM_GET_SREGS, &sregs) < 0)
		return *step = "KVM_GET_SREGS", -errno;
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(t->vcpu[i], KVM_SET_SREGS, &sregs) < 0)
		return *step = "KVM_SET_SREGS", -errno;
	if (ioctl(t->vcpu[i], KVM_SET_REGS, &regs) < 0)
		return *step = "KVM_SET_REGS", -errno;
	if (ioctl(t->vcpu[i], KVM_RUN, 0) < 0)
		return *step = "KVM_RUN", -errno;
	if (run->exit_reason != KVM_EXIT_IO || run->io.port != 0x10 ||
	    *((unsigned char *)run + run->io.data_offset) != 0x42)
		return tinyvm_unexpected(run, step, "I/O to port 0x10");
	if (ioctl(t->vcpu[i], KVM_RUN, 0) < 0)
		return *step = "KVM_RUN", -errno;
	if (run->exit_reason != KVM_EXIT_HLT)
		return tinyvm_unexpected(run, step, "HLT");
	return 0;
}

#endif
