#include "cli/options.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guest_abi.h"
#include "util/util.h"

enum {
	OPT_NAME = 256,
	OPT_CPUS,
	OPT_MEMORY,
	OPT_CPU_PIN,
	OPT_CONSOLE,
	OPT_SOCKET,
	OPT_VMM_CPUS,
	OPT_ON_CPU_OFFLINE,
	OPT_ON_HOST_SLEEP,
	OPT_HEARTBEAT_US,
	OPT_PRINT_EVERY,
	OPT_GUEST_MODE,
	OPT_DISK,
	OPT_DISK_BLOCKS,
	OPT_DISK_REQUEST_KIB,
	OPT_DISK_FLUSH_EVERY,
	OPT_DISK_GENERATION,
	OPT_KERNEL,
	OPT_INITRD,
	OPT_CMDLINE,
	OPT_KERNEL_DECOMPRESS,
	OPT_ON_REBOOT,
	OPT_HELP,
};

static const struct option long_opts[] = {
	{"name", required_argument, NULL, OPT_NAME},
	{"cpus", required_argument, NULL, OPT_CPUS},
	{"memory", required_argument, NULL, OPT_MEMORY},
	{"cpu-pin", required_argument, NULL, OPT_CPU_PIN},
	{"console", required_argument, NULL, OPT_CONSOLE},
	{"socket", required_argument, NULL, OPT_SOCKET},
	{"vmm-cpus", required_argument, NULL, OPT_VMM_CPUS},
	{"on-cpu-offline", required_argument, NULL, OPT_ON_CPU_OFFLINE},
	{"on-host-sleep", required_argument, NULL, OPT_ON_HOST_SLEEP},
	{"heartbeat-us", required_argument, NULL, OPT_HEARTBEAT_US},
	{"print-every", required_argument, NULL, OPT_PRINT_EVERY},
	{"guest-mode", required_argument, NULL, OPT_GUEST_MODE},
	{"disk", required_argument, NULL, OPT_DISK},
	{"disk-blocks", required_argument, NULL, OPT_DISK_BLOCKS},
	{"disk-request-kib", required_argument, NULL, OPT_DISK_REQUEST_KIB},
	{"disk-flush-every", required_argument, NULL, OPT_DISK_FLUSH_EVERY},
	{"disk-generation", required_argument, NULL, OPT_DISK_GENERATION},
	{"kernel", required_argument, NULL, OPT_KERNEL},
	{"initrd", required_argument, NULL, OPT_INITRD},
	{"cmdline", required_argument, NULL, OPT_CMDLINE},
	{"kernel-decompress", required_argument, NULL, OPT_KERNEL_DECOMPRESS},
	{"on-reboot", required_argument, NULL, OPT_ON_REBOOT},
	{"help", no_argument, NULL, OPT_HELP},
	{NULL, 0, NULL, 0},
};

void run_options_default(struct run_options *o)
{
	memset(o, 0, sizeof(*o));
	o->cpus = 2;
	o->memory_mib = 64;
	o->max_pinned_vcpu = -1;
	o->console = CONSOLE_STDIO;
	o->on_cpu_offline = OFFLINE_MIGRATE;
	o->heartbeat_us = 10000;
	o->print_every = 100;
	o->disk_blocks = 256;
	o->disk_request_kib = 4;
	o->disk_flush_every = 64;
	o->disk_generation = 1;
}

bool valid_vm_name(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > VM_NAME_MAX || name[0] == '.' || name[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		snprintf(err, errlen, __VA_ARGS__);                                                \
		return -1;                                                                         \
	} while (0)

int parse_cpu_pin(const char *s, struct run_options *o, char *err, size_t errlen)
{
	char *copy = strdup(s);
	if (!copy)
		FAIL("out of memory");
	int vcpu = -1, ret = 0;
	char *save = NULL;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		const char *cpus = tok;
		if (eq) {
			*eq = '\0';
			uint64_t v;
			if (parse_u64(tok, &v) || v >= MAX_VCPUS_LIMIT) {
				snprintf(err, errlen, "'%s' is not a vCPU index", tok);
				ret = -1;
				break;
			}
			vcpu = (int)v;
			cpus = eq + 1;
			CPU_ZERO(&o->pins[vcpu].cpus);
		} else if (vcpu < 0) {
			snprintf(err, errlen, "expected VCPU=HOSTCPU, got '%s'", tok);
			ret = -1;
			break;
		}
		cpu_set_t add;
		if (parse_cpu_list(cpus, &add)) {
			snprintf(err, errlen, "'%s' is not a host CPU list", cpus);
			ret = -1;
			break;
		}
		CPU_OR(&o->pins[vcpu].cpus, &o->pins[vcpu].cpus, &add);
		o->pins[vcpu].set = true;
		if (vcpu > o->max_pinned_vcpu)
			o->max_pinned_vcpu = vcpu;
	}
	if (!ret && vcpu < 0) {
		snprintf(err, errlen, "empty pin list");
		ret = -1;
	}
	free(copy);
	return ret;
}

static int parse_u32_range(const char *what, const char *s, uint64_t lo, uint64_t hi, uint64_t *out,
			   char *err, size_t errlen)
{
	if (parse_u64(s, out))
		FAIL("%s: '%s' is not a number", what, s);
	if (*out < lo || *out > hi)
		FAIL("%s: %s is out of range (%llu..%llu)", what, s, (unsigned long long)lo,
		     (unsigned long long)hi);
	return 0;
}

int run_options_parse(struct run_options *o, int argc, char **argv, char *err, size_t errlen)
{
	uint64_t v;
	optind = 0; /* full reset: parsing may run more than once in a process */
	opterr = 0;
	for (;;) {
		int c = getopt_long(argc, argv, ":", long_opts, NULL);
		if (c == -1)
			break;
		switch (c) {
		case OPT_NAME:
			if (!valid_vm_name(optarg))
				FAIL("--name: '%s' is not a valid name (1-%d of A-Z a-z 0-9 . _ -)",
				     optarg, VM_NAME_MAX);
			snprintf(o->name, sizeof(o->name), "%s", optarg);
			break;
		case OPT_CPUS:
			if (parse_u32_range("--cpus", optarg, 1, MAX_VCPUS_LIMIT, &v, err, errlen))
				return -1;
			o->cpus = (uint32_t)v;
			break;
		case OPT_MEMORY:
			if (parse_u32_range("--memory (MiB)", optarg, MEMORY_MIN_MIB,
					    MEMORY_MAX_MIB, &v, err, errlen))
				return -1;
			o->memory_mib = v;
			break;
		case OPT_CPU_PIN: {
			char why[256];
			if (parse_cpu_pin(optarg, o, why, sizeof(why)))
				FAIL("--cpu-pin: %s", why);
			break;
		}
		case OPT_CONSOLE:
			if (!strcmp(optarg, "stdio")) {
				o->console = CONSOLE_STDIO;
			} else if (!strcmp(optarg, "none")) {
				o->console = CONSOLE_NONE;
			} else if (*optarg) {
				o->console = CONSOLE_FILE;
				snprintf(o->console_path, sizeof(o->console_path), "%s", optarg);
			} else {
				FAIL("--console: expected stdio, none or a file path");
			}
			break;
		case OPT_SOCKET:
			if (!*optarg || strlen(optarg) >= sizeof(o->socket_path))
				FAIL("--socket: path must be 1-%zu bytes",
				     sizeof(o->socket_path) - 1);
			snprintf(o->socket_path, sizeof(o->socket_path), "%s", optarg);
			break;
		case OPT_VMM_CPUS:
			if (parse_cpu_list(optarg, &o->vmm_cpus))
				FAIL("--vmm-cpus: '%s' is not a host CPU list", optarg);
			o->has_vmm_cpus = true;
			break;
		case OPT_ON_CPU_OFFLINE:
			if (!strcmp(optarg, "migrate"))
				o->on_cpu_offline = OFFLINE_MIGRATE;
			else if (!strcmp(optarg, "pause"))
				o->on_cpu_offline = OFFLINE_PAUSE;
			else
				FAIL("--on-cpu-offline: expected migrate or pause, got '%s'",
				     optarg);
			break;
		case OPT_ON_HOST_SLEEP:
			if (!strcmp(optarg, "pause"))
				o->on_host_sleep = SLEEP_PAUSE;
			else if (!strcmp(optarg, "ignore"))
				o->on_host_sleep = SLEEP_IGNORE;
			else
				FAIL("--on-host-sleep: expected pause or ignore, got '%s'", optarg);
			break;
		case OPT_HEARTBEAT_US:
			if (parse_u32_range("--heartbeat-us", optarg, 100, 10000000, &v, err,
					    errlen))
				return -1;
			o->heartbeat_us = (uint32_t)v;
			break;
		case OPT_PRINT_EVERY:
			if (parse_u32_range("--print-every", optarg, 0, 1000000000, &v, err,
					    errlen))
				return -1;
			o->print_every = (uint32_t)v;
			break;
		case OPT_GUEST_MODE:
			if (!strcmp(optarg, "heartbeat"))
				o->guest_mode = GUEST_MODE_HEARTBEAT;
			else if (!strcmp(optarg, "crash"))
				o->guest_mode = GUEST_MODE_CRASH;
			else if (!strcmp(optarg, "wild-io"))
				o->guest_mode = GUEST_MODE_WILD_IO;
			else if (!strcmp(optarg, "pio-bench"))
				o->guest_mode = GUEST_MODE_PIO_BENCH;
			else if (!strcmp(optarg, "disk"))
				o->guest_mode = GUEST_MODE_DISK;
			else if (!strcmp(optarg, "disk-bench"))
				o->guest_mode = GUEST_MODE_DISK_BENCH;
			else if (!strcmp(optarg, "ring0-bench"))
				o->guest_mode = GUEST_MODE_RING0_BENCH;
			else
				FAIL("--guest-mode: expected heartbeat, crash, wild-io, pio-bench, disk, "
				     "disk-bench or ring0-bench");
			break;
		case OPT_DISK: {
			char why[256];
			if (o->nr_disks >= MAX_DISKS)
				FAIL("--disk: at most %d disks", MAX_DISKS);
			if (parse_disk_spec(optarg, &o->disks[o->nr_disks], why, sizeof(why)))
				FAIL("--disk %s: %s", optarg, why);
			o->nr_disks++;
			break;
		}
		case OPT_DISK_BLOCKS:
			if (parse_u32_range("--disk-blocks", optarg, 1, 1u << 24, &v, err, errlen))
				return -1;
			o->disk_blocks = (uint32_t)v;
			break;
		case OPT_DISK_REQUEST_KIB:
			if (parse_u32_range("--disk-request-kib", optarg, 4, 64, &v, err, errlen))
				return -1;
			if (v % 4)
				FAIL("--disk-request-kib: a multiple of 4");
			o->disk_request_kib = (uint32_t)v;
			break;
		case OPT_DISK_FLUSH_EVERY:
			if (parse_u32_range("--disk-flush-every", optarg, 1, 1u << 24, &v, err,
					    errlen))
				return -1;
			o->disk_flush_every = (uint32_t)v;
			break;
		case OPT_DISK_GENERATION:
			if (parse_u32_range("--disk-generation", optarg, 0, 0xffffffffu, &v, err,
					    errlen))
				return -1;
			o->disk_generation = (uint32_t)v;
			break;
		case OPT_KERNEL:
		case OPT_INITRD: {
			char *dst = c == OPT_KERNEL ? o->kernel_path : o->initrd_path;
			if (!*optarg || strlen(optarg) >= sizeof(o->kernel_path))
				FAIL("--%s: expected a file path",
				     c == OPT_KERNEL ? "kernel" : "initrd");
			snprintf(dst, sizeof(o->kernel_path), "%s", optarg);
			break;
		}
		case OPT_CMDLINE:
			if (strlen(optarg) >= sizeof(o->cmdline))
				FAIL("--cmdline: longer than %zu bytes", sizeof(o->cmdline) - 1);
			snprintf(o->cmdline, sizeof(o->cmdline), "%s", optarg);
			break;
		case OPT_KERNEL_DECOMPRESS:
			if (!strcmp(optarg, "host"))
				o->kernel_decompress_guest = false;
			else if (!strcmp(optarg, "guest"))
				o->kernel_decompress_guest = true;
			else
				FAIL("--kernel-decompress: expected host or guest, got '%s'",
				     optarg);
			break;
		case OPT_ON_REBOOT:
			if (!strcmp(optarg, "exit"))
				o->on_reboot_restart = false;
			else if (!strcmp(optarg, "restart"))
				o->on_reboot_restart = true;
			else
				FAIL("--on-reboot: expected exit or restart, got '%s'", optarg);
			break;
		case OPT_HELP:
			FAIL("help");
		case ':':
			FAIL("option '%s' needs a value", argv[optind - 1]);
		default:
			FAIL("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		FAIL("unexpected argument '%s'", argv[optind]);
	if (!o->kernel_path[0] && (o->initrd_path[0] || o->cmdline[0]))
		FAIL("--initrd and --cmdline need --kernel");
	if (o->max_pinned_vcpu >= (int)o->cpus)
		FAIL("--cpu-pin: vCPU %d does not exist (the VM has %u)", o->max_pinned_vcpu,
		     o->cpus);
	return 0;
}
