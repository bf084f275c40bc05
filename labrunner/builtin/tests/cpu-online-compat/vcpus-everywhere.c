/*
 * vcpus-everywhere: keeps one VM alive for the whole run (so KVM's count of VMs never drops to
 * zero and virtualization stays enabled), and every PERIOD_MS runs a tiny 1-vCPU VM on each online
 * CPU, a thread pinned there, so a CPU that has just come online runs a vCPU at once. A CPU that
 * KVM let come online without virtualization (6.1: kvm_starting_cpu() ignores a failed enable)
 * then runs that vCPU with virtualization off. A CPU going away under the pinning is expected and
 * not an error; KVM emulation failures are counted apart (see tinyvm.h). Prints a progress line
 * every few seconds and ends with one JSON line: vm_cycles, vcpu_runs, new_cpus (CPUs seen coming
 * online), errors (by errno name), elapsed_s. Exits 1 on any error.
 *
 * usage: vcpus-everywhere [-p PERIOD_MS] [-d SECONDS]   (SECONDS: $LAB_DURATION, else 10)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "../lib/cpus.h"
#include "../lib/cycle.h"

#define MAX_CPUS 256

static struct cycle_counts counts;
static atomic_long new_cpus, vanished_cpus;

static int cpu_online(int cpu)
{
	int on = cpu_attr(cpu, "online");

	return on < 0 ? cpu == 0 : on;  /* cpu0 may have no online file */
}

static void *run_on(void *arg)
{
	int cpu = (int)(intptr_t)arg;
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set)) {
		if (errno == EINVAL)  /* offline or unplugged just now */
			atomic_fetch_add(&vanished_cpus, 1);
		else
			counts_error(errno, "sched_setaffinity");
		return NULL;
	}
	vm_cycle(1, &counts);
	return NULL;
}

int main(int argc, char **argv)
{
	const char *env = getenv("LAB_DURATION");
	double seconds = env ? atof(env) : 10;
	int period_ms = 200, opt, was_online[MAX_CPUS] = { 0 };
	struct tinyvm hold;
	const char *step;

	while ((opt = getopt(argc, argv, "p:d:")) != -1) {
		switch (opt) {
		case 'p': period_ms = atoi(optarg); break;
		case 'd': seconds = atof(optarg); break;
		default:
			fprintf(stderr, "usage: %s [-p PERIOD_MS] [-d SECONDS]\n", argv[0]);
			return 2;
		}
	}
	int err = tinyvm_open(&hold, 1, &step);
	if (err)
		return fprintf(stderr, "vcpus-everywhere: cannot hold a VM: %s: %s\n", step, strerrorname_np(-err)), 1;
	if ((err = tinyvm_run(&hold, 0, &step)) != 0 && err != TINYVM_EMULATION_FAILURE)
		return fprintf(stderr, "vcpus-everywhere: the held VM does not run: %s\n", step), 1;
	printf("vcpus-everywhere: holding a VM; a vCPU on each online CPU every %d ms\n", period_ms);
	fflush(stdout);
	double t0 = counts_now(), next_progress = t0 + 5;
	for (int cpu = 0; cpu < MAX_CPUS; cpu++)
		was_online[cpu] = cpu_online(cpu);
	while (counts_now() < t0 + seconds) {
		pthread_t threads[MAX_CPUS];
		int n = 0;

		int end = cpus_end("present");

		for (int cpu = 0; cpu < end && cpu < MAX_CPUS; cpu++) {
			int on = cpu_online(cpu);
			if (on && !was_online[cpu])
				atomic_fetch_add(&new_cpus, 1);
			was_online[cpu] = on;
			if (on && pthread_create(&threads[n], NULL, run_on, (void *)(intptr_t)cpu) == 0)
				n++;
		}
		for (int i = 0; i < n; i++)
			pthread_join(threads[i], NULL);
		if (counts_now() >= next_progress) {
			printf("progress vm_cycles=%ld vcpu_runs=%ld new_cpus=%ld errors=%ld\n", counts.vm_cycles,
			       counts.vcpu_runs, new_cpus, counts_total_errors());
			fflush(stdout);
			next_progress += 5;
		}
		usleep(period_ms * 1000);
	}
	tinyvm_close(&hold);
	printf("{\"vm_cycles\": %ld, \"vcpu_runs\": %ld, \"new_cpus\": %ld, \"vanished_cpus\": %ld, "
	       "\"emulation_failures\": %ld, \"errors\": ", counts.vm_cycles, counts.vcpu_runs, new_cpus,
	       vanished_cpus, counts.emulation_failures);
	counts_print_errors(stdout);
	printf(", \"elapsed_s\": %.3f}\n", counts_now() - t0);
	return counts_total_errors() ? 1 : 0;
}
