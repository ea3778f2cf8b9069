/* Command-line parsing for `kvmhost run`, kept free of side effects so it can
 * be unit-tested. */
#ifndef KVMHOST_OPTIONS_H
#define KVMHOST_OPTIONS_H

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

#include "virtio/blk.h"

#define VM_NAME_MAX	64
#define MAX_VCPUS_LIMIT 1024
#define MEMORY_MIN_MIB	16
#define MEMORY_MAX_MIB	(1024ull * 1024) /* 1 TiB; the host's RAM is checked at start */

enum console_mode { CONSOLE_STDIO, CONSOLE_NONE, CONSOLE_FILE };
enum cpu_offline_policy { OFFLINE_MIGRATE, OFFLINE_PAUSE };
enum sleep_policy { SLEEP_PAUSE, SLEEP_IGNORE };

struct vcpu_pin {
	bool set;
	cpu_set_t cpus;
};

#define MAX_DISKS 8

struct run_options {
	char name[VM_NAME_MAX + 1];
	uint32_t cpus;
	uint64_t memory_mib;
	struct vcpu_pin pins[MAX_VCPUS_LIMIT];
	int max_pinned_vcpu; /* -1 if none */
	enum console_mode console;
	char console_path[4096];
	char socket_path[108];
	bool has_vmm_cpus;
	cpu_set_t vmm_cpus;
	enum cpu_offline_policy on_cpu_offline;
	enum sleep_policy on_host_sleep;
	/* Built-in guest behaviour. */
	uint32_t heartbeat_us;
	uint32_t print_every;
	uint32_t guest_mode; /* GUEST_MODE_*: test and benchmark behaviours */
	struct disk_spec disks[MAX_DISKS];
	int nr_disks;
	/* The built-in guest's disk workload. */
	uint32_t disk_blocks;
	uint32_t disk_request_kib;
	uint32_t disk_flush_every;
	uint32_t disk_generation;
	/* A Linux guest instead of the built-in one. */
	char kernel_path[4096];
	char initrd_path[4096];
	char cmdline[4096];
	bool kernel_decompress_guest;
	bool on_reboot_restart;
};

void run_options_default(struct run_options *o);
/* argv[0] is "run". Returns 0, or -1 with a message in err. */
int run_options_parse(struct run_options *o, int argc, char **argv, char *err, size_t errlen);
/* "0=1,3,1=2" -> vCPU 0 on {1,3}, vCPU 1 on {2}. */
int parse_cpu_pin(const char *s, struct run_options *o, char *err, size_t errlen);
bool valid_vm_name(const char *name);

#endif
