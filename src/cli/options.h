/* Command-line parsing for `kvmhost run`, kept free of side effects so it can
 * be unit-tested. Strings point into argv, which outlives the VM. */
#ifndef KVMHOST_OPTIONS_H
#define KVMHOST_OPTIONS_H

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

#include "builtin_guest/testdev.h"
#include "control/rundir.h"
#include "core/vm.h"
#include "host/battery.h"
#include "host/pinning.h"
#include "host/shutdown.h"
#include "host/sleep.h"
#include "migration/migration.h"
#include "util/util.h"

#define MEMORY_MIN_MIB 16
#define MEMORY_MAX_MIB (1024ull * 1024) /* 1 TiB; the host's RAM is checked at start */

enum console_mode { CONSOLE_STDIO, CONSOLE_NONE, CONSOLE_FILE };

struct run_options {
	char name[VM_NAME_MAX + 1];
	struct vm_config vm;	     /* what the guest sees; vm.name points at name */
	struct testdev_config guest; /* the built-in guest's workload */
	const uint8_t *guest_blob;   /* --guest-blob's bytes, for the built-in guest */
	uint32_t guest_blob_len;
	/* Host-side choices. */
	struct cpu_pins pins;
	enum console_mode console;
	const char *console_path;
	const char *socket_path; /* NULL: in the runtime directory */
	bool has_vmm_cpus;
	cpu_set_t vmm_cpus;
	enum cpu_offline_policy on_cpu_offline;
	enum host_sleep_policy on_host_sleep;
	bool on_reboot_restart;
	const char *restore_path; /* --restore: the guest comes from this snapshot */
	bool has_incoming;	  /* --incoming: the guest comes from a migration */
	struct mig_addr incoming;
	enum shutdown_policy on_host_shutdown;
	bool shutdown_policy_given;
	enum battery_policy on_low_battery;
	bool battery_policy_given;
	bool discard_saved;
	bool sandbox_off;	     /* --sandbox off */
	const char *user;	     /* --user: run as this user once set up */
	const char *guest_blob_path; /* --guest-blob: loaded by `run` into guest_blob */
	const char *guest_option;    /* the first guest-visible option given, or NULL */
	bool help;
	bool net_error; /* the parse failed on --net: exit status 8, not 2 */
};

void run_options_default(struct run_options *o);
/* argv[0] is "run". Returns 0, or -1 with a message in err. */
int run_options_parse(struct run_options *o, int argc, char **argv, struct error *err);
/* The guest's settings back to their defaults: a managed save brings its own. */
void run_options_forget_guest(struct run_options *o);
void run_options_free(struct run_options *o);
/* "FILE[,ro][,id=NAME]"; d->path is allocated: free with run_options_free_disk. */
int run_options_parse_disk(const char *s, struct disk_spec *d, struct error *err);
void run_options_free_disk(struct disk_spec *d);

#endif
