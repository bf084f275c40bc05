/*
 * cpus.h: a random CPU from one of the kernel's CPU lists (/sys/devices/system/cpu/present, online),
 * and a CPU's own numbers there (online, hotplug/state).
 * _SC_NPROCESSORS_CONF counts possible CPUs, and a kernel that counts QEMU's empty CPU slots (6.1 under
 * TCG, with the lab's spare hotplug slots: 68) has far more of those than CPUs.
 */
#ifndef CPUS_H
#define CPUS_H

#include <stdio.h>
#include <stdlib.h>

#define CPUS_MAX 1024

/* The CPUs of /sys/devices/system/cpu/LIST ("0-3,5") into CPUS, not cpu0 if SKIP0; how many. */
static inline int cpus_read(const char *list, int *cpus, int skip0)
{
	char path[64], text[4096], *p = text;
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/devices/system/cpu/%s", list);
	if (!(f = fopen(path, "r")))
		return 0;
	if (!fgets(text, sizeof(text), f))
		text[0] = 0;
	fclose(f);
	while (*p >= '0' && *p <= '9') {
		long lo = strtol(p, &p, 10), hi = lo;
		if (*p == '-')
			hi = strtol(p + 1, &p, 10);
		for (long c = lo; c <= hi && n < CPUS_MAX; c++)
			if (c || !skip0)
				cpus[n++] = (int)c;
		if (*p == ',')
			p++;
	}
	return n;
}

/* The number in /sys/devices/system/cpu/cpuCPU/ATTR ("online", "hotplug/state"); -1 without one. */
static inline int cpu_attr(int cpu, const char *attr)
{
	char path[128];
	int v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/%s", cpu, attr);
	if ((f = fopen(path, "r"))) {
		if (fscanf(f, "%d", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/* A random CPU of LIST, not cpu0 if SKIP0; -1 if there is none. */
static inline int cpus_pick(const char *list, unsigned *seed, int skip0)
{
	static __thread int cpus[CPUS_MAX];
	int n = cpus_read(list, cpus, skip0);

	return n ? cpus[rand_r(seed) % n] : -1;
}

/* One more than the highest CPU number of LIST (0 if none): the CPUs worth looking at. */
static inline int cpus_end(const char *list)
{
	static __thread int cpus[CPUS_MAX];
	int n = cpus_read(list, cpus, 0);

	return n ? cpus[n - 1] + 1 : 0;
}

#endif
