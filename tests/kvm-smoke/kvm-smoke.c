/*
 * kvm-smoke: proves nested KVM works in the guest. For LAB_DURATION seconds (or argv[1]), create a
 * VM with one vCPU, run a four-instruction real-mode guest (an I/O exit, then HLT), check both exit
 * reasons, destroy the VM. Ends with one JSON line of counts; exits 1 on any error.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static const unsigned char code[] = {
	0xb0, 0x42,	/* mov al, 0x42 */
	0xe6, 0x10,	/* out 0x10, al */
	0xf4,		/* hlt */
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int fail(const char *what)
{
	printf("{\"error\": \"%s\", \"errno\": \"%s\"}\n", what, strerror(errno));
	return 1;
}

int main(int argc, char **argv)
{
	const char *env = getenv("LAB_DURATION");
	double duration = argc > 1 ? atof(argv[1]) : env ? atof(env) : 5, t0 = now();
	long cycles = 0, runs = 0;
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (kvm < 0)
		return fail("open /dev/kvm");
	if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
		return fail("KVM_GET_API_VERSION");
	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size < 0)
		return fail("KVM_GET_VCPU_MMAP_SIZE");

	do {
		int vm = ioctl(kvm, KVM_CREATE_VM, 0);
		if (vm < 0)
			return fail("KVM_CREATE_VM");
		void *mem = mmap(NULL, 0x2000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (mem == MAP_FAILED)
			return fail("mmap guest memory");
		memcpy((char *)mem + 0x1000, code, sizeof(code));
		struct kvm_userspace_memory_region region = {
			.slot = 0, .guest_phys_addr = 0, .memory_size = 0x2000, .userspace_addr = (unsigned long)mem,
		};
		if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
			return fail("KVM_SET_USER_MEMORY_REGION");
		int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
		if (vcpu < 0)
			return fail("KVM_CREATE_VCPU");
		struct kvm_run *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
		if (run == MAP_FAILED)
			return fail("mmap kvm_run");
		struct kvm_sregs sregs;
		if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
			return fail("KVM_GET_SREGS");
		sregs.cs.base = 0;
		sregs.cs.selector = 0;
		if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
			return fail("KVM_SET_SREGS");
		struct kvm_regs regs = { .rip = 0x1000, .rflags = 0x2 };
		if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
			return fail("KVM_SET_REGS");

		if (ioctl(vcpu, KVM_RUN, 0) < 0)
			return fail("KVM_RUN");
		runs++;
		if (run->exit_reason != KVM_EXIT_IO || run->io.port != 0x10 ||
		    *((unsigned char *)run + run->io.data_offset) != 0x42) {
			printf("{\"error\": \"unexpected exit %u (wanted I/O to 0x10)\"}\n", run->exit_reason);
			return 1;
		}
		if (ioctl(vcpu, KVM_RUN, 0) < 0)
			return fail("KVM_RUN");
		runs++;
		if (run->exit_reason != KVM_EXIT_HLT) {
			printf("{\"error\": \"unexpected exit %u (wanted HLT)\"}\n", run->exit_reason);
			return 1;
		}
		munmap(run, run_size);
		close(vcpu);
		close(vm);
		munmap(mem, 0x2000);
		cycles++;
	} while (now() - t0 < duration);

	printf("{\"vm_cycles\": %ld, \"vcpu_runs\": %ld, \"errors\": {}, \"elapsed_s\": %.3f}\n",
	       cycles, runs, now() - t0);
	return 0;
}
