/*
 * vm-fork-kill: after the KVM selftest hardware_disable_test. PROCS child processes each hold a VM
 * whose vCPUs run the tinyvm guest in a loop; the parent SIGKILLs a random child every few
 * milliseconds and starts another, for DURATION seconds, so VMs are torn down from the exit path
 * while CPUs come and go. Counts live in shared memory, since killed children cannot report.
 * Ends with one JSON line: vm_cycles, vcpu_runs, kills, errors, elapsed_s. Exits 1 on any error.
 *
 * usage: vm-fork-kill [-p PROCS] [-v VCPUS] [-d SECONDS]
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/counts.h"
#include "../lib/tinyvm.h"

struct shared {
	atomic_long vm_cycles, vcpu_runs, child_errors, emulation_failures;
};

static void child(struct shared *sh, int nvcpus)
{
	struct tinyvm vm;
	const char *step;
	int err = tinyvm_open(&vm, nvcpus, &step);

	if (err) {
		atomic_fetch_add(&sh->child_errors, 1);
		fprintf(stderr, "child: %s: %s\n", step, strerrorname_np(-err));
		_exit(1);
	}
	atomic_fetch_add(&sh->vm_cycles, 1);
	for (;;) {  /* until SIGKILL */
		for (int i = 0; i < vm.nvcpus; i++) {
			err = tinyvm_run(&vm, i, &step);
			if (err == TINYVM_EMULATION_FAILURE) {  /* see tinyvm.h; the next run starts afresh */
				atomic_fetch_add(&sh->emulation_failures, 1);
				continue;
			}
			if (err) {
				atomic_fetch_add(&sh->child_errors, 1);
				fprintf(stderr, "child: %s: %s\n", step, strerrorname_np(-err));
				_exit(1);
			}
			atomic_fetch_add(&sh->vcpu_runs, 1);
		}
	}
}

static pid_t spawn(struct shared *sh, int nvcpus)
{
	pid_t pid = fork();
	if (pid == 0)
		child(sh, nvcpus);
	if (pid < 0)
		counts_error(errno, "fork");
	return pid;
}

int main(int argc, char **argv)
{
	const char *env = getenv("LAB_DURATION");
	double duration = env ? atof(env) : 10, t0 = counts_now(), next_report = t0 + 5;
	int nprocs = 3, nvcpus = 1, opt, status;
	long kills = 0;
	pid_t pids[32];
	unsigned seed = getpid();

	while ((opt = getopt(argc, argv, "p:v:d:")) != -1) {
		switch (opt) {
		case 'p': nprocs = atoi(optarg); break;
		case 'v': nvcpus = atoi(optarg); break;
		case 'd': duration = atof(optarg); break;
		default:
			fprintf(stderr, "usage: %s [-p PROCS] [-v VCPUS] [-d SECONDS]\n", argv[0]);
			return 2;
		}
	}
	if (nprocs < 1 || nprocs > 32 || nvcpus < 1 || nvcpus > TINYVM_MAX_VCPUS) {
		fprintf(stderr, "vm-fork-kill: 1..32 processes and 1..%d vCPUs\n", TINYVM_MAX_VCPUS);
		return 2;
	}
	struct shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return perror("mmap"), 1;
	for (int i = 0; i < nprocs; i++)
		pids[i] = spawn(sh, nvcpus);
	while (counts_now() < t0 + duration) {
		usleep(5000 + rand_r(&seed) % 45000);
		int victim = rand_r(&seed) % nprocs;
		if (pids[victim] > 0) {
			kill(pids[victim], SIGKILL);
			waitpid(pids[victim], &status, 0);
			if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
				kills++;
		}
		pids[victim] = spawn(sh, nvcpus);
		if (counts_now() >= next_report) {
			printf("progress vm_cycles=%ld vcpu_runs=%ld kills=%ld\n", sh->vm_cycles, sh->vcpu_runs, kills);
			fflush(stdout);
			next_report += 5;
		}
	}
	for (int i = 0; i < nprocs; i++)
		if (pids[i] > 0) {
			kill(pids[i], SIGKILL);
			waitpid(pids[i], &status, 0);
		}
	for (long i = 0; i < sh->child_errors; i++)
		counts_error(EPROTO, "child");
	printf("{\"vm_cycles\": %ld, \"vcpu_runs\": %ld, \"kills\": %ld, \"emulation_failures\": %ld, \"errors\": ",
	       sh->vm_cycles, sh->vcpu_runs, kills, sh->emulation_failures);
	counts_print_errors(stdout);
	printf(", \"elapsed_s\": %.3f}\n", counts_now() - t0);
	return counts_total_errors() ? 1 : 0;
}
