/*
 * lab-cpu-agent: onlines CPUs that appear (hot-plugged by the lab), since there is no udev.
 * Polls /sys/devices/system/cpu every 50 ms; a CPU seen for the first time, or again after it
 * vanished (unplugged), is onlined once and announced on the kernel log, with its APIC ID, so the
 * lab's hotplug controller can confirm the plug:  "lab-cpu-agent: cpu3 online apicid 3". A kernel
 * that refuses the CPU (one without the virtualization the running VMs need, say) is announced too:
 * "lab-cpu-agent: cpu3 online refused (EIO) apicid 3".
 * CPUs that are offlined on purpose (lab-cpu-churn) are left alone. Started by the image's init.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kmsg.h"

#define MAX_CPUS 1024

static int apicid_of(int cpu)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[256];
	int current = -1, apic = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "processor : %d", &current) == 1)
			continue;
		if (current == cpu && sscanf(line, "apicid : %d", &apic) == 1)
			break;
	}
	fclose(f);
	return apic;
}

int main(void)
{
	static char seen[MAX_CPUS], present[MAX_CPUS];
	char path[128], msg[128];

	for (;;) {
		DIR *d = opendir("/sys/devices/system/cpu");
		struct dirent *e;

		memset(present, 0, sizeof(present));
		while (d && (e = readdir(d))) {
			int cpu;
			char end;
			if (sscanf(e->d_name, "cpu%d%c", &cpu, &end) != 1 || cpu < 0 || cpu >= MAX_CPUS)
				continue;
			present[cpu] = 1;
			if (seen[cpu])
				continue;
			seen[cpu] = 1;
			snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/online", cpu);
			int fd = open(path, O_WRONLY);
			if (fd < 0)  /* the boot CPU has no online file */
				continue;
			if (write(fd, "1", 1) == 1)
				snprintf(msg, sizeof(msg), "<5>lab-cpu-agent: cpu%d online apicid %d\n", cpu, apicid_of(cpu));
			else
				snprintf(msg, sizeof(msg), "<5>lab-cpu-agent: cpu%d online refused (%s) apicid %d\n", cpu,
					 strerrorname_np(errno) ? strerrorname_np(errno) : "unknown", apicid_of(cpu));
			kmsg_write(msg);
			close(fd);
		}
		if (d)
			closedir(d);
		for (int cpu = 0; cpu < MAX_CPUS; cpu++)
			if (!present[cpu])
				seen[cpu] = 0;  /* unplugged: online it again when it comes back */
		usleep(50000);
	}
}
