/*
 * vm-churn: THREADS threads create, run and destroy tiny VMs for DURATION seconds, each moving to a
 * random online CPU before every VM, while the lab plugs, unplugs, onlines and offlines CPUs around them.
 * Every VM's vCPUs run the tinyvm guest and must exit as expected. A CPU that disappears under
 * sched_setaffinity is expected and not an error; KVM emulation failures are counted apart (see
 * tinyvm.h). Prints a progress line every few seconds and ends with one JSON line: vm_cycles,
 * vcpu_runs, errors (by errno name), elapsed_s. Exits 1 on any error.
 *
 * usage: vm-churn [-t THREADS] [-v VCPUS] [-d SECONDS]   (SECONDS defaults to $LAB_DURATION, else 10)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "../lib/cpus.h"
#include "../lib/cycle.h"

static double deadline;
static int vcpus_per_vm = 2;
static struct cycle_counts counts;
static atomic_long migrations, vanished_cpus;

static void migrate(unsigned *seed)
{
	int cpu = cpus_pick("online", seed, 0);
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu < 0 ? 0 : cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) == 0)
		atomic_fetch_add(&migrations, 1);
	else if (errno == EINVAL)  /* offline or unplugged just now: expected */
		atomic_fetch_add(&vanished_cpus, 1);
	else
		counts_error(errno, "sched_setaffinity");
}

static void *churn(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u ^ (unsigned)getpid();

	while (counts_now() < deadline) {
		migrate(&seed);
		vm_cycle(vcpus_per_vm, &counts);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *env = getenv("LAB_DURATION");
	double duration = env ? atof(env) : 10, t0 = counts_now(), next_report;
	int nthreads = 2, opt;
	pthread_t threads[64];

	while ((opt = getopt(argc, argv, "t:v:d:")) != -1) {
		switch (opt) {
		case 't': nthreads = atoi(optarg); break;
		case 'v': vcpus_per_vm = atoi(optarg); break;
		case 'd': duration = atof(optarg); break;
		default:
			fprintf(stderr, "usage: %s [-t THREADS] [-v VCPUS] [-d SECONDS]\n", argv[0]);
			return 2;
		}
	}
	if (nthreads < 1 || nthreads > 64 || vcpus_per_vm < 1 || vcpus_per_vm > TINYVM_MAX_VCPUS) {
		fprintf(stderr, "vm-churn: 1..64 threads and 1..%d vCPUs per VM\n", TINYVM_MAX_VCPUS);
		return 2;
	}
	deadline = t0 + duration;
	for (int i = 0; i < nthreads; i++)
		if (pthread_create(&threads[i], NULL, churn, (void *)(uintptr_t)(i + 1)))
			return fprintf(stderr, "vm-churn: pthread_create failed\n"), 1;
	for (next_report = t0 + 5; counts_now() < deadline; usleep(200000)) {
		if (counts_now() >= next_report) {
			printf("progress vm_cycles=%ld vcpu_runs=%ld errors=%ld\n", counts.vm_cycles, counts.vcpu_runs,
			       counts_total_errors());
			fflush(stdout);
			next_report += 5;
		}
	}
	for (int i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	printf("{\"vm_cycles\": %ld, \"vcpu_runs\": %ld, \"migrations\": %ld, \"vanished_cpus\": %ld, "
	       "\"emulation_failures\": %ld, \"errors\": ", counts.vm_cycles, counts.vcpu_runs, migrations,
	       vanished_cpus, counts.emulation_failures);
	counts_print_errors(stdout);
	printf(", \"elapsed_s\": %.3f}\n", counts_now() - t0);
	return counts_total_errors() ? 1 : 0;
}
