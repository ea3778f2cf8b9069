/* Every init unwinds: the system calls and allocations that vm_create,
 * host_sleep_init and pinning_init make are counted, then each one is made
 * to fail in turn. Whatever fails, the call returns an error (or copes and
 * succeeds), and nothing is left behind: no fd stays open (checked here) and
 * no memory leaks (LeakSanitizer checks that in the sanitizer build).
 * The failures are injected with the linker's --wrap, so the product code
 * carries no test hooks. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <dirent.h>

#include "builtin_guest/guest_blob.h"
#include "builtin_guest/testdev.h"
#include "control/server.h"
#include "core/vm.h"
#include "host/battery.h"
#include "host/pinning.h"
#include "host/shutdown.h"
#include "host/sleep.h"
#include "migration/migration.h"

static int fail_at = -1, calls;

/* True for the call that is to fail. */
static bool inject(void)
{
	return ++calls == fail_at;
}

void *__real_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size)
{
	if (inject()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_calloc(n, size);
}

int __real_ioctl(int fd, unsigned long req, void *arg);
int __wrap_ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (inject()) {
		errno = EIO;
		return -1;
	}
	return __real_ioctl(fd, req, arg);
}

int __real_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	int mode = va_arg(ap, int);
	va_end(ap);
	if (inject()) {
		errno = EMFILE;
		return -1;
	}
	return __real_open(path, flags, mode);
}

void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (inject()) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	return __real_mmap(addr, len, prot, flags, fd, off);
}

int __real_eventfd(unsigned int count, int flags);
int __wrap_eventfd(unsigned int count, int flags)
{
	if (inject()) {
		errno = EMFILE;
		return -1;
	}
	return __real_eventfd(count, flags);
}

int __real_sd_event_add_time_relative(sd_event *e, sd_event_source **s, clockid_t clock,
				      uint64_t usec, uint64_t accuracy, sd_event_time_handler_t cb,
				      void *userdata);
int __wrap_sd_event_add_time_relative(sd_event *e, sd_event_source **s, clockid_t clock,
				      uint64_t usec, uint64_t accuracy, sd_event_time_handler_t cb,
				      void *userdata)
{
	if (inject())
		return -ENOMEM;
	return __real_sd_event_add_time_relative(e, s, clock, usec, accuracy, cb, userdata);
}

int __real_sd_event_add_defer(sd_event *e, sd_event_source **s, sd_event_handler_t cb,
			      void *userdata);
int __wrap_sd_event_add_defer(sd_event *e, sd_event_source **s, sd_event_handler_t cb,
			      void *userdata)
{
	if (inject())
		return -ENOMEM;
	return __real_sd_event_add_defer(e, s, cb, userdata);
}

int __real_sd_event_source_set_enabled(sd_event_source *s, int enabled);
int __wrap_sd_event_source_set_enabled(sd_event_source *s, int enabled)
{
	if (inject())
		return -ENOMEM;
	return __real_sd_event_source_set_enabled(s, enabled);
}

int __real_sd_event_source_set_priority(sd_event_source *s, int64_t priority);
int __wrap_sd_event_source_set_priority(sd_event_source *s, int64_t priority)
{
	if (inject())
		return -ENOMEM;
	return __real_sd_event_source_set_priority(s, priority);
}

int __real_sd_bus_open_system(sd_bus **bus);
int __wrap_sd_bus_open_system(sd_bus **bus)
{
	if (inject())
		return -ENOMEM;
	return __real_sd_bus_open_system(bus);
}

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	for (struct dirent *e; d && (e = readdir(d));)
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

/* Runs `step` once to count the calls it makes, then again failing each in
 * turn; returns how many of those runs failed. */
static int fail_each(int (*step)(void *ctx), void *ctx)
{
	fail_at = -1;
	calls = 0;
	int fds = open_fds();
	assert_int_equal(step(ctx), 0);
	int total = calls, failed = 0;
	assert_true(total > 0);
	for (int k = 1; k <= total; k++) {
		fail_at = k;
		calls = 0;
		failed += step(ctx) != 0;
		fail_at = -1;
		assert_int_equal(open_fds(), fds);
	}
	print_message("%d calls, %d failures reported\n", total, failed);
	return failed;
}

struct vm_ctx {
	struct vm_config cfg;
	struct testdev guest;
	struct extra_device guest_device;
};

/* Creates and destroys a VM; returns vm_create's result. */
static int vm_step(void *opaque)
{
	struct vm_ctx *c = opaque;
	struct vm *vm = NULL;
	struct error why = {0};
	int r = vm_create(&c->cfg, -1, &vm, &why);
	if (r == 0)
		vm_destroy(vm);
	else /* every failure says why */
		assert_true(why.status != STATUS_OK && why.msg[0] != '\0');
	return r;
}

static void vm_create_unwinds(void **state)
{
	(void)state;
	if (access("/dev/kvm", R_OK | W_OK))
		skip();
	char path[] = "/tmp/kvmhost-unwind-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	struct vm_ctx c = {
		.cfg = {.name = "unwind", .cpus = 2, .memory_mib = 64, .nr_disks = 1},
	};
	c.cfg.disks[0].path = path;
	/* A `--device` too: its allocation fails and unwinds like the rest. */
	c.cfg.virtio[0] = (struct virtio_spec){.kind = "rng", .type = pc_virtio_kind("rng", NULL)};
	c.cfg.nr_virtio = 1;
	/* With the built-in guest's device: its attach fails and unwinds too. */
	testdev_configure(&c.guest, &(struct testdev_config){0}, NULL, 0);
	c.guest_device = testdev_extra(&c.guest);
	c.cfg.flat_image = (struct x86_flat_image){kvmhost_guest_blob, kvmhost_guest_blob_size,
						   builtin_guest_footprint()};
	c.cfg.flat_device = &c.guest_device;
	int failed = fail_each(vm_step, &c);
	unlink(path);
	assert_true(failed > 10); /* nearly every step is a hard error */
}

struct loop_ctx {
	struct vm *vm;
	struct host_cpu_monitor *mon;
};

static int sleep_step(void *opaque)
{
	struct loop_ctx *c = opaque;
	sd_event *event;
	assert_int_equal(sd_event_new(&event), 0);
	struct host_sleep hs;
	int r = host_sleep_init(&hs, c->vm, event, HOST_SLEEP_PAUSE);
	if (r == 0)
		host_sleep_destroy(&hs);
	sd_event_unref(event); /* a source left behind would keep it alive: a leak */
	return r;
}

/* Managed save and low battery cope with every failure (no bus, no probe
 * file): they return 0 and leave nothing open. */
static int shutdown_step(void *opaque)
{
	struct loop_ctx *c = opaque;
	sd_event *event;
	assert_int_equal(sd_event_new(&event), 0);
	char path[64];
	snprintf(path, sizeof(path), "/tmp/kvmhost-unwind-%d.kvmh", (int)getpid());
	struct host_shutdown hs;
	int r = host_shutdown_init(&hs, c->vm, event, SHUTDOWN_SAVE, path);
	if (r == 0)
		host_shutdown_destroy(&hs);
	struct battery_watch bw;
	int r2 = battery_watch_init(&bw, event, BATTERY_SAVE, NULL, NULL);
	if (r2 == 0)
		battery_watch_destroy(&bw);
	sd_event_unref(event);
	assert_int_not_equal(access(path, F_OK), 0); /* nothing saved: nothing asked for it */
	return r ? r : r2;
}

static int pinning_step(void *opaque)
{
	struct loop_ctx *c = opaque;
	sd_event *event;
	assert_int_equal(sd_event_new(&event), 0);
	struct cpu_pins pins = {0};
	struct error err = {0};
	assert_int_equal(parse_cpu_pins("0=0", &pins, &err), 0);
	struct pinning_config cfg = {.pins = &pins, .policy = OFFLINE_MIGRATE};
	struct pinning p;
	int r = pinning_init(&p, c->vm, c->mon, event, &cfg);
	if (r == 0)
		pinning_destroy(&p);
	cpu_pins_free(&pins);
	sd_event_unref(event);
	return r;
}

/* The control socket and migration's eventfds, source and thread state. */
static int migration_step(void *opaque)
{
	struct loop_ctx *c = opaque;
	sd_event *event;
	assert_int_equal(sd_event_new(&event), 0);
	char path[64];
	snprintf(path, sizeof(path), "/tmp/kvmhost-unwind-%d.sock", (int)getpid());
	struct control *ctl = NULL;
	struct migration *m = NULL;
	int r = control_start(&ctl, event, path);
	if (r == 0)
		r = migration_init(&m, c->vm, event, ctl);
	migration_destroy(m);
	control_stop(ctl);
	sd_event_unref(event);
	return r;
}

static void host_side_unwinds(void **state)
{
	(void)state;
	if (access("/dev/kvm", R_OK | W_OK))
		skip();
	/* No system bus here: host sleep must cope without logind too. */
	setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/kvmhost-test-bus", 1);
	struct vm_config cfg = {.name = "unwind", .cpus = 1, .memory_mib = 64};
	struct error why = {0};
	struct loop_ctx c = {0};
	assert_int_equal(vm_create(&cfg, -1, &c.vm, &why), 0);
	sd_event *event;
	assert_int_equal(sd_event_new(&event), 0);
	assert_int_equal(host_cpu_monitor_new(&c.mon, event, host_cpu_sysfs_root(), false), 0);
	assert_true(fail_each(sleep_step, &c) >= 4);
	assert_true(fail_each(pinning_step, &c) >= 2);
	assert_int_equal(fail_each(shutdown_step, &c), 0);
	assert_true(fail_each(migration_step, &c) >= 3);
	host_cpu_monitor_free(c.mon);
	sd_event_unref(event);
	vm_destroy(c.vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(vm_create_unwinds),
		cmocka_unit_test(host_side_unwinds),
	};
	return cmocka_run_group_tests_name("unwind", tests, NULL, NULL);
}
