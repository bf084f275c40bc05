/*
 * kmsg.h: a line onto the kernel log (/dev/kmsg, one record per write), where the lab reads the
 * guest tools' announcements and reports on the console. TEXT may start with a "<N>" level.
 */
#ifndef KMSG_H
#define KMSG_H

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static inline void kmsg_write(const char *text)
{
	int fd = open("/dev/kmsg", O_WRONLY);

	if (fd >= 0) {
		(void)!write(fd, text, strlen(text));
		close(fd);
	}
}

#endif
