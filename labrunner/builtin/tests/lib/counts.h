/*
 * counts.h: errors counted by errno name, progress lines and the final JSON line every workload ends with.
 */
#ifndef COUNTS_H
#define COUNTS_H

#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define COUNTS_MAX_ERRNO 256

static atomic_long counts_errors[COUNTS_MAX_ERRNO];

static inline void counts_error(int err, const char *step)
{
	if (err < 0)
		err = -err;
	if (err <= 0 || err >= COUNTS_MAX_ERRNO)
		err = 0;
	if (atomic_fetch_add(&counts_errors[err], 1) == 0) /* say the first of each kind */
		fprintf(stderr, "error: %s: %s\n", step, err ? strerrorname_np(err) : "unknown");
}

static inline long counts_total_errors(void)
{
	long n = 0;
	for (int i = 0; i < COUNTS_MAX_ERRNO; i++)
		n += counts_errors[i];
	return n;
}

/* {"EBUSY": 3, ...} */
static inline void counts_print_errors(FILE *f)
{
	int first = 1;
	fputc('{', f);
	for (int i = 0; i < COUNTS_MAX_ERRNO; i++) {
		if (!counts_errors[i])
			continue;
		fprintf(f, "%s\"%s\": %ld", first ? "" : ", ", i ? strerrorname_np(i) : "unknown", counts_errors[i]);
		first = 0;
	}
	fputc('}', f);
}

static inline double counts_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

#endif
