/*
 * lab-cpu-churn: toggles random present CPUs (never cpu0) offline and online through sysfs every PERIOD_MS,
 * until SIGTERM, then prints one JSON line of counts. CPUs vanishing under it (unplugged by the
 * lab) and busy CPUs are expected: they are counted, not errors.
 *
 * usage: lab-cpu-churn [PERIOD_MS]   (default 200)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cpus.h"

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	int period_ms = argc > 1 ? atoi(argv[1]) : 200;
	long offlined = 0, onlined = 0, vanished = 0, refused = 0;
	unsigned seed = getpid();
	char path[96], state;

	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	while (!stop) {
		usleep(period_ms * 1000);
		int cpu = cpus_pick("present", &seed, 1);
		if (cpu < 0)
			continue;  /* cpu0 alone, for now */
		snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/online", cpu);
		int fd = open(path, O_RDWR);
		if (fd < 0) {
			vanished++;
			continue;
		}
		if (read(fd, &state, 1) != 1) {
			close(fd);
			vanished++;
			continue;
		}
		lseek(fd, 0, SEEK_SET);
		if (write(fd, state == '1' ? "0" : "1", 1) == 1)
			state == '1' ? offlined++ : onlined++;
		else if (errno == ENODEV || errno == ENOENT)
			vanished++;
		else
			refused++;  /* EBUSY and friends: the kernel said no this time */
		close(fd);
	}
	printf("{\"offlined\": %ld, \"onlined\": %ld, \"vanished\": %ld, \"refused\": %ld}\n",
	       offlined, onlined, vanished, refused);
	return 0;
}
