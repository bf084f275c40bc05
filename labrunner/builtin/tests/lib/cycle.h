/*
 * cycle.h: one VM cycle, as the churn workloads count it: a tinyvm of NVCPUS vCPUs opened, each vCPU
 * run through the guest code, the VM closed. A failed step is counted by errno (counts.h), a KVM
 * emulation failure apart (see tinyvm.h); a cycle counts only when the VM could be made.
 */
#ifndef CYCLE_H
#define CYCLE_H

#include "counts.h"
#include "tinyvm.h"

struct cycle_counts {
	atomic_long vm_cycles, vcpu_runs, emulation_failures;
};

static inline void vm_cycle(int nvcpus, struct cycle_counts *c)
{
	struct tinyvm vm;
	const char *step;
	int err = tinyvm_open(&vm, nvcpus, &step);

	if (err) {
		counts_error(err, step);
		return;
	}
	for (int i = 0; i < vm.nvcpus; i++) {
		err = tinyvm_run(&vm, i, &step);
		if (err == TINYVM_EMULATION_FAILURE)
			atomic_fetch_add(&c->emulation_failures, 1);
		else if (err)
			counts_error(err, step);
		else
			atomic_fetch_add(&c->vcpu_runs, 1);
	}
	tinyvm_close(&vm);
	atomic_fetch_add(&c->vm_cycles, 1);
}

#endif
