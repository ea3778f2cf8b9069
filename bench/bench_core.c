/* Core figures of kvmhost against a raw KVM loop measured in the same run:
 * port-I/O exit round trip, targeted request latency, pause-all latency,
 * start time and VMM memory overhead. Usage: bench_core [path/to/kvmhost] */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "builtin_guest/guest_blob.h"
#include "builtin_guest/testdev.h"
#include "core/vm.h"
#include "raw_kvm.h"
#include "sandbox/sandbox.h"
#include "util/util.h"

#define PIO_ITERS 50000
#define ROUNDS	  5

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* The vCPUs' seccomp filters, as `kvmhost run` builds them; set by main. */
static struct sandbox *sandbox;

/* A VM running the built-in guest, and the guest's test device. */
struct bench_vm {
	struct vm *vm;
	struct testdev dev;
	struct extra_device extra;
};

static struct bench_vm *kvmhost_vm_in(uint32_t cpus, uint32_t mode, uint32_t period_us,
				      const struct sandbox *sb);

static struct bench_vm *kvmhost_vm(uint32_t cpus, uint32_t mode, uint32_t period_us)
{
	return kvmhost_vm_in(cpus, mode, period_us, sandbox);
}

static struct bench_vm *kvmhost_vm_in(uint32_t cpus, uint32_t mode, uint32_t period_us,
				      const struct sandbox *sb)
{
	struct bench_vm *b = calloc(1, sizeof(*b));
	if (!b)
		exit(1);
	const struct testdev_config guest = {
		.period_us = period_us, .mode = mode, .bench_iters = PIO_ITERS};
	testdev_configure(&b->dev, &guest, NULL, 0);
	b->extra = testdev_extra(&b->dev);
	struct vm_config cfg = {
		.name = "bench",
		.cpus = cpus,
		.memory_mib = 64,
		.flat_image = {kvmhost_guest_blob, kvmhost_guest_blob_size,
			       builtin_guest_footprint()},
		.flat_device = &b->extra,
	};
	struct error err = {0};
	if (vm_create(&cfg, -1, &b->vm, &err)) {
		fprintf(stderr, "bench: cannot create a VM: %s\n", err.msg);
		exit(1);
	}
	vm_set_sandbox(b->vm, sb);
	if (vm_start(b->vm, NULL, NULL)) {
		fprintf(stderr, "bench: cannot start the VM\n");
		exit(1);
	}
	return b;
}

static void bench_vm_destroy(struct bench_vm *b)
{
	vm_destroy(b->vm);
	free(b);
}

static void wait_booted(struct bench_vm *b)
{
	for (uint32_t i = 0; i < b->dev.nr_vcpus; i++)
		while (!atomic_load(&b->dev.vcpus[i].booted))
			sleep_ms(1);
}

static uint64_t pio_ns(const struct sandbox *sb)
{
	struct bench_vm *b = kvmhost_vm_in(1, GUEST_MODE_PIO_BENCH, 10000, sb);
	while (!atomic_load(&b->dev.bench_done))
		sleep_ms(1);
	uint64_t ns = atomic_load(&b->dev.bench_ns) / PIO_ITERS;
	bench_vm_destroy(b);
	return ns;
}

/* Raw loop, kvmhost with its vCPU sandbox and without, in turns. */
static double bench_pio(void)
{
	uint64_t raw[ROUNDS], host[ROUNDS], bare[ROUNDS];
	for (int r = 0; r < ROUNDS; r++) {
		struct raw_vm rv;
		if (raw_vm_create(&rv, 1, GUEST_MODE_PIO_BENCH, 10000, PIO_ITERS) ||
		    raw_vm_start(&rv)) {
			fprintf(stderr, "bench: raw VM failed\n");
			exit(1);
		}
		while (!atomic_load(&rv.bench_done))
			sleep_ms(1);
		raw[r] = rv.bench_ns / PIO_ITERS;
		raw_vm_destroy(&rv);
		host[r] = pio_ns(sandbox);
		bare[r] = pio_ns(NULL);
	}
	uint64_t rm = percentile(raw, ROUNDS, 50), hm = percentile(host, ROUNDS, 50);
	uint64_t bm = percentile(bare, ROUNDS, 50);
	double ratio = (double)hm / (double)rm;
	printf("pio_exit_roundtrip_ns: raw %llu kvmhost %llu ratio %.3f (target <= 1.10; median of "
	       "%d runs x %d exits, timed by the guest's kvmclock)\n",
	       (unsigned long long)rm, (unsigned long long)hm, ratio, ROUNDS, PIO_ITERS);
	printf("pio_exit_roundtrip_ns without the sandbox: kvmhost %llu ratio %.3f; the vCPU "
	       "filter costs %lld ns per exit (one KVM_RUN each)\n",
	       (unsigned long long)bm, (double)bm / (double)rm, (long long)hm - (long long)bm);
	return ratio;
}

static void mark_now(struct vcpu *v, void *arg)
{
	(void)v;
	*(uint64_t *)arg = now_ns();
}

#define SAMPLES 300

static uint64_t request_ns(struct vm *vm)
{
	uint64_t ran = 0, t0 = now_ns();
	vcpu_run_on(&vm->vcpus[0], mark_now, &ran, true);
	return ran - t0;
}

static void bench_request(void)
{
	uint64_t raw[SAMPLES], host[SAMPLES], bare[SAMPLES];
	/* A long heartbeat period: the vCPU sits in KVM_RUN (guest hlt). */
	struct raw_vm rv;
	if (raw_vm_create(&rv, 1, GUEST_MODE_HEARTBEAT, 500000, 0) || raw_vm_start(&rv))
		exit(1);
	struct bench_vm *vm = kvmhost_vm(1, GUEST_MODE_HEARTBEAT, 500000);
	struct bench_vm *off = kvmhost_vm_in(1, GUEST_MODE_HEARTBEAT, 500000, NULL);
	wait_booted(vm);
	wait_booted(off);
	sleep_ms(50);
	for (int i = 0; i < SAMPLES; i++) {
		raw[i] = raw_call(&rv, 0);
		sleep_ms(1);
		host[i] = request_ns(vm->vm);
		sleep_ms(1);
		bare[i] = request_ns(off->vm);
		sleep_ms(1);
	}
	raw_vm_destroy(&rv);
	bench_vm_destroy(vm);
	bench_vm_destroy(off);
	uint64_t rm = percentile(raw, SAMPLES, 50), hm = percentile(host, SAMPLES, 50);
	uint64_t bm = percentile(bare, SAMPLES, 50);
	printf("request_latency_us: raw median %.1f p90 %.1f, kvmhost median %.1f p90 %.1f, ratio "
	       "%.3f (target <= 1.2; %d samples, vCPU halted in KVM_RUN)\n",
	       (double)rm / 1e3, (double)percentile(raw, SAMPLES, 90) / 1e3, (double)hm / 1e3,
	       (double)percentile(host, SAMPLES, 90) / 1e3, (double)hm / (double)rm, SAMPLES);
	printf("request_latency_us without the sandbox: kvmhost median %.1f, ratio %.3f\n",
	       (double)bm / 1e3, (double)bm / (double)rm);
}

#define PAUSE_SAMPLES 60

static void bench_pause(int n)
{
	uint64_t raw[PAUSE_SAMPLES], host[PAUSE_SAMPLES];
	struct raw_vm rv;
	if (raw_vm_create(&rv, n, GUEST_MODE_HEARTBEAT, 10000, 0) || raw_vm_start(&rv))
		exit(1);
	struct bench_vm *b = kvmhost_vm((uint32_t)n, GUEST_MODE_HEARTBEAT, 10000);
	struct vm *vm = b->vm;
	wait_booted(b);
	for (int i = 0; i < PAUSE_SAMPLES; i++) {
		raw[i] = raw_pause_all(&rv);
		raw_resume_all(&rv);
		sleep_ms(3);
		uint64_t t0 = now_ns();
		vm_pause(vm);
		host[i] = now_ns() - t0;
		vm_resume(vm);
		sleep_ms(3);
	}
	raw_vm_destroy(&rv);
	bench_vm_destroy(b);
	uint64_t rm = percentile(raw, PAUSE_SAMPLES, 50), hm = percentile(host, PAUSE_SAMPLES, 50);
	printf("pause_all_us[%d vcpus]: raw median %.1f, kvmhost median %.1f, ratio %.3f (target <= "
	       "1.3; %d samples)\n",
	       n, (double)rm / 1e3, (double)hm / 1e3, (double)hm / (double)rm, PAUSE_SAMPLES);
}

/* exec -> first console byte, and RSS not explained by guest RAM. */
static void bench_start(const char *kvmhost)
{
	enum { RUNS = 10 };
	uint64_t start[RUNS];
	long overhead_kib = -1, private_kib = -1;
	char rundir[] = "/tmp/kvmhost-bench-XXXXXX";
	if (!mkdtemp(rundir))
		exit(1);
	setenv("KVMHOST_RUNDIR", rundir, 1);
	for (int r = 0; r < RUNS; r++) {
		int p[2];
		if (pipe(p))
			exit(1);
		uint64_t t0 = now_ns();
		pid_t pid = fork();
		if (pid == 0) {
			dup2(p[1], 1);
			int devnull = open("/dev/null", O_WRONLY);
			dup2(devnull, 2);
			close(p[0]);
			execl(kvmhost, kvmhost, "run", "--name", "bench-start", "--console",
			      "stdio", (char *)NULL);
			_exit(127);
		}
		close(p[1]);
		char c;
		struct pollfd pf = {p[0], POLLIN, 0};
		if (poll(&pf, 1, 10000) != 1 || read(p[0], &c, 1) != 1) {
			fprintf(stderr, "bench: no console output from %s\n", kvmhost);
			kill(pid, SIGKILL);
			exit(1);
		}
		start[r] = now_ns() - t0;
		if (r == RUNS - 1) {
			sleep_ms(500); /* steady state: a few hundred heartbeats */
			char path[64], line[256];
			snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
			FILE *f = fopen(path, "r");
			long total = 0, guest = 0, size = 0, priv = 0, guest_priv = 0;
			bool is_guest = false;
			while (f && fgets(line, sizeof(line), f)) {
				long v;
				if (sscanf(line, "Size: %ld kB", &v) == 1) {
					size = v;
					is_guest = size == 64 * 1024; /* the default --memory 64 */
				} else if (sscanf(line, "Rss: %ld kB", &v) == 1) {
					total += v;
					if (is_guest)
						guest += v;
				} else if (sscanf(line, "Private_Clean: %ld kB", &v) == 1 ||
					   sscanf(line, "Private_Dirty: %ld kB", &v) == 1) {
					priv += v;
					if (is_guest)
						guest_priv += v;
				}
			}
			if (f)
				fclose(f);
			overhead_kib = total - guest;
			private_kib = priv - guest_priv;
		}
		kill(pid, SIGTERM);
		/* Drain so the VM never blocks on a full pipe while stopping. */
		char buf[4096];
		while (read(p[0], buf, sizeof(buf)) > 0)
			;
		close(p[0]);
		waitpid(pid, NULL, 0);
	}
	rmdir(rundir);
	/* The minimum over every run, not whichever came first. */
	uint64_t min = start[0];
	for (int i = 1; i < RUNS; i++)
		if (start[i] < min)
			min = start[i];
	uint64_t median = percentile(start, RUNS, 50);
	printf("start_time_ms: median %.2f min %.2f (target <= 20; exec to the first guest byte "
	       "on the console, %d runs)\n",
	       (double)median / 1e6, (double)min / 1e6, RUNS);
	printf("vmm_memory_overhead_kib: rss %ld private %ld (target <= 2048; RSS minus guest RAM, "
	       "and the part of it no other process shares; 2 vCPUs, running)\n",
	       overhead_kib, private_kib);
}

int main(int argc, char **argv)
{
	const char *kvmhost = argc > 1 ? argv[1] : "build/kvmhost";
	if (access("/dev/kvm", R_OK | W_OK)) {
		printf("bench_core: skipped: /dev/kvm is not usable here\n");
		return 0;
	}
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	/* The vCPUs' filters, as `kvmhost run` has them (its main thread's is
	 * not entered here: the figures are about the vCPU path). */
	struct error err = {0};
	struct sandbox_config sc = {0};
	if (sandbox_build(&sandbox, &sc, &err)) {
		fprintf(stderr, "bench: %s\n", err.msg);
		return 1;
	}
	/* Optional second argument: run one part only (pio, request, pause, start). */
	const char *only = argc > 2 ? argv[2] : "";
	if (!*only || !strcmp(only, "pio"))
		bench_pio();
	if (!*only || !strcmp(only, "request"))
		bench_request();
	if (!*only || !strcmp(only, "pause")) {
		bench_pause(1);
		bench_pause(8);
		bench_pause(32);
	}
	if (!*only || !strcmp(only, "start"))
		bench_start(kvmhost);
	return 0;
}
