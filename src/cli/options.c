/* `kvmhost run`'s options: one table (name, handler, and whether the guest
 * sees it - those come from the snapshot or the stream with --restore and
 * --incoming), then the rules between options once all are in. Nothing
 * here opens or starts anything, so the unit tests run the parser as is. */
#include "cli/options.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*opt_fn)(struct run_options *o, const char *arg, struct error *err);

/* One option: its name, how to apply it, and whether the guest sees it
 * (those come from the snapshot with --restore). */
struct opt_def {
	const char *name;
	int has_arg;
	opt_fn apply;
	bool guest_visible;
};

void run_options_default(struct run_options *o)
{
	memset(o, 0, sizeof(*o));
	o->vm.cpus = 2;
	o->vm.memory_mib = 64;
	o->guest = (struct testdev_config){
		.period_us = 10000,
		.print_every = 100,
		.mode = GUEST_MODE_HEARTBEAT,
		.bench_iters = 100000,
		.disk_blocks = 256,
		.disk_request_kib = 4,
		.disk_flush_every = 64,
		.disk_generation = 1,
		.memcheck_mib = 16,
	};
	o->console = CONSOLE_STDIO;
	o->on_cpu_offline = OFFLINE_MIGRATE;
	o->on_host_sleep = HOST_SLEEP_PAUSE;
}

void run_options_free(struct run_options *o)
{
	cpu_pins_free(&o->pins);
	for (int i = 0; i < o->vm.nr_disks; i++)
		run_options_free_disk(&o->vm.disks[i]);
	o->vm.nr_disks = 0;
	free((void *)o->guest_blob);
	o->guest_blob = NULL;
}

void run_options_forget_guest(struct run_options *o)
{
	struct run_options defaults;
	run_options_default(&defaults);
	for (int i = 0; i < o->vm.nr_disks; i++)
		run_options_free_disk(&o->vm.disks[i]);
	const char *name = o->vm.name;
	o->vm = defaults.vm;
	o->vm.name = name;
	o->guest = defaults.guest;
	o->guest_option = NULL;
}

/* The path: up to the first comma not written as "\,"; "\\" is a backslash.
 * Returns where the options start (after the comma, or at the end). */
static const char *disk_path(const char *s, char *path)
{
	size_t n = 0;
	for (; *s && *s != ','; s++) {
		if (*s == '\\' && (s[1] == ',' || s[1] == '\\'))
			s++;
		path[n++] = *s;
	}
	path[n] = '\0';
	return *s ? s + 1 : s;
}

int run_options_parse_disk(const char *s, struct disk_spec *d, struct error *err)
{
	memset(d, 0, sizeof(*d));
	if (!*s || s[0] == ',')
		return error_setf(err, "expected FILE[,ro][,id=NAME] (a comma in FILE as \\,)");
	char *path = malloc(strlen(s) + 1);
	if (!path)
		return error_setf(err, "out of memory");
	char *copy = strdup(disk_path(s, path)), *save = NULL;
	d->path = path;
	if (!copy) {
		run_options_free_disk(d);
		return error_setf(err, "out of memory");
	}
	int ret = 0;
	for (char *tok = strtok_r(copy, ",", &save); tok && !ret;
	     tok = strtok_r(NULL, ",", &save)) {
		if (!strcmp(tok, "ro"))
			d->ro = true;
		else if (!strncmp(tok, "id=", 3) && tok[3] && strlen(tok + 3) <= DISK_ID_BYTES)
			snprintf(d->id, sizeof(d->id), "%s", tok + 3);
		else
			ret = error_setf(err,
					 "unknown disk option '%s' (ro, id=NAME of 1-%d bytes)",
					 tok, DISK_ID_BYTES);
	}
	free(copy);
	if (ret)
		run_options_free_disk(d);
	return ret;
}

void run_options_free_disk(struct disk_spec *d)
{
	free(d->path);
	d->path = NULL;
}

static int parse_range(const char *what, const char *s, uint64_t lo, uint64_t hi, uint64_t *out,
		       struct error *err)
{
	if (parse_u64(s, out))
		return error_setf(err, "%s: '%s' is not a number", what, s);
	if (*out < lo || *out > hi)
		return error_setf(err, "%s: %s is out of range (%llu..%llu)", what, s,
				  (unsigned long long)lo, (unsigned long long)hi);
	return 0;
}

/* A u32 option within [lo, hi], stored at *dst. */
static int u32_opt(const char *what, const char *s, uint64_t lo, uint64_t hi, uint32_t *dst,
		   struct error *err)
{
	uint64_t v;
	if (parse_range(what, s, lo, hi, &v, err))
		return -EINVAL;
	*dst = (uint32_t)v;
	return 0;
}

/* Picks the index of `s` among `names` (NULL-terminated) into *out. */
static int choice_opt(const char *what, const char *s, const char *const *names, int *out,
		      struct error *err)
{
	for (int i = 0; names[i]; i++) {
		if (!strcmp(s, names[i])) {
			*out = i;
			return 0;
		}
	}
	char list[256] = "";
	for (int i = 0; names[i]; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
			 i ? (names[i + 1] ? ", " : " or ") : "", names[i]);
	return error_setf(err, "%s: expected %s, got '%s'", what, list, s);
}

static int opt_name(struct run_options *o, const char *a, struct error *err)
{
	if (!rundir_valid_name(a))
		return error_setf(err,
				  "--name: '%s' is not a valid name (1-%d of A-Z a-z 0-9 . _ -)", a,
				  VM_NAME_MAX);
	snprintf(o->name, sizeof(o->name), "%s", a);
	return 0;
}

static int opt_cpus(struct run_options *o, const char *a, struct error *err)
{
	/* Up to any vCPU a pin can name; vm_create checks what KVM allows here. */
	return u32_opt("--cpus", a, 1, CPU_PINS_MAX_VCPU + 1, &o->vm.cpus, err);
}

static int opt_memory(struct run_options *o, const char *a, struct error *err)
{
	return parse_range("--memory (MiB)", a, MEMORY_MIN_MIB, MEMORY_MAX_MIB, &o->vm.memory_mib,
			   err);
}

static int opt_cpu_pin(struct run_options *o, const char *a, struct error *err)
{
	if (parse_cpu_pins(a, &o->pins, err))
		return error_prepend(err, "--cpu-pin: ");
	return 0;
}

static int opt_console(struct run_options *o, const char *a, struct error *err)
{
	if (!*a)
		return error_setf(err, "--console: expected stdio, none or a file path");
	o->console = !strcmp(a, "stdio")  ? CONSOLE_STDIO
		     : !strcmp(a, "none") ? CONSOLE_NONE
					  : CONSOLE_FILE;
	o->console_path = o->console == CONSOLE_FILE ? a : NULL;
	return 0;
}

#define SOCKET_PATH_MAX 107 /* sun_path, less its NUL */

static int opt_socket(struct run_options *o, const char *a, struct error *err)
{
	if (!*a || strlen(a) > SOCKET_PATH_MAX)
		return error_setf(err, "--socket: path must be 1-%d bytes", SOCKET_PATH_MAX);
	o->socket_path = a;
	return 0;
}

static int opt_vmm_cpus(struct run_options *o, const char *a, struct error *err)
{
	if (parse_cpu_list(a, &o->vmm_cpus))
		return error_setf(err, "--vmm-cpus: '%s' is not a host CPU list", a);
	o->has_vmm_cpus = true;
	return 0;
}

static int opt_on_cpu_offline(struct run_options *o, const char *a, struct error *err)
{
	static const char *const names[] = {
		[OFFLINE_MIGRATE] = "migrate", [OFFLINE_PAUSE] = "pause", NULL};
	int v;
	if (choice_opt("--on-cpu-offline", a, names, &v, err))
		return -EINVAL;
	o->on_cpu_offline = (enum cpu_offline_policy)v;
	return 0;
}

static int opt_on_host_sleep(struct run_options *o, const char *a, struct error *err)
{
	static const char *const names[] = {
		[HOST_SLEEP_PAUSE] = "pause", [HOST_SLEEP_IGNORE] = "ignore", NULL};
	int v;
	if (choice_opt("--on-host-sleep", a, names, &v, err))
		return -EINVAL;
	o->on_host_sleep = (enum host_sleep_policy)v;
	return 0;
}

static int opt_heartbeat_us(struct run_options *o, const char *a, struct error *err)
{
	return u32_opt("--heartbeat-us", a, 100, 10000000, &o->guest.period_us, err);
}

static int opt_print_every(struct run_options *o, const char *a, struct error *err)
{
	return u32_opt("--print-every", a, 0, 1000000000, &o->guest.print_every, err);
}

static int opt_guest_mode(struct run_options *o, const char *a, struct error *err)
{
	static const char *const names[] = {[GUEST_MODE_HEARTBEAT] = "heartbeat",
					    [GUEST_MODE_PIO_BENCH] = "pio-bench",
					    [GUEST_MODE_CRASH] = "crash",
					    [GUEST_MODE_WILD_IO] = "wild-io",
					    [GUEST_MODE_DISK] = "disk",
					    [GUEST_MODE_DISK_BENCH] = "disk-bench",
					    [GUEST_MODE_RING0_BENCH] = "ring0-bench",
					    [GUEST_MODE_MEMCHECK] = "memcheck",
					    [GUEST_MODE_VIRTIO_REPLAY] = "virtio-replay",
					    NULL};
	int v;
	if (choice_opt("--guest-mode", a, names, &v, err))
		return -EINVAL;
	o->guest.mode = (uint32_t)v;
	return 0;
}

static int opt_disk(struct run_options *o, const char *a, struct error *err)
{
	if (o->vm.nr_disks >= VM_MAX_DISKS)
		return error_setf(err, "--disk: at most %d disks", VM_MAX_DISKS);
	if (run_options_parse_disk(a, &o->vm.disks[o->vm.nr_disks], err))
		return error_prepend(err, "--disk %s: ", a);
	o->vm.nr_disks++;
	return 0;
}

static int opt_net(struct run_options *o, const char *a, struct error *err)
{
	if (o->vm.nr_nets >= VM_MAX_NETS)
		return error_setf(err, "--net: at most %d nets", VM_MAX_NETS);
	if (tap_spec_parse(a, &o->vm.nets[o->vm.nr_nets], err)) {
		o->net_error = true;
		return error_prepend(err, "--net %s: ", a);
	}
	o->vm.nr_nets++;
	return 0;
}

/* KIND[,OPTIONS]: the kind must be one the board has; its own create
 * checks the options when the VM is built. */
static int opt_device(struct run_options *o, const char *a, struct error *err)
{
	if (o->vm.nr_virtio >= VM_MAX_VIRTIO)
		return error_setf(err, "--device: at most %d devices", VM_MAX_VIRTIO);
	struct virtio_spec *d = &o->vm.virtio[o->vm.nr_virtio];
	const char *comma = strchr(a, ',');
	size_t kind_len = comma ? (size_t)(comma - a) : strlen(a);
	const char *options = comma ? comma + 1 : "";
	if (kind_len == 0 || kind_len >= sizeof(d->kind) || strlen(options) >= sizeof(d->options))
		return error_setf(err,
				  "--device %s: expected KIND[,OPTIONS] (kind under %zu "
				  "bytes, options under %zu)",
				  a, sizeof(d->kind), sizeof(d->options));
	memcpy(d->kind, a, kind_len);
	d->kind[kind_len] = '\0';
	snprintf(d->options, sizeof(d->options), "%s", options);
	if (!(d->type = pc_virtio_kind(d->kind, err)))
		return error_prepend(err, "--device %s: ", a);
	o->vm.nr_virtio++;
	return 0;
}

static int ipv4_opt(const char *what, const char *a, uint32_t *dst, struct error *err)
{
	struct in_addr ip;
	if (inet_pton(AF_INET, a, &ip) != 1 || ip.s_addr == 0)
		return error_setf(err, "%s: expected an IPv4 address, not '%s'", what, a);
	*dst = ip.s_addr;
	return 0;
}

static int opt_guest_ip(struct run_options *o, const char *a, struct error *err)
{
	return ipv4_opt("--guest-ip", a, &o->guest.guest_ip, err);
}

static int opt_guest_ping(struct run_options *o, const char *a, struct error *err)
{
	return ipv4_opt("--guest-ping", a, &o->guest.guest_peer, err);
}

static int opt_disk_blocks(struct run_options *o, const char *a, struct error *err)
{
	return u32_opt("--disk-blocks", a, 1, 1u << 24, &o->guest.disk_blocks, err);
}

static int opt_disk_request_kib(struct run_options *o, const char *a, struct error *err)
{
	uint32_t v;
	if (u32_opt("--disk-request-kib", a, 4, 64, &v, err))
		return -EINVAL;
	if (v % 4)
		return error_setf(err, "--disk-request-kib: a multiple of 4");
	o->guest.disk_request_kib = v;
	return 0;
}

static int opt_disk_flush_every(struct run_options *o, const char *a, struct error *err)
{
	return u32_opt("--disk-flush-every", a, 1, 1u << 24, &o->guest.disk_flush_every, err);
}

static int opt_memcheck_mib(struct run_options *o, const char *a, struct error *err)
{
	return u32_opt("--memcheck-mib", a, 1, 1u << 20, &o->guest.memcheck_mib, err);
}

static int opt_memcheck_dirty(struct run_options *o, const char *a, struct error *err)
{
	return u32_opt("--memcheck-dirty", a, 0, 1000000, &o->guest.memcheck_dirty, err);
}

static int opt_cpu_features(struct run_options *o, const char *a, struct error *err)
{
	if (x86_cpu_mask_parse(a, &o->vm.cpu_mask, err))
		return error_prepend(err, "--cpu-features: ");
	return 0;
}

static int opt_incoming(struct run_options *o, const char *a, struct error *err)
{
	if (mig_addr_parse(a, &o->incoming, err))
		return error_prepend(err, "--incoming: ");
	o->has_incoming = true;
	return 0;
}

static int opt_disk_generation(struct run_options *o, const char *a, struct error *err)
{
	return u32_opt("--disk-generation", a, 0, 0xffffffffu, &o->guest.disk_generation, err);
}

#define PATH_ARG_MAX 4095

static int path_opt(const char *what, const char *a, const char **dst, struct error *err)
{
	if (!*a || strlen(a) > PATH_ARG_MAX)
		return error_setf(err, "%s: expected a file path", what);
	*dst = a;
	return 0;
}

static int opt_guest_blob(struct run_options *o, const char *a, struct error *err)
{
	return path_opt("--guest-blob", a, &o->guest_blob_path, err);
}

static int opt_kernel(struct run_options *o, const char *a, struct error *err)
{
	return path_opt("--kernel", a, &o->vm.kernel_path, err);
}

static int opt_initrd(struct run_options *o, const char *a, struct error *err)
{
	return path_opt("--initrd", a, &o->vm.initrd_path, err);
}

static int opt_cmdline(struct run_options *o, const char *a, struct error *err)
{
	(void)err;
	o->vm.cmdline = a; /* how long it may be is the kernel's to say (exit status 6) */
	return 0;
}

static int opt_kernel_decompress(struct run_options *o, const char *a, struct error *err)
{
	static const char *const names[] = {"host", "guest", NULL};
	int v;
	if (choice_opt("--kernel-decompress", a, names, &v, err))
		return -EINVAL;
	o->vm.kernel_decompress_guest = v == 1;
	return 0;
}

static int opt_on_reboot(struct run_options *o, const char *a, struct error *err)
{
	static const char *const names[] = {"exit", "restart", NULL};
	int v;
	if (choice_opt("--on-reboot", a, names, &v, err))
		return -EINVAL;
	o->on_reboot_restart = v == 1;
	return 0;
}

static int opt_on_host_shutdown(struct run_options *o, const char *a, struct error *err)
{
	int v;
	if (choice_opt("--on-host-shutdown", a, shutdown_policy_names, &v, err))
		return -EINVAL;
	o->on_host_shutdown = (enum shutdown_policy)v;
	o->shutdown_policy_given = true;
	return 0;
}

static int opt_on_low_battery(struct run_options *o, const char *a, struct error *err)
{
	int v;
	if (choice_opt("--on-low-battery", a, battery_policy_names, &v, err))
		return -EINVAL;
	o->on_low_battery = (enum battery_policy)v;
	o->battery_policy_given = true;
	return 0;
}

static int opt_discard_saved(struct run_options *o, const char *a, struct error *err)
{
	(void)a, (void)err;
	o->discard_saved = true;
	return 0;
}

static int opt_restore(struct run_options *o, const char *a, struct error *err)
{
	return path_opt("--restore", a, &o->restore_path, err);
}

static int opt_sandbox(struct run_options *o, const char *a, struct error *err)
{
	static const char *const names[] = {"on", "off", NULL};
	int v;
	if (choice_opt("--sandbox", a, names, &v, err))
		return -EINVAL;
	o->sandbox_off = v == 1;
	return 0;
}

static int opt_user(struct run_options *o, const char *a, struct error *err)
{
	if (!*a || strlen(a) > 256)
		return error_setf(err, "--user: expected a user name or uid");
	o->user = a; /* looked up when it is used: the name may come and go */
	return 0;
}

static int opt_help(struct run_options *o, const char *a, struct error *err)
{
	(void)a, (void)err;
	o->help = true;
	return 0;
}

static const struct opt_def opts[] = {
	{"name", required_argument, opt_name, false},
	{"cpus", required_argument, opt_cpus, true},
	{"memory", required_argument, opt_memory, true},
	{"cpu-pin", required_argument, opt_cpu_pin, false},
	{"console", required_argument, opt_console, false},
	{"socket", required_argument, opt_socket, false},
	{"vmm-cpus", required_argument, opt_vmm_cpus, false},
	{"on-cpu-offline", required_argument, opt_on_cpu_offline, false},
	{"on-host-sleep", required_argument, opt_on_host_sleep, false},
	{"heartbeat-us", required_argument, opt_heartbeat_us, true},
	{"print-every", required_argument, opt_print_every, true},
	{"guest-mode", required_argument, opt_guest_mode, true},
	{"disk", required_argument, opt_disk, true},
	{"net", required_argument, opt_net, true},
	{"device", required_argument, opt_device, true},
	{"guest-ip", required_argument, opt_guest_ip, true},
	{"guest-ping", required_argument, opt_guest_ping, true},
	{"disk-blocks", required_argument, opt_disk_blocks, true},
	{"disk-request-kib", required_argument, opt_disk_request_kib, true},
	{"disk-flush-every", required_argument, opt_disk_flush_every, true},
	{"disk-generation", required_argument, opt_disk_generation, true},
	{"memcheck-mib", required_argument, opt_memcheck_mib, true},
	{"memcheck-dirty", required_argument, opt_memcheck_dirty, true},
	{"cpu-features", required_argument, opt_cpu_features, true},
	{"guest-blob", required_argument, opt_guest_blob, true},
	{"incoming", required_argument, opt_incoming, false},
	{"kernel", required_argument, opt_kernel, true},
	{"initrd", required_argument, opt_initrd, true},
	{"cmdline", required_argument, opt_cmdline, true},
	{"kernel-decompress", required_argument, opt_kernel_decompress, true},
	{"on-reboot", required_argument, opt_on_reboot, false},
	{"restore", required_argument, opt_restore, false},
	{"on-host-shutdown", required_argument, opt_on_host_shutdown, false},
	{"on-low-battery", required_argument, opt_on_low_battery, false},
	{"discard-saved", no_argument, opt_discard_saved, false},
	{"sandbox", required_argument, opt_sandbox, false},
	{"user", required_argument, opt_user, false},
	{"help", no_argument, opt_help, false},
};

/* Rules between options, once all are in. */
static int check_combination(struct run_options *o, struct error *err)
{
	o->vm.linux_guest = o->vm.kernel_path != NULL;
	if (o->restore_path && o->on_reboot_restart)
		return error_setf(err,
				  "--on-reboot restart: a restored VM cannot boot afresh "
				  "(its kernel and disks' boot state are not in the snapshot)");
	if (o->restore_path && o->guest_option)
		return error_setf(
			err, "--%s: with --restore the guest's settings come from the snapshot",
			o->guest_option);
	if (o->has_incoming && (o->restore_path || o->on_reboot_restart))
		return error_setf(err, "--incoming: not with --%s",
				  o->restore_path ? "restore" : "on-reboot restart");
	if (o->has_incoming && o->guest_option)
		return error_setf(
			err,
			"--%s: with --incoming the guest's settings come from the migration "
			"stream",
			o->guest_option);
	if (!o->vm.kernel_path && (o->vm.initrd_path || o->vm.cmdline))
		return error_setf(err, "--initrd and --cmdline need --kernel");
	/* The region, then 8 bytes a page of generations. */
	uint64_t memcheck_end = (GUEST_MEMCHECK_BASE >> 20) + o->guest.memcheck_mib +
				(o->guest.memcheck_mib + 511) / 512;
	if (o->guest.mode == GUEST_MODE_MEMCHECK && memcheck_end > o->vm.memory_mib)
		return error_setf(
			err,
			"--memcheck-mib %u: the check runs from 16 MiB (and a table after it), so "
			"it needs --memory "
			"%llu or more",
			o->guest.memcheck_mib, (unsigned long long)memcheck_end);
	if (o->pins.nr > (int)o->vm.cpus)
		return error_setf(err, "--cpu-pin: vCPU %d does not exist (the VM has %u)",
				  o->pins.nr - 1, o->vm.cpus);
	return 0;
}

int run_options_parse(struct run_options *o, int argc, char **argv, struct error *err)
{
	struct option long_opts[ARRAY_SIZE(opts) + 1];
	for (size_t i = 0; i < ARRAY_SIZE(opts); i++)
		long_opts[i] = (struct option){opts[i].name, opts[i].has_arg, NULL, (int)i};
	long_opts[ARRAY_SIZE(opts)] = (struct option){0};
	optind = 0; /* full reset: parsing may run more than once in a process */
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":", long_opts, NULL)) != -1) {
		if (c == ':')
			return error_setf(err, "option '%s' needs a value", argv[optind - 1]);
		if (c < 0 || c >= (int)ARRAY_SIZE(opts))
			return error_setf(err, "unknown option '%s'", argv[optind - 1]);
		if (opts[c].apply(o, optarg, err))
			return -EINVAL;
		if (opts[c].guest_visible && !o->guest_option)
			o->guest_option = opts[c].name;
	}
	if (optind < argc)
		return error_setf(err, "unexpected argument '%s'", argv[optind]);
	return o->help ? 0 : check_combination(o, err);
}
