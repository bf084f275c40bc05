/*
 * lab-virt-check: the guest's invariant checker. While a VM exists, every online CPU must have
 * hardware virtualization enabled; a CPU that KVM let come online without it runs the next vCPU
 * placed there with virtualization off (on SVM, VMSAVE with EFER.SVME clear: #UD, then
 * kvm_spurious_fault's BUG). The checker sees that state whether a crash follows or not.
 *
 * Every INTERVAL_MS (50) it holds a VM of its own (so KVM's count of VMs is at least one and
 * virtualization must be on everywhere), and reads EFER (MSR 0xc0000080; SVME is bit 12) on each
 * fully online CPU through /dev/cpu/N/msr. "Fully online" is the CPU's hotplug state being the last
 * one, read before and after the MSR: a CPU on its way up or down is between states, and KVM
 * enables or disables virtualization there on purpose (cpu_state() says how a CPU without the
 * state file counts). A clear SVME is confirmed by CONFIRM more reads, CONFIRM_MS apart, each
 * between two such state reads, and then reported on the kernel log like a kernel report, so the
 * lab's splat parser titles it "INVARIANT: online CPU without virtualization enabled". A CPU is
 * reported once until it has been seen offline again.
 *
 * -k keeps the VM for the whole run (the deterministic case: the count never drops to zero);
 * without it the VM is made and closed at each check, so the count keeps crossing 0 <-> 1, which is
 * when 6.1's hardware_enable_all() races CPUs coming online.
 *
 * usage: lab-virt-check [-k] [-i INTERVAL_MS] [-d SECONDS]   (SECONDS: $LAB_DURATION, else 60)
 *        lab-virt-check -s   (self-check: SVME reads as set on every online CPU with a VM held; exit 0)
 * Ends with one JSON line on stdout: checks, cpu_reads, violations, vm_errors, errors, elapsed_s.
 * Intel's VMX state (VMXON) cannot be read from user space: on a VMX CPU it says so and checks nothing.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/utsname.h>

#include "counts.h"
#include "cpus.h"
#include "kmsg.h"
#include "tinyvm.h"

#define MSR_EFER 0xc0000080u
#define EFER_SVME (1ull << 12)
#define MAX_CPUS 1024
#define CONFIRM 3
#define CONFIRM_MS 20

static int online_state = -1;  /* the number of cpuhp state "online" */
static volatile sig_atomic_t stop;
static long checks, cpu_reads, violations, vm_errors;
static char reported[MAX_CPUS];
static double seen_offline[MAX_CPUS], seen_online[MAX_CPUS];  /* last time, counts_now() */

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

/* The state number of "online" in /sys/devices/system/cpu/hotplug/states ("235: online"). */
static int find_online_state(void)
{
	FILE *f = fopen("/sys/devices/system/cpu/hotplug/states", "r");
	char line[160], name[128];
	int n, found = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, " %d: %127s", &n, name) == 2 && strcmp(name, "online") == 0)
			found = n;
	fclose(f);
	return found;
}

/* CPU's hotplug state; a CPU without the state file (6.1 gives a re-added CPU none: it made the file
 * at boot only) is online_state when its online file says 1, which it does only once the whole
 * online has run (and until an offline has). */
static int cpu_state(int cpu)
{
	int state = cpu_attr(cpu, "hotplug/state");

	if (state >= 0)
		return state;
	return cpu_attr(cpu, "online") == 1 ? online_state : -1;
}

/* EFER of CPU, read on that CPU, when it was fully online before and after the read; else -1. */
static int64_t efer_online(int cpu)
{
	char path[64];
	uint64_t v;
	int fd;

	if (cpu_state(cpu) != online_state)
		return -1;
	snprintf(path, sizeof(path), "/dev/cpu/%d/msr", cpu);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t n = pread(fd, &v, sizeof(v), MSR_EFER);
	close(fd);
	if (n != sizeof(v) || cpu_state(cpu) != online_state)
		return -1;
	cpu_reads++;
	return (int64_t)(v & INT64_MAX);
}

static void taint_letters(char *out, size_t size)
{
	static const char letters[] = "PFSRMBUDAWCIOELKXTNJ";
	FILE *f = fopen("/proc/sys/kernel/tainted", "r");
	unsigned long t = 0;
	size_t k = 0;

	if (f) {
		if (fscanf(f, "%lu", &t) != 1)
			t = 0;
		fclose(f);
	}
	if (!t) {
		snprintf(out, size, "Not tainted");
		return;
	}
	k = snprintf(out, size, "Tainted: ");
	for (unsigned i = 0; i < sizeof(letters) - 1 && k + 1 < size; i++)
		if (t & (1ul << i))
			out[k++] = letters[i];
	out[k] = 0;
}

static void report(int cpu, int64_t efer, double t0)
{
	char msg[1024], taint[64];
	struct utsname u;
	double now = counts_now();

	uname(&u);
	taint_letters(taint, sizeof(taint));
	/* One record per line: /dev/kmsg takes one record per write. */
	snprintf(msg, sizeof(msg), "<3>labrunner-invariant: online CPU without virtualization enabled: CPU%d, "
		 "while a VM exists\n", cpu);
	kmsg_write(msg);
	snprintf(msg, sizeof(msg), "<3>  EFER 0x%llx: SVME (bit 12) clear, in %d reads over %d ms, each between two "
		 "reads of cpuhp state %d (online)\n", (unsigned long long)efer, CONFIRM + 1, CONFIRM * CONFIRM_MS, online_state);
	kmsg_write(msg);
	snprintf(msg, sizeof(msg), "<3>  CPU: %d PID: %d Comm: lab-virt-check %s %s\n", cpu, getpid(), taint, u.release);
	kmsg_write(msg);
	snprintf(msg, sizeof(msg), "<3>  cpu%d seen online since %.3f s, last seen offline %s%.3f s ago (checker running "
		 "%.3f s)\n", cpu, now - seen_online[cpu], seen_offline[cpu] ? "" : "never, ",
		 seen_offline[cpu] ? now - seen_offline[cpu] : 0.0, now - t0);
	kmsg_write(msg);
	kmsg_write("<3>---[ end trace labrunner-invariant ]---\n");
	fprintf(stderr, "lab-virt-check: CPU%d online with EFER 0x%llx (SVME clear) while a VM exists\n", cpu,
		(unsigned long long)efer);
}

/* One pass over the CPUs, a VM held by the caller. */
static void check_cpus(int ncpus, double t0)
{
	for (int cpu = 0; cpu < ncpus && cpu < MAX_CPUS; cpu++) {
		int64_t efer = efer_online(cpu);
		double now = counts_now();

		if (efer < 0) {
			if (cpu_state(cpu) != online_state) {
				seen_offline[cpu] = now;
				seen_online[cpu] = 0;
				reported[cpu] = 0;
			}
			continue;
		}
		if (!seen_online[cpu])
			seen_online[cpu] = now;
		if ((efer & EFER_SVME) || reported[cpu])
			continue;
		int confirmed = 0;
		for (int i = 0; i < CONFIRM; i++) {
			usleep(CONFIRM_MS * 1000);
			int64_t again = efer_online(cpu);
			confirmed += again >= 0 && !(again & EFER_SVME);
		}
		if (confirmed == CONFIRM) {
			reported[cpu] = 1;
			violations++;
			report(cpu, efer, t0);
		}
	}
}

static int self_check(int ncpus)
{
	struct tinyvm vm;
	const char *step;
	int bad = 0, read = 0, err = tinyvm_open(&vm, 1, &step);

	if (err)
		return fprintf(stderr, "lab-virt-check: cannot hold a VM: %s: %s\n", step, strerrorname_np(-err)), 1;
	for (int cpu = 0; cpu < ncpus && cpu < MAX_CPUS; cpu++) {
		int64_t efer = efer_online(cpu);
		if (efer < 0)
			continue;
		read++;
		if (!(efer & EFER_SVME)) {
			fprintf(stderr, "lab-virt-check: cpu%d: EFER 0x%llx, SVME clear\n", cpu, (unsigned long long)efer);
			bad++;
		}
	}
	tinyvm_close(&vm);
	if (!read)
		return fprintf(stderr, "lab-virt-check: no CPU's EFER could be read (/dev/cpu/N/msr: CONFIG_X86_MSR or "
			       "the msr module)\n"), 1;
	printf("lab-virt-check: EFER read on %d CPUs with a VM held, SVME %s\n", read, bad ? "clear on some" : "set on all");
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	const char *env = getenv("LAB_DURATION");
	double seconds = env ? atof(env) : 60;
	int keep = 0, interval_ms = 50, self = 0, opt;
	struct tinyvm vm;
	const char *step;

	while ((opt = getopt(argc, argv, "ki:d:s")) != -1) {
		switch (opt) {
		case 'k': keep = 1; break;
		case 'i': interval_ms = atoi(optarg); break;
		case 'd': seconds = atof(optarg); break;
		case 's': self = 1; break;
		default:
			fprintf(stderr, "usage: %s [-k] [-i INTERVAL_MS] [-d SECONDS] | -s\n", argv[0]);
			return 2;
		}
	}
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[4096];
	int svm = 0, vmx = 0;
	while (f && fgets(line, sizeof(line), f) && !svm && !vmx)
		if (strncmp(line, "flags", 5) == 0)
			svm = strstr(line, " svm") != NULL, vmx = strstr(line, " vmx") != NULL;
	if (f)
		fclose(f);
	if (!svm) {
		printf("lab-virt-check: no SVM on cpu0 (%s): VMXON state cannot be read from user space; nothing checked\n",
		       vmx ? "VMX" : "no virtualization");
		return 0;
	}
	online_state = find_online_state();
	if (online_state < 0)
		return fprintf(stderr, "lab-virt-check: no 'online' in /sys/devices/system/cpu/hotplug/states\n"), 1;
	if (self)
		return self_check(cpus_end("present"));

	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	double t0 = counts_now(), end = t0 + seconds;
	int held = 0;
	while (!stop && counts_now() < end) {
		if (!held) {
			int err = tinyvm_open(&vm, 1, &step);
			if (err) {
				vm_errors++;
				counts_error(err, step);
				usleep(interval_ms * 1000);
				continue;
			}
			held = 1;
		}
		check_cpus(cpus_end("present"), t0);
		checks++;
		if (!keep) {
			tinyvm_close(&vm);
			held = 0;
		}
		usleep(interval_ms * 1000);
	}
	if (held)
		tinyvm_close(&vm);
	printf("{\"checks\": %ld, \"cpu_reads\": %ld, \"violations\": %ld, \"vm_errors\": %ld, \"errors\": ",
	       checks, cpu_reads, violations, vm_errors);
	counts_print_errors(stdout);
	printf(", \"elapsed_s\": %.3f}\n", counts_now() - t0);
	return 0;
}
